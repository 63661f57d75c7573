// One signalling connection: a WebSocket speaking proto/umbrella.proto,
// bound to a WebRtcPeer and registered with the router as a peer. Anything
// wrong the remote sends closes this connection with a reason and touches
// nothing else.
import {
  decodeEnvelope,
  encodeEnvelope,
  ProtocolError,
} from "../proto/codec.ts";
import {
  type Envelope,
  Leg,
  MediaKind,
  NoticeLevel,
  PeerKind,
  PROTOCOL_VERSION,
  type TrackInfo,
  TrackSource,
} from "../proto/messages.ts";
import type {
  PeerKind as RouterPeerKind,
  Router,
  RouterPeer,
} from "../media/router.ts";
import type { MediaNetworkOptions } from "../media/rtc_config.ts";
import type { Track } from "../media/track.ts";
import { type PublishBinding, WebRtcPeer } from "../media/webrtc_peer.ts";
import { log } from "./log.ts";

export interface NodeContext {
  router: Router;
  nodeId: string;
  site: string;
  version: string;
  network: MediaNetworkOptions;
}

export const CloseCode = {
  normal: 1000,
  textFrame: 1003,
  tooBig: 1009,
  expectedHello: 4001,
  unsupportedVersion: 4002,
  malformed: 4003,
  silent: 4008,
  mediaFailed: 4010,
  shuttingDown: 4011,
} as const;

const SILENCE_CLOSE_MS = 30_000;
const PING_INTERVAL_MS = 10_000;
const MAX_IDS_PER_MESSAGE = 256;
const MAX_TRACKS_PER_OFFER = 16;
const MAX_NAME_LENGTH = 64;

let sessionCounter = 0;
const newPeerId = () => {
  const random = crypto.getRandomValues(new Uint8Array(6));
  return `p${(++sessionCounter).toString(36)}${
    Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("")
  }`;
};

/** Close reasons are limited to 123 bytes by the WebSocket protocol. */
const closeReason = (text: string) => {
  const bytes = new TextEncoder().encode(text);
  return bytes.length <= 123
    ? text
    : new TextDecoder().decode(bytes.slice(0, 120)).replace(/\uFFFD$/, "") +
      "...";
};

const PEER_KINDS: Record<number, RouterPeerKind> = {
  [PeerKind.Browser]: "browser",
  [PeerKind.Client]: "client",
  [PeerKind.Node]: "node",
};

export class SignallingSession implements RouterPeer {
  readonly id = newPeerId();
  kind: RouterPeerKind = "client";
  name = "";
  readonly connectedAtMs = Date.now();
  #socket: WebSocket;
  #context: NodeContext;
  #peer: WebRtcPeer | undefined;
  #queue: Promise<void> = Promise.resolve();
  #lastHeardMs = performance.now();
  #timer: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  #log;
  onClosed: (() => void) | undefined;

  constructor(socket: WebSocket, context: NodeContext, remoteAddress: string) {
    this.#socket = socket;
    this.#context = context;
    this.#log = log.child({ peer: this.id, remote: remoteAddress });
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => this.#onFrame(event.data);
    socket.onclose = (event) =>
      this.#teardown(event.reason || `code ${event.code}`);
    socket.onerror = () => {};
    this.#timer = setInterval(() => {
      if (performance.now() - this.#lastHeardMs > SILENCE_CLOSE_MS) {
        this.close(CloseCode.silent, "nothing heard for 30 s");
      } else if (this.#peer) {
        this.#send({ ping: { nonce: Date.now() } });
      }
    }, PING_INTERVAL_MS);
  }

  get peer(): WebRtcPeer | undefined {
    return this.#peer;
  }

  close(code: number, reason: string): void {
    if (this.#socket.readyState === WebSocket.OPEN) {
      this.#socket.close(code, closeReason(reason));
    }
    this.#teardown(reason);
  }

  #teardown(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    if (this.#peer) {
      this.#log.info("participant left", { name: this.name, reason });
      this.#context.router.removePeer(this.id);
      this.#peer.close();
    }
    this.onClosed?.();
  }

  #onFrame(data: unknown): void {
    if (this.#closed) return;
    this.#lastHeardMs = performance.now();
    if (typeof data === "string") {
      this.close(
        CloseCode.textFrame,
        "text frames are not part of the protocol; send binary protobuf",
      );
      return;
    }
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(new Uint8Array(data as ArrayBuffer));
    } catch (error) {
      const tooBig = (error as Error).message.includes("exceeds");
      this.#log.warn("bad signalling frame", { error });
      this.close(
        tooBig ? CloseCode.tooBig : CloseCode.malformed,
        (error as Error).message,
      );
      return;
    }
    // Handled one at a time: offers and answers must not interleave.
    this.#queue = this.#queue.then(() => this.#handle(envelope)).catch(
      (error) => {
        this.#log.warn("closing connection after a bad message", { error });
        this.close(CloseCode.malformed, (error as Error).message);
      },
    );
  }

  async #handle(message: Envelope): Promise<void> {
    if (this.#closed) return;
    const peer = this.#peer;
    if (!peer) return this.#handleHello(message);
    if (message.offer) {
      const tracks = message.offer.tracks ?? [];
      if (tracks.length > MAX_TRACKS_PER_OFFER) {
        throw new ProtocolError(
          `an offer may carry at most ${MAX_TRACKS_PER_OFFER} tracks`,
        );
      }
      const bindings: PublishBinding[] = tracks.map((binding) => ({
        mid: requireText(binding.mid, "offer track mid"),
        localId: binding.track?.id ||
          requireText(binding.mid, "offer track mid"),
        label: (binding.track?.label ?? "").slice(0, MAX_NAME_LENGTH),
        muted: binding.track?.muted ?? false,
      }));
      await peer.handleOffer(requireSdp(message.offer.sdp), bindings);
    } else if (message.answer) {
      await peer.handleAnswer(requireSdp(message.answer.sdp));
    } else if (message.candidate) {
      const { candidate, leg, sdpMid, sdpMlineIndex } = message.candidate;
      if (!candidate) return; // end of candidates
      await peer.addRemoteCandidate(leg === Leg.Receive ? "receive" : "send", {
        candidate,
        sdpMid,
        sdpMLineIndex: sdpMlineIndex ?? 0,
      });
    } else if (message.subscribe) {
      peer.subscribe(requireIds(message.subscribe.trackIds));
    } else if (message.unsubscribe) {
      peer.unsubscribe(requireIds(message.unsubscribe.trackIds));
    } else if (message.announce) {
      for (const track of message.announce.tracks ?? []) {
        if (track.id) peer.setMuted(track.id, track.muted ?? false);
      }
    } else if (message.keyframeRequest?.trackId) {
      peer.requestKeyframe(message.keyframeRequest.trackId);
    } else if (message.ping) {
      this.#send({ pong: { nonce: message.ping.nonce ?? 0 } });
    } else if (message.bye) {
      this.close(CloseCode.normal, message.bye.reason || "bye");
    } else if (message.hello) {
      throw new ProtocolError("hello may only be sent once");
    }
  }

  #handleHello(message: Envelope): void {
    const hello = message.hello;
    if (!hello) {
      this.close(CloseCode.expectedHello, "the first message must be hello");
      return;
    }
    if (hello.protocolVersion !== PROTOCOL_VERSION) {
      this.close(
        CloseCode.unsupportedVersion,
        `unsupported protocol version ${
          hello.protocolVersion ?? 0
        }; this server speaks ${PROTOCOL_VERSION}`,
      );
      return;
    }
    this.kind = PEER_KINDS[hello.kind ?? 0] ?? "client";
    this.name = (hello.name ?? "").trim().slice(0, MAX_NAME_LENGTH) || "Guest";
    const context = this.#context;
    this.#peer = new WebRtcPeer({
      id: this.id,
      router: context.router,
      network: context.network,
      events: {
        offer: (sdp, tracks) =>
          this.#send({
            offer: {
              sdp,
              tracks: tracks.map(({ mid, track }) => ({
                mid,
                track: toTrackInfo(track),
              })),
            },
          }),
        answer: (sdp) => this.#send({ answer: { sdp } }),
        notice: (code, text, trackId) =>
          this.#send({
            notice: { level: NoticeLevel.Warning, code, text, trackId },
          }),
        failed: (reason) => {
          this.#log.warn("media connection failed", {
            name: this.name,
            reason,
          });
          this.close(CloseCode.mediaFailed, reason);
        },
      },
      describeTrack: (binding, codec, kind) => ({
        id: `${this.id}:${binding.localId}`,
        kind,
        mimeType: codec.mimeType,
        fmtp: codec.parameters ?? "",
        clockRate: codec.clockRate,
        channels: codec.channels ?? 0,
        participantId: this.id,
        participantName: this.name,
        site: context.site,
        originNodeId: context.nodeId,
        path: [context.nodeId],
        source: "participant",
        label: binding.label,
        muted: binding.muted,
      }),
    });
    this.#send({
      hello: {
        protocolVersion: PROTOCOL_VERSION,
        kind: PeerKind.Node,
        nodeId: context.nodeId,
        name: context.site,
        site: context.site,
        software: `umbrella/${context.version}`,
        assignedPeerId: this.id,
      },
    });
    this.#log.info("participant joined", { name: this.name, kind: this.kind });
    context.router.addPeer(this);
  }

  #send(message: Envelope): void {
    if (this.#socket.readyState !== WebSocket.OPEN) return;
    this.#socket.send(encodeEnvelope(message));
  }

  trackAdded(track: Track): void {
    this.#send({ announce: { tracks: [toTrackInfo(track)] } });
  }

  trackUpdated(track: Track): void {
    this.trackAdded(track);
  }

  trackRemoved(track: Track): void {
    this.#send({ withdraw: { trackIds: [track.id] } });
  }
}

export function toTrackInfo(track: Track): TrackInfo {
  const d = track.description;
  return {
    id: d.id,
    kind: d.kind === "audio" ? MediaKind.Audio : MediaKind.Video,
    mimeType: d.mimeType,
    fmtp: d.fmtp,
    clockRate: d.clockRate,
    channels: d.channels,
    participantId: d.participantId,
    participantName: d.participantName,
    site: d.site,
    originNodeId: d.originNodeId,
    path: d.path,
    source: d.source === "camera"
      ? TrackSource.Camera
      : TrackSource.Participant,
    label: d.label,
    muted: d.muted,
  };
}

function requireText(value: string | undefined, what: string): string {
  if (!value) throw new ProtocolError(`${what} is missing`);
  if (value.length > 256) throw new ProtocolError(`${what} is too long`);
  return value;
}

function requireSdp(sdp: string | undefined): string {
  if (!sdp || !sdp.startsWith("v=0")) {
    throw new ProtocolError("malformed SDP: it must start with v=0");
  }
  return sdp;
}

function requireIds(ids: string[] | undefined): string[] {
  if (!ids || ids.length === 0) throw new ProtocolError("no track ids given");
  if (ids.length > MAX_IDS_PER_MESSAGE) {
    throw new ProtocolError(
      `at most ${MAX_IDS_PER_MESSAGE} track ids per message`,
    );
  }
  return ids;
}
