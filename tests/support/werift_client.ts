// A real WebRTC participant built on werift that speaks Umbrella's protocol
// over a real WebSocket: tests and the benchmark's load generators use it.
import { Buffer } from "node:buffer";
import {
  MediaStreamTrack,
  RTCPeerConnection,
  RtcpSrPacket,
  type RTCRtpTransceiver,
  RtpHeader,
  RtpPacket,
  useSdesMid,
  useSdesRTPStreamId,
} from "werift";
import { decodeEnvelope, encodeEnvelope } from "../../proto/codec.ts";
import {
  type Envelope,
  MediaKind,
  type Notice,
  PeerKind,
  PROTOCOL_VERSION,
  type TrackInfo,
} from "../../proto/messages.ts";
import {
  peerConnectionConfig,
  supportedCodecs,
} from "../../media/rtc_config.ts";
import {
  bodyOffset,
  H264_PARAMETER_SETS,
  makePayload,
  readBody,
  type SyntheticCodec,
} from "./media_payload.ts";

const LOOPBACK = { iceAddresses: ["127.0.0.1"], iceServers: [] };

export interface ClientOptions {
  kind?: PeerKind;
  /** Fraction (0..1) of packets this client drops as they arrive. */
  inboundLoss?: number;
  /** Fraction (0..1) of packets this client drops as it sends. */
  outboundLoss?: number;
  /** Video codecs this client can receive (mime types); default all. */
  receiveVideoCodecs?: string[];
  /** Subscribe to every announced track (default true). */
  autoSubscribe?: boolean;
}

// werift's debug loss knobs keep a packet when p/100 >= random(), i.e. they
// drop with probability 1 - p/100.
const weriftLoss = (fraction: number | undefined) =>
  fraction ? 100 - fraction * 100 : undefined;

export interface ReceivedTrack {
  info: TrackInfo;
  packets: number;
  bytes: number;
  /** Every payload so far carried exactly the bytes its publisher made. */
  intact: boolean;
  tags: Set<number>;
  /** The tag of the latest payload. */
  lastTag: number;
  sequenceGaps: number;
  lastSequence: number;
  firstPacketAtMs: number;
  latenciesMs: number[];
  /** Sender reports for the stream, and the packet count of the latest. */
  senderReports: number;
  reportedPackets: number;
}

export interface PublishOptions {
  audio?: boolean;
  video?: "vp8" | "h264";
  /** Distinguishes this client's payloads: audio gets tag, video tag + 1. */
  tag: number;
  videoPayloadBytes?: number;
  videoFps?: number;
  keyframeIntervalFrames?: number;
  /** Sends the video as this many simulcast layers (rids l0, l1...), each
   * an SSRC of its own; layer L's payloads are tagged tag + 1 + 1000·L. */
  simulcastLayers?: number;
  /** The layers' rids instead of l0, l1... (tests of bad ones). */
  rids?: string[];
}

/** The tag of a simulcast layer's payloads (see PublishOptions). */
export const layerTag = (tag: number, layer: number) => tag + 1 + 1000 * layer;

/** Polls `condition` every 50 ms; the error names what was awaited and,
 * when `lastSeen` is given, what there was instead. */
export async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
  lastSeen?: () => string,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) {
      const seen = lastSeen ? `; last seen:\n${lastSeen()}` : "";
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${seen}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface Sender {
  codec: SyntheticCodec;
  track: MediaStreamTrack;
  transceiver: RTCRtpTransceiver;
  header: RtpHeader;
  counter: number;
  tag: number;
  keyframeWanted: boolean;
  /** Simulcast layers, sent past werift's sender (which sends one stream). */
  layers?: SimulcastLayer[];
}

interface SimulcastLayer {
  rid: string;
  header: RtpHeader;
  stopped: boolean;
}

export class WeriftClient {
  readonly name: string;
  peerId = "";
  serverHello: Envelope["hello"];
  readonly announced = new Map<string, TrackInfo>();
  readonly withdrawn = new Set<string>();
  readonly received = new Map<string, ReceivedTrack>();
  readonly notices: Notice[] = [];
  /** Subscribe (wanted) and Unsubscribe the node sent for our layers. */
  readonly layerRequests: { id: string; wanted: boolean }[] = [];
  closed: { code: number; reason: string } | undefined;
  lastOfferSdp = "";
  autoSubscribe: boolean;
  recordLatency = false;
  #socket: WebSocket;
  #sendPc: RTCPeerConnection | undefined;
  #recvPc: RTCPeerConnection | undefined;
  #midToTrack = new Map<string, TrackInfo>();
  #senders: Sender[] = [];
  #timers: ReturnType<typeof setInterval>[] = [];
  #answerWaiter: PromiseWithResolvers<string> | undefined;
  #queue: Promise<void> = Promise.resolve();
  #leaving = false;

  #options: ClientOptions;

  private constructor(socket: WebSocket, name: string, options: ClientOptions) {
    this.#socket = socket;
    this.name = name;
    this.#options = options;
    this.autoSubscribe = options.autoSubscribe ?? true;
  }

  #config(role: "send" | "receive") {
    const config = peerConnectionConfig(LOOPBACK, role);
    const wanted = this.#options.receiveVideoCodecs?.map((m) =>
      m.toLowerCase()
    );
    if (role === "receive" && wanted) {
      config.codecs!.video = config.codecs!.video!.filter((c) =>
        wanted.includes(c.mimeType.toLowerCase())
      );
    }
    config.debug = {
      inboundPacketLoss: weriftLoss(this.#options.inboundLoss),
      outboundPacketLoss: weriftLoss(this.#options.outboundLoss),
    };
    return config;
  }

  static async connect(
    url: string,
    name: string,
    options: ClientOptions = {},
  ): Promise<WeriftClient> {
    const socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    const client = new WeriftClient(socket, name, options);
    const kind = options.kind ?? PeerKind.Client;
    const hello = Promise.withResolvers<void>();
    socket.onopen = () =>
      client.send({ hello: { protocolVersion: PROTOCOL_VERSION, kind, name } });
    socket.onclose = (event) => {
      client.closed = { code: event.code, reason: event.reason };
      hello.reject(
        new Error(`closed before hello: ${event.code} ${event.reason}`),
      );
    };
    socket.onerror = () => {};
    socket.onmessage = (event) => {
      const message = decodeEnvelope(new Uint8Array(event.data as ArrayBuffer));
      if (message.hello) {
        client.peerId = message.hello.assignedPeerId ?? "";
        client.serverHello = message.hello;
        hello.resolve();
        return;
      }
      client.#queue = client.#queue.then(() => client.#handle(message)).catch(
        (error) => console.error(`client ${name}:`, error),
      );
    };
    const timeout = setTimeout(
      () => hello.reject(new Error("no hello within 10 s")),
      10_000,
    );
    try {
      await hello.promise;
    } finally {
      clearTimeout(timeout);
    }
    return client;
  }

  send(message: Envelope): void {
    if (this.#socket.readyState === WebSocket.OPEN) {
      this.#socket.send(encodeEnvelope(message));
    }
  }

  /** Sends raw bytes, for tests of hostile input. */
  sendRaw(data: Uint8Array | string): void {
    this.#socket.send(data);
  }

  async #handle(message: Envelope): Promise<void> {
    if (this.#leaving) return;
    if (message.announce) {
      const fresh: string[] = [];
      for (const track of message.announce.tracks ?? []) {
        if (!this.announced.has(track.id!)) fresh.push(track.id!);
        this.announced.set(track.id!, track);
      }
      if (this.autoSubscribe && fresh.length > 0) {
        this.send({ subscribe: { trackIds: fresh } });
      }
    } else if (message.withdraw) {
      for (const id of message.withdraw.trackIds ?? []) {
        this.announced.delete(id);
        this.withdrawn.add(id);
      }
    } else if (message.offer) {
      this.lastOfferSdp = message.offer.sdp!;
      await this.#answer(message.offer.sdp!, message.offer.tracks ?? []);
    } else if (message.answer) {
      this.#answerWaiter?.resolve(message.answer.sdp!);
    } else if (message.subscribe || message.unsubscribe) {
      // The node names layers of our simulcast video someone watches, or
      // that nobody does: send only those, as the Call page does.
      const wanted = message.subscribe !== undefined;
      for (const id of (message.subscribe ?? message.unsubscribe)!.trackIds!) {
        this.layerRequests.push({ id, wanted });
        const rid = id.slice(id.lastIndexOf("/") + 1);
        const layer = Number(rid.slice(1));
        if (rid.startsWith("l") && Number.isInteger(layer)) {
          this.setLayerSending(layer, wanted);
        }
      }
    } else if (message.notice) {
      this.notices.push(message.notice);
    } else if (message.ping) {
      this.send({ pong: { nonce: message.ping.nonce ?? 0 } });
    }
  }

  async #answer(
    sdp: string,
    tracks: { mid?: string; track?: TrackInfo }[],
  ): Promise<void> {
    for (const binding of tracks) {
      this.#midToTrack.set(binding.mid!, binding.track!);
    }
    if (!this.#recvPc) {
      this.#recvPc = new RTCPeerConnection(this.#config("receive"));
      this.#recvPc.ontrack = ({ track, transceiver }) =>
        this.#onRemoteTrack(track, transceiver);
    }
    await this.#recvPc.setRemoteDescription({ type: "offer", sdp });
    const answer = await this.#recvPc.createAnswer();
    await this.#recvPc.setLocalDescription(answer);
    this.send({ answer: { sdp: this.#recvPc.localDescription!.sdp } });
  }

  #onRemoteTrack(
    track: MediaStreamTrack,
    transceiver: RTCRtpTransceiver,
  ): void {
    let current: ReceivedTrack | undefined;
    let offset = 0;
    let ssrc = -1;
    transceiver.receiver.onRtcp.subscribe((packet) => {
      if (packet.type !== RtcpSrPacket.type || current === undefined) return;
      const report = packet as RtcpSrPacket;
      if (report.ssrc !== ssrc) return;
      current.senderReports++;
      current.reportedPackets = report.senderInfo.packetCount;
    });
    track.onReceiveRtp.subscribe((rtp) => {
      ssrc = rtp.header.ssrc;
      const info = this.#midToTrack.get(transceiver.mid ?? "");
      if (!info) return;
      if (current?.info.id !== info.id) {
        const existing: ReceivedTrack = this.received.get(info.id!) ?? {
          info,
          packets: 0,
          bytes: 0,
          intact: true,
          tags: new Set(),
          lastTag: -1,
          sequenceGaps: 0,
          lastSequence: -1,
          firstPacketAtMs: performance.now(),
          latenciesMs: [],
          senderReports: 0,
          reportedPackets: 0,
        };
        current = existing;
        this.received.set(info.id!, existing);
        const mime = info.mimeType!.toLowerCase();
        offset = bodyOffset(
          mime.endsWith("vp8")
            ? "vp8"
            : mime.endsWith("h264")
            ? "h264"
            : "opus",
        );
      }
      const received = current!;
      received.packets++;
      received.bytes += rtp.payload.length;
      const seq = rtp.header.sequenceNumber;
      if (
        received.lastSequence >= 0 &&
        seq !== ((received.lastSequence + 1) & 0xffff)
      ) {
        received.sequenceGaps++;
      }
      received.lastSequence = seq;
      const body = readBody(rtp.payload, offset);
      if (body === undefined) {
        // Parameter sets travel without a synthetic body.
        if (!(offset === 1 && (rtp.payload[0] & 0x1f) >= 7)) {
          received.intact = false;
        }
        return;
      }
      if (!body.intact) received.intact = false;
      received.tags.add(body.tag);
      received.lastTag = body.tag;
      if (this.recordLatency) {
        received.latenciesMs.push(Date.now() - body.sentAtMs);
      }
    });
  }

  /** Publishes synthetic audio and/or video and starts sending it. */
  async publish(options: PublishOptions): Promise<void> {
    const config = this.#config("send");
    if (options.simulcastLayers || options.rids) {
      // As browsers do: the mid and each layer's RTP stream id go in a
      // header extension.
      config.headerExtensions = {
        audio: [useSdesMid()],
        video: [useSdesMid(), useSdesRTPStreamId()],
      };
    }
    const pc = this.#sendPc ??= new RTCPeerConnection(config);
    const rids = options.rids ?? Array.from(
      { length: options.simulcastLayers ?? 0 },
      (_, layer) => `l${layer}`,
    );
    const codecs = supportedCodecs();
    const add = (
      kind: "audio" | "video",
      codec: SyntheticCodec,
      tag: number,
    ) => {
      const track = new MediaStreamTrack({ kind });
      const simulcast = kind === "video" && rids.length > 0;
      const transceiver = pc.addTransceiver(track, {
        direction: "sendonly",
        simulcast: simulcast
          ? rids.map((rid) => ({ rid, direction: "send" as const }))
          : undefined,
      });
      const wanted = codec === "opus"
        ? "audio/opus"
        : codec === "vp8"
        ? "video/vp8"
        : "video/h264";
      transceiver.setCodecPreferences(
        codecs[kind].filter((c) => c.mimeType.toLowerCase() === wanted).slice(
          0,
          1,
        ),
      );
      const header = new RtpHeader({
        sequenceNumber: Math.floor(Math.random() * 65536),
      });
      header.timestamp = Math.floor(Math.random() * 2 ** 32);
      const sender: Sender = {
        codec,
        track,
        transceiver,
        header,
        counter: 0,
        tag,
        keyframeWanted: true,
        layers: simulcast
          ? rids.map((rid) => ({
            rid,
            header: new RtpHeader({
              ssrc: Math.floor(Math.random() * 2 ** 32),
              sequenceNumber: Math.floor(Math.random() * 65536),
              timestamp: Math.floor(Math.random() * 2 ** 32),
            }),
            stopped: false,
          }))
          : undefined,
      };
      transceiver.sender.onPictureLossIndication.subscribe(() => {
        sender.keyframeWanted = true;
      });
      this.#senders.push(sender);
      return sender;
    };
    const started: Sender[] = [];
    if (options.audio) started.push(add("audio", "opus", options.tag));
    if (options.video) {
      started.push(add("video", options.video, options.tag + 1));
    }
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.#answerWaiter = Promise.withResolvers();
    this.send({
      offer: {
        sdp: pc.localDescription!.sdp,
        tracks: this.#senders.map((s) => ({
          mid: s.transceiver.mid!,
          track: { id: s.track.uuid, label: `${this.name} ${s.codec}` },
        })),
      },
    });
    const answer = await Promise.race([
      this.#answerWaiter.promise,
      new Promise<string>((_, reject) =>
        setTimeout(() => reject(new Error("no answer within 10 s")), 10_000)
      ),
    ]);
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    const fps = options.videoFps ?? 30;
    const keyframeInterval = options.keyframeIntervalFrames ?? fps * 2;
    for (const sender of started) {
      const interval = sender.codec === "opus" ? 20 : 1000 / fps;
      const clockStep = sender.codec === "opus" ? 960 : Math.round(90000 / fps);
      const size = sender.codec === "opus"
        ? 120
        : options.videoPayloadBytes ?? 1000;
      this.#timers.push(setInterval(() => {
        const keyframe = sender.codec !== "opus" &&
          (sender.keyframeWanted || sender.counter % keyframeInterval === 0);
        sender.keyframeWanted = false;
        if (keyframe && sender.codec === "h264") {
          for (const nal of H264_PARAMETER_SETS) {
            this.#write(sender, nal, false);
          }
        }
        if (sender.layers) {
          this.#writeLayers(sender, size, keyframe, clockStep);
          return;
        }
        const payload = makePayload(
          sender.codec,
          size,
          keyframe,
          sender.tag,
          sender.counter++,
          Date.now(),
        );
        this.#write(sender, payload, sender.codec !== "opus");
        sender.header.timestamp = (sender.header.timestamp + clockStep) >>> 0;
      }, interval));
    }
  }

  #write(sender: Sender, payload: Uint8Array, marker: boolean): void {
    const header = sender.header;
    header.marker = marker;
    header.sequenceNumber = (header.sequenceNumber + 1) & 0xffff;
    const rtpHeader = new RtpHeader({
      sequenceNumber: header.sequenceNumber,
      timestamp: header.timestamp,
      marker,
      payloadType: 0,
    });
    sender.track.writeRtp(new RtpPacket(rtpHeader, Buffer.from(payload)));
  }

  /** One frame on each simulcast layer still sending. */
  #writeLayers(
    sender: Sender,
    size: number,
    keyframe: boolean,
    clockStep: number,
  ): void {
    const transceiver = sender.transceiver;
    const dtls = transceiver.sender.dtlsTransport;
    const payloadType = transceiver.sender.codec?.payloadType;
    const ids = new Map(
      transceiver.headerExtensions.map((e) => [e.uri, e.id]),
    );
    const midId = ids.get(useSdesMid().uri);
    const ridId = ids.get(useSdesRTPStreamId().uri);
    if (!dtls || payloadType === undefined || !ridId || !midId) return;
    const counter = sender.counter++;
    sender.layers!.forEach((layer, index) => {
      const header = layer.header;
      header.sequenceNumber = (header.sequenceNumber + 1) & 0xffff;
      header.timestamp = (header.timestamp + clockStep) >>> 0;
      if (layer.stopped) return;
      header.payloadType = payloadType;
      header.marker = true;
      header.extensions = [
        { id: midId, payload: Buffer.from(transceiver.mid ?? "") },
        { id: ridId, payload: Buffer.from(layer.rid) },
      ];
      const payload = makePayload(
        sender.codec,
        size,
        keyframe,
        layerTag(sender.tag - 1, index),
        counter,
        Date.now(),
      );
      dtls.sendRtp(Buffer.from(payload), header).catch(() => {});
    });
  }

  /** Stops or restarts one simulcast layer of the published video, as a
   * browser does when its uplink cannot carry it. */
  setLayerSending(layer: number, sending: boolean): void {
    for (const sender of this.#senders) {
      const entry = sender.layers?.[layer];
      if (entry) {
        entry.stopped = !sending;
        if (sending) sender.keyframeWanted = true;
      }
    }
  }

  /** The bitrate the node last told each of our senders it may use (REMB),
   * undefined before any. */
  get bitrateCaps(): (bigint | undefined)[] {
    return this.#senders.map((s) =>
      (s.transceiver.sender as unknown as {
        receiverEstimatedMaxBitrate?: bigint;
      }).receiverEstimatedMaxBitrate
    );
  }

  /** Payloads sent so far, by tag. */
  get sent(): Map<number, number> {
    return new Map(this.#senders.map((s) => [s.tag, s.counter]));
  }

  stopMedia(): void {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
  }

  /** Kills the media transports without a word on the WebSocket, as a
   * network cut would. */
  async killIce(): Promise<void> {
    this.stopMedia();
    for (const pc of [this.#sendPc, this.#recvPc]) {
      for (const transport of pc?.iceTransports ?? []) await transport.stop();
    }
  }

  /** Where this client stands, for a test's failure message: its
   * connections' states and the packets of each track received. */
  describe(): string {
    const state = (pc: RTCPeerConnection | undefined) =>
      pc ? `${pc.connectionState} (ice ${pc.iceConnectionState})` : "none";
    const tracks = [...this.received.values()].map((track) =>
      `${
        track.info.kind === MediaKind.Audio ? "audio" : "video"
      } from ${track.info.participantId}: ${track.packets} packets`
    );
    return `${this.name} (${this.peerId}): send ${
      state(this.#sendPc)
    }, receive ${state(this.#recvPc)}; ${tracks.length} tracks received${
      tracks.length ? ` (${tracks.join(", ")})` : ""
    }`;
  }

  async close(reason = "test done"): Promise<void> {
    this.#leaving = true;
    this.stopMedia();
    if (this.#socket.readyState === WebSocket.OPEN) {
      this.send({ bye: { reason } });
      this.#socket.close(1000, reason);
    }
    await Promise.allSettled([this.#sendPc?.close(), this.#recvPc?.close()]);
  }

  get socketOpen(): boolean {
    return this.#socket.readyState === WebSocket.OPEN;
  }
}

/** Two werift peers on one node: one publishes audio and video, and the
 * other must receive both, intact, within the time given. */
export async function expectForwarding(
  wsUrl: string,
  where: string,
  timeoutMs: number,
): Promise<void> {
  const clients: WeriftClient[] = [];
  try {
    const alice = await WeriftClient.connect(wsUrl, "alice");
    clients.push(alice);
    const bob = await WeriftClient.connect(wsUrl, "bob");
    clients.push(bob);
    await alice.publish({ audio: true, video: "vp8", tag: 0 });
    await waitFor(
      `bob to receive alice's audio and video ${where}`,
      () =>
        bob.received.size === 2 &&
        [...bob.received.values()].every((t) => t.packets >= 10 && t.intact),
      timeoutMs,
    );
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}
