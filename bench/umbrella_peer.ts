// A benchmark participant on Umbrella: the signalling of
// tests/support/werift_client.ts, but publishing MediaSource's call-shaped
// media and measuring reception with ReceiveStats, so Umbrella and Janus
// peers send and count exactly alike.
import { RTCPeerConnection } from "werift";
import { decodeEnvelope, encodeEnvelope } from "../proto/codec.ts";
import {
  type Envelope,
  type Notice,
  PeerKind,
  PROTOCOL_VERSION,
} from "../proto/messages.ts";
import { peerConnectionConfig } from "../media/rtc_config.ts";
import { type MediaProfile, MediaSource, wallClockMs } from "./media_source.ts";
import {
  capturedLeg,
  type LatencyHistogram,
  receivedStreams,
  type ReceiveLeg,
  receiveLeg,
  ReceiveStats,
  recordIncoming,
} from "./receive_stats.ts";
import type { PeerLegs } from "./worker_protocol.ts";
import { withTimeout } from "./timeout.ts";

const LOOPBACK = { iceAddresses: ["127.0.0.1"], iceServers: [] };
const SIGNALLING_TIMEOUT_MS = 15_000;

export interface PeerPlan {
  /** Publish audio (tag) and video (tag + 1). */
  publishTag?: number;
  /** Subscribe to every track the SFU announces. */
  receive: boolean;
  profile: MediaProfile;
}

function signalled<T>(what: string, promise: Promise<T>): Promise<T> {
  return withTimeout(
    promise,
    SIGNALLING_TIMEOUT_MS,
    () => `no ${what} within ${SIGNALLING_TIMEOUT_MS} ms`,
  );
}

export class UmbrellaBenchPeer {
  readonly stats: ReceiveStats;
  readonly joinStartedAtMs: number;
  source: MediaSource | undefined;
  readonly notices: Notice[] = [];
  #socket: WebSocket;
  #plan: PeerPlan;
  #sendPc: RTCPeerConnection | undefined;
  #recvPc: RTCPeerConnection | undefined;
  #answer: PromiseWithResolvers<string> | undefined;
  #queue: Promise<void> = Promise.resolve();
  #subscribed = new Set<string>();

  private constructor(
    socket: WebSocket,
    plan: PeerPlan,
    latency: LatencyHistogram,
  ) {
    this.#socket = socket;
    this.#plan = plan;
    this.stats = new ReceiveStats(latency);
    this.joinStartedAtMs = wallClockMs();
  }

  get receiveLeg(): ReceiveLeg {
    return receiveLeg(this.#recvPc);
  }

  get legs(): PeerLegs {
    return {
      send: capturedLeg(this.#sendPc, this.source?.streams ?? []),
      receive: capturedLeg(this.#recvPc, receivedStreams(this.stats)),
    };
  }

  static async join(
    wsUrl: string,
    name: string,
    plan: PeerPlan,
    latency: LatencyHistogram,
  ): Promise<UmbrellaBenchPeer> {
    const socket = new WebSocket(wsUrl);
    socket.binaryType = "arraybuffer";
    const peer = new UmbrellaBenchPeer(socket, plan, latency);
    const hello = Promise.withResolvers<void>();
    socket.onopen = () =>
      peer.#send({
        hello: {
          protocolVersion: PROTOCOL_VERSION,
          kind: PeerKind.Client,
          name,
        },
      });
    socket.onclose = (event) =>
      hello.reject(new Error(`closed: ${event.code} ${event.reason}`));
    socket.onerror = () => {};
    socket.onmessage = (event) => {
      const message = decodeEnvelope(new Uint8Array(event.data as ArrayBuffer));
      if (message.hello) {
        hello.resolve();
        return;
      }
      peer.#queue = peer.#queue.then(() => peer.#handle(message)).catch(
        (error) => {
          peer.notices.push({ code: "bench-peer-error", text: String(error) });
        },
      );
    };
    try {
      await signalled("hello", hello.promise);
      if (plan.publishTag !== undefined) await peer.#publish(plan.publishTag);
    } catch (error) {
      await peer.close();
      throw error;
    }
    return peer;
  }

  #send(message: Envelope): void {
    if (this.#socket.readyState === WebSocket.OPEN) {
      this.#socket.send(encodeEnvelope(message));
    }
  }

  async #handle(message: Envelope): Promise<void> {
    if (message.announce && this.#plan.receive) {
      const fresh = (message.announce.tracks ?? []).map((t) => t.id!).filter(
        (id) => !this.#subscribed.has(id),
      );
      for (const id of fresh) this.#subscribed.add(id);
      if (fresh.length > 0) this.#send({ subscribe: { trackIds: fresh } });
    } else if (message.offer) {
      await this.#acceptOffer(message.offer.sdp!);
    } else if (message.answer) {
      this.#answer?.resolve(message.answer.sdp!);
    } else if (message.notice) {
      this.notices.push(message.notice);
    } else if (message.ping) {
      this.#send({ pong: { nonce: message.ping.nonce ?? 0 } });
    }
  }

  async #acceptOffer(sdp: string): Promise<void> {
    if (!this.#recvPc) {
      this.#recvPc = new RTCPeerConnection(
        peerConnectionConfig(LOOPBACK, "receive"),
      );
      recordIncoming(this.#recvPc, this.stats);
    }
    await this.#recvPc.setRemoteDescription({ type: "offer", sdp });
    await this.#recvPc.setLocalDescription(
      await this.#recvPc.createAnswer(),
    );
    this.#send({ answer: { sdp: this.#recvPc.localDescription!.sdp } });
  }

  async #publish(tag: number): Promise<void> {
    const pc = new RTCPeerConnection(peerConnectionConfig(LOOPBACK, "send"));
    this.#sendPc = pc;
    const source = new MediaSource(pc, tag, this.#plan.profile);
    await pc.setLocalDescription(await pc.createOffer());
    this.#answer = Promise.withResolvers();
    this.#send({
      offer: {
        sdp: pc.localDescription!.sdp,
        tracks: source.bindings.map((b) => ({
          mid: b.mid,
          track: { id: b.id, label: `bench ${tag} ${b.kind}` },
        })),
      },
    });
    const answer = await signalled("answer", this.#answer.promise);
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    this.source = source;
    source.start();
  }

  async close(): Promise<void> {
    this.source?.stop();
    if (this.#socket.readyState === WebSocket.OPEN) {
      this.#send({ bye: { reason: "bench done" } });
      this.#socket.close(1000, "bench done");
    } else if (this.#socket.readyState === WebSocket.CONNECTING) {
      this.#socket.close();
    }
    await Promise.allSettled([this.#sendPc?.close(), this.#recvPc?.close()]);
  }
}
