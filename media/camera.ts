// An RTSP camera as a router peer: its H.264 video (and G.711 or Opus
// audio) published as tracks anyone can subscribe to. The camera costs
// nothing while nobody watches: it is described once so its tracks can be
// announced, then streamed only while there are subscribers (and for an idle
// grace period after the last one leaves). Drops are retried with capped
// backoff, and subscribers see one unbroken stream across reconnects.
import type { RemoteStatus } from "../server/servers.ts";
import { H264Packetizer } from "./h264_packetizer.ts";
import { isKeyframeStart } from "./keyframe.ts";
import type { CachedPacket } from "./packet_cache.ts";
import type { PeerKind, Router, RouterPeer } from "./router.ts";
import {
  RtspClient,
  type RtspMediaSink,
  type RtspTransportMode,
} from "./rtsp/client.ts";
import {
  describeAudioSupport,
  describeVideoSupport,
  parseSpropParameterSets,
  type SdpMedia,
  type SdpSession,
} from "./rtsp/sdp.ts";
import { parseRtspUrl, redactRtspUrl } from "./rtsp/url.ts";
import { seqDiff } from "./seq.ts";
import {
  type MediaKind,
  Track,
  type TrackDescription,
  type TrackUpstream,
} from "./track.ts";

export type CameraState =
  | "connecting"
  | "streaming"
  | "retrying"
  | "idle"
  | "stopped";

export interface CameraEntry {
  id: string;
  url: string;
  /** Shown to participants; the URL's host and path when absent. */
  name?: string;
  /** How RTP travels; "tcp" (interleaved on the RTSP connection) by default. */
  transport?: RtspTransportMode;
}

export interface CameraLog {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

export interface CameraOptions {
  site: string;
  nodeId: string;
  /** Seconds to keep streaming without subscribers; 0 streams always. */
  idleSeconds: number;
  log?: CameraLog;
  /** Per RTSP answer and for connecting; default 10 s. */
  requestTimeoutMs?: number;
  /** Media silence that counts as a drop; default 10 s. */
  mediaTimeoutMs?: number;
}

// ---- Sequence numbers and timestamps ----

const MAX_SEQUENCE_GAP = 512;
// A timestamp jump larger than this is the camera's clock starting over, not
// time passing.
const MAX_TIMESTAMP_JUMP_SECONDS = 30;

export type ContinuityVerdict = "drop" | "next" | "new-run";

/**
 * Numbers the packets forwarded from one camera stream. Output sequence
 * numbers keep the camera's losses as gaps (so subscribers can tell loss
 * from silence) but not packets this side added or removed, and both
 * sequence numbers and timestamps continue across reconnects and camera
 * restarts, so subscribers see one stream rather than a jump their decoder
 * and jitter buffer would have to survive.
 */
export class RtpContinuity {
  readonly #clockRate: number;
  #rebase = true;
  #running = false;
  #lastInSeq = 0;
  #lastInTs = 0;
  #lastSsrc = 0;
  #lastOutSeq: number;
  #gap = 0;
  #tsOffset: number;
  #lastOutTs: number;
  #lastAtMs = 0;
  /** Output timestamp of the packet accepted last. */
  timestamp = 0;

  constructor(
    clockRate: number,
    initial: { sequenceNumber?: number; timestamp?: number } = {},
  ) {
    this.#clockRate = clockRate;
    const random = crypto.getRandomValues(new Uint32Array(2));
    this.#lastOutSeq = ((initial.sequenceNumber ?? random[0]) - 1) & 0xffff;
    this.#lastOutTs = (initial.timestamp ?? random[1]) >>> 0;
    this.#tsOffset = 0;
  }

  /** The next packet begins a new run: the camera was reconnected. */
  restart(): void {
    this.#rebase = true;
  }

  /** Takes one camera packet's numbers: "drop" for a duplicate or late one,
   * "new-run" when it starts a new run, else "next". Then call
   * nextSequence() once per packet forwarded for it. */
  accept(
    sequenceNumber: number,
    timestamp: number,
    ssrc: number,
    nowMs: number,
  ): ContinuityVerdict {
    let verdict: ContinuityVerdict = "next";
    if (this.#rebase || ssrc !== this.#lastSsrc) {
      verdict = "new-run";
    } else {
      const ahead = seqDiff(sequenceNumber, this.#lastInSeq);
      if (ahead > MAX_SEQUENCE_GAP || ahead < -MAX_SEQUENCE_GAP) {
        verdict = "new-run";
      } else if (ahead <= 0) {
        // Numbers of packets sent after it are already given out.
        return "drop";
      } else {
        this.#gap += ahead - 1;
        const step = (timestamp - this.#lastInTs) | 0;
        if (Math.abs(step) > this.#clockRate * MAX_TIMESTAMP_JUMP_SECONDS) {
          this.#rebaseTimestamp(timestamp, nowMs);
        }
      }
    }
    if (verdict === "new-run") {
      this.#rebase = false;
      this.#gap = 0;
      this.#rebaseTimestamp(timestamp, nowMs);
    }
    this.#running = true;
    this.#lastInSeq = sequenceNumber;
    this.#lastInTs = timestamp;
    this.#lastSsrc = ssrc;
    this.timestamp = (timestamp + this.#tsOffset) >>> 0;
    this.#lastOutTs = this.timestamp;
    this.#lastAtMs = nowMs;
    return verdict;
  }

  nextSequence(): number {
    this.#lastOutSeq = (this.#lastOutSeq + 1 + this.#gap) & 0xffff;
    this.#gap = 0;
    return this.#lastOutSeq;
  }

  /** A camera timestamp of the current run on the output clock, or
   * undefined before the run's first packet. */
  mapTimestamp(timestamp: number): number | undefined {
    if (this.#rebase || !this.#running) return undefined;
    return (timestamp + this.#tsOffset) >>> 0;
  }

  // The new run continues from the last output timestamp plus the wall
  // time since, as if the camera had kept sending.
  #rebaseTimestamp(timestamp: number, nowMs: number): void {
    const elapsed = this.#running
      ? Math.max(
        1,
        Math.round((nowMs - this.#lastAtMs) * this.#clockRate / 1000),
      )
      : 0;
    this.#tsOffset = (this.#lastOutTs + elapsed - timestamp) >>> 0;
  }
}

// ---- Fast start ----

export const GOP_CACHE_MAX_PACKETS = 4096;
export const GOP_CACHE_MAX_BYTES = 4 * 1024 * 1024;

/**
 * The packets since the latest keyframe start. RTSP has no way to ask a
 * camera for a keyframe, so a new subscriber would otherwise wait up to a
 * whole keyframe interval for its first picture; instead it is sent these
 * and decodes at once. A keyframe interval too long for the bounds leaves
 * the cache empty until the next keyframe.
 */
export class GopCache {
  readonly #maxPackets: number;
  readonly #maxBytes: number;
  #sequenceNumbers: number[] = [];
  #packets: CachedPacket[] = [];
  #bytes = 0;
  #keyframeTimestamp = -1;
  #collecting = false;

  constructor(
    maxPackets = GOP_CACHE_MAX_PACKETS,
    maxBytes = GOP_CACHE_MAX_BYTES,
  ) {
    this.#maxPackets = maxPackets;
    this.#maxBytes = maxBytes;
  }

  get size(): number {
    return this.#packets.length;
  }

  /** Every forwarded packet, in order; keyframeStart as Consumers judge it. */
  add(
    sequenceNumber: number,
    packet: CachedPacket,
    keyframeStart: boolean,
  ): void {
    // The parameter sets and the IDR after them share a timestamp: one start.
    if (keyframeStart && packet.timestamp !== this.#keyframeTimestamp) {
      this.clear();
      this.#collecting = true;
      this.#keyframeTimestamp = packet.timestamp;
    }
    if (!this.#collecting) return;
    const bytes = this.#bytes + packet.payload.byteLength;
    if (this.#packets.length >= this.#maxPackets || bytes > this.#maxBytes) {
      this.clear();
      return;
    }
    this.#sequenceNumbers.push(sequenceNumber);
    this.#packets.push(packet);
    this.#bytes = bytes;
  }

  clear(): void {
    this.#sequenceNumbers.length = 0;
    this.#packets.length = 0;
    this.#bytes = 0;
    this.#collecting = false;
    this.#keyframeTimestamp = -1;
  }

  /** Hands over the cached packets in order, the keyframe start first. */
  replay(
    send: (
      sequenceNumber: number,
      packet: CachedPacket,
      first: boolean,
    ) => void,
  ): void {
    for (let i = 0; i < this.#packets.length; i++) {
      send(this.#sequenceNumbers[i], this.#packets[i], i === 0);
    }
  }
}

// ---- Reconnecting ----

const BACKOFF_CAP_MS = 30_000;
/** A session that streamed this long resets the backoff. */
const STABLE_SESSION_MS = 10_000;

/** Delay before retry number attempt (0-based): 1, 2, 4 ... 30 s, each
 * spread by ±20% so cameras behind one failed switch do not all retry in
 * step. */
export function retryDelayMs(attempt: number, random = Math.random()): number {
  const base = Math.min(BACKOFF_CAP_MS, 1000 * 2 ** Math.min(attempt, 15));
  return Math.round(Math.min(BACKOFF_CAP_MS, base * (0.8 + 0.4 * random)));
}

// ---- The camera ----

const H264_CLOCK_RATE = 90000;
const DEFAULT_PROFILE_LEVEL_ID = "42e01f";
const RTP_VERSION = 2;
const RTCP_SENDER_REPORT = 200;
const NTP_UNIX_OFFSET_SECONDS = 2208988800;

interface IngestStream {
  kind: MediaKind;
  media: SdpMedia;
  track: Track;
  continuity: RtpContinuity;
  packetizer: H264Packetizer | undefined;
  gop: GopCache | undefined;
  awaitingKeyframe: boolean;
  /** Arrival time of the packet being packetized, for the emit callback. */
  nowMs: number;
}

interface PlannedStream {
  kind: MediaKind;
  media: SdpMedia;
  description: TrackDescription;
  parameterSets: Uint8Array[];
}

export class CameraSource implements RouterPeer {
  readonly id: string;
  readonly kind: PeerKind = "camera";
  readonly name: string;
  readonly #entry: CameraEntry;
  readonly #router: Router;
  readonly #options: CameraOptions;
  readonly #idleSeconds: number;
  readonly #log: CameraLog | undefined;
  #state: CameraState = "idle";
  #lastError: string | null = null;
  #retryAtMs: number | null = null;
  #attempt = 0;
  #client: RtspClient | undefined;
  #streamingSinceMs = 0;
  #streams: IngestStream[] = [];
  /** Published tracks by kind; they outlive sessions. */
  readonly #tracks = new Map<MediaKind, Track>();
  readonly #continuity = new Map<MediaKind, RtpContinuity>();
  #notices: string[] = [];
  #demand = 0;
  #reconnects = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #started = false;
  #stopped = false;

  constructor(entry: CameraEntry, router: Router, options: CameraOptions) {
    this.#entry = entry;
    this.#router = router;
    this.#options = options;
    this.#log = options.log;
    const idle = options.idleSeconds;
    if (!Number.isFinite(idle) || idle < 0) {
      throw new RangeError(`idleSeconds must be 0 or more, got ${idle}`);
    }
    this.#idleSeconds = idle;
    this.id = `camera-${entry.id}`;
    this.name = entry.name?.trim() || cameraName(entry.url);
  }

  get state(): CameraState {
    return this.#state;
  }

  /** Joins the router and describes the camera to announce its tracks. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#router.addPeer(this);
    void this.#connect();
  }

  /** Ends the session (with TEARDOWN) and withdraws the tracks. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#idleTimer);
    this.#retryAtMs = null;
    this.#state = "stopped";
    const client = this.#client;
    this.#client = undefined;
    this.#streams = [];
    this.#router.removePeer(this.id);
    this.#tracks.clear();
    await client?.teardown();
  }

  status(): RemoteStatus {
    return {
      state: this.#state,
      lastError: this.#lastError,
      retryInSeconds: this.#retryAtMs === null
        ? null
        : Math.max(0, Math.ceil((this.#retryAtMs - performance.now()) / 1000)),
      detail: {
        name: this.name,
        transport: this.#entry.transport ?? "tcp",
        idleSeconds: this.#idleSeconds,
        tracks: [...this.#tracks.values()].map((track) => ({
          id: track.id,
          kind: track.description.kind,
          mimeType: track.description.mimeType,
          subscribers: track.consumers.length,
        })),
        notices: [...this.#notices],
        reconnects: this.#reconnects,
      },
    };
  }

  // A camera publishes but never subscribes.
  trackAdded(): void {}
  trackUpdated(): void {}
  trackRemoved(): void {}

  async #connect(): Promise<void> {
    clearTimeout(this.#retryTimer);
    this.#retryAtMs = null;
    this.#state = "connecting";
    let client: RtspClient | undefined;
    try {
      client = new RtspClient(this.#entry.url, {
        transport: this.#entry.transport,
        requestTimeoutMs: this.#options.requestTimeoutMs,
        mediaTimeoutMs: this.#options.mediaTimeoutMs,
      });
      this.#client = client;
      const { sdp } = await client.describe();
      if (this.#client !== client) return;
      const plan = this.#plan(sdp);
      this.#publish(plan);
      if (this.#demand === 0 && this.#idleSeconds > 0) {
        // Described and announced: streaming waits for the first viewer.
        this.#client = undefined;
        client.close();
        this.#state = "idle";
        this.#lastError = null;
        this.#attempt = 0;
        this.#log?.info("camera ready; it streams while someone watches", {
          camera: this.name,
        });
        return;
      }
      const streams = plan.map((planned) => this.#ingest(planned));
      await client.setup(
        plan.map((planned) => planned.media),
        this.#sink(streams),
      );
      await client.play();
      if (this.#client !== client) return;
      this.#streamingSinceMs = performance.now();
      this.#state = "streaming";
      this.#lastError = null;
      this.#log?.info("camera streaming", {
        camera: this.name,
        transport: this.#entry.transport ?? "tcp",
      });
      this.#armIdleTimer();
      const ended = await client.ended;
      if (this.#client === client) this.#ended(ended);
    } catch (error) {
      client?.close();
      // Cancelled by stop() or by going idle: not a failure.
      if (client === undefined || this.#client === client) {
        this.#client = undefined;
        this.#streams = [];
        this.#retryOrIdle(error);
      }
    }
  }

  #ended(error: Error): void {
    this.#client = undefined;
    this.#streams = [];
    this.#reconnects++;
    if (performance.now() - this.#streamingSinceMs >= STABLE_SESSION_MS) {
      this.#attempt = 0;
    }
    this.#retryOrIdle(error);
  }

  #retryOrIdle(error: unknown): void {
    if (this.#stopped) return;
    const message = error instanceof Error ? error.message : String(error);
    this.#lastError = message;
    if (!this.#wanted()) {
      this.#state = "idle";
      this.#log?.info("camera disconnected while idle", {
        camera: this.name,
        reason: message,
      });
      return;
    }
    const delay = retryDelayMs(this.#attempt++);
    this.#state = "retrying";
    this.#retryAtMs = performance.now() + delay;
    this.#log?.warn("camera failed; retrying", {
      camera: this.name,
      error: message,
      retryInSeconds: Math.round(delay / 1000),
    });
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#retryAtMs = null;
      if (this.#wanted()) void this.#connect();
      else this.#state = "idle";
    }, delay);
  }

  /** Whether the camera should be streaming (or trying to). Until it has
   * been described there are no tracks to subscribe to, so it keeps trying. */
  #wanted(): boolean {
    return !this.#stopped &&
      (this.#demand > 0 || this.#idleSeconds === 0 || this.#tracks.size === 0);
  }

  #demandChanged(wanted: boolean): void {
    this.#demand = Math.max(0, this.#demand + (wanted ? 1 : -1));
    if (this.#stopped) return;
    if (this.#demand > 0) {
      clearTimeout(this.#idleTimer);
      this.#idleTimer = undefined;
      if (this.#state === "idle") void this.#connect();
    } else this.#armIdleTimer();
  }

  #armIdleTimer(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    if (this.#idleSeconds === 0 || this.#demand > 0 || this.#stopped) return;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      if (this.#demand > 0 || this.#stopped) return;
      const client = this.#client;
      this.#client = undefined;
      this.#streams = [];
      clearTimeout(this.#retryTimer);
      this.#retryAtMs = null;
      this.#state = "idle";
      this.#log?.info("camera idle: nobody is watching", { camera: this.name });
      void client?.teardown();
    }, this.#idleSeconds * 1000);
  }

  /** Which of the camera's streams become tracks. Without usable H.264 the
   * camera is of no use, and that is the error shown. */
  #plan(sdp: SdpSession): PlannedStream[] {
    const notices: string[] = [];
    const video = sdp.media.find((media) => media.kind === "video");
    if (!video) {
      const skipped = sdp.skipped.find((media) => media.kind === "video");
      throw new Error(
        skipped
          ? `the camera's video cannot be used: ${skipped.reason}`
          : "the camera offers no video stream",
      );
    }
    const videoSupport = describeVideoSupport(video);
    if (!videoSupport.ok) throw new Error(videoSupport.reason);
    let parameterSets: Uint8Array[] = [];
    const sprop = video.fmtp.get("sprop-parameter-sets");
    if (sprop !== undefined) {
      try {
        parameterSets = parseSpropParameterSets(sprop);
      } catch (error) {
        // In-band parameter sets will do; a start may just take longer.
        notices.push(`${(error as Error).message}; using in-band SPS/PPS`);
      }
    }
    const plan: PlannedStream[] = [{
      kind: "video",
      media: video,
      parameterSets,
      description: this.#describe(
        "video",
        "video/H264",
        `level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=${
          profileLevelId(video, parameterSets)
        }`,
        H264_CLOCK_RATE,
        0,
      ),
    }];
    const audio = sdp.media.find((media) => media.kind === "audio");
    if (audio) {
      const support = describeAudioSupport(audio);
      if (support.ok) {
        const opus = support.mimeType === "audio/opus";
        plan.push({
          kind: "audio",
          media: audio,
          parameterSets: [],
          description: this.#describe(
            "audio",
            support.mimeType,
            opus ? "minptime=10;useinbandfec=1" : "",
            audio.clockRate,
            opus ? 2 : 1,
          ),
        });
      } else notices.push(support.reason);
    } else {
      for (const skipped of sdp.skipped) {
        if (skipped.kind === "audio") {
          notices.push(`audio is skipped: ${skipped.reason}`);
        }
      }
    }
    if (notices.join("\n") !== this.#notices.join("\n")) {
      for (const notice of notices) {
        this.#log?.info("camera notice", { camera: this.name, notice });
      }
    }
    this.#notices = notices;
    return plan;
  }

  #describe(
    kind: MediaKind,
    mimeType: string,
    fmtp: string,
    clockRate: number,
    channels: number,
  ): TrackDescription {
    return {
      id: `${this.id}-${kind}`,
      kind,
      mimeType,
      fmtp,
      clockRate,
      channels,
      participantId: this.id,
      participantName: this.name,
      site: this.#options.site,
      originNodeId: this.#options.nodeId,
      path: [this.#options.nodeId],
      source: "camera",
      label: this.name,
      muted: false,
    };
  }

  /** Publishes the planned tracks; one whose codec changed since (the
   * camera was reconfigured) is replaced, since subscribers negotiated the
   * old one. */
  #publish(plan: PlannedStream[]): void {
    for (const [kind, track] of this.#tracks) {
      const planned = plan.find((p) => p.kind === kind);
      if (planned && sameCodec(planned.description, track.description)) {
        continue;
      }
      this.#tracks.delete(kind);
      this.#router.unpublish(track.id);
    }
    for (const planned of plan) {
      if (this.#tracks.has(planned.kind)) continue;
      const upstream: TrackUpstream = {
        requestKeyframe: () => this.#sendCachedKeyframe(),
        // Cameras have no retransmission: a loss stays a loss.
        sendNack: () => {},
        setDemand: (wanted) => this.#demandChanged(wanted),
      };
      const track = new Track(planned.description, this.id, upstream);
      this.#tracks.set(planned.kind, track);
      this.#router.publish(track);
    }
  }

  #ingest(planned: PlannedStream): IngestStream {
    let continuity = this.#continuity.get(planned.kind);
    if (!continuity) {
      continuity = new RtpContinuity(planned.description.clockRate);
      this.#continuity.set(planned.kind, continuity);
    }
    continuity.restart();
    const stream: IngestStream = {
      kind: planned.kind,
      media: planned.media,
      track: this.#tracks.get(planned.kind)!,
      continuity,
      packetizer: undefined,
      gop: undefined,
      awaitingKeyframe: planned.kind === "video",
      nowMs: 0,
    };
    if (planned.kind === "video") {
      const gop = new GopCache();
      stream.gop = gop;
      stream.packetizer = new H264Packetizer((payload, marker) => {
        const keyframe = isKeyframeStart("video/h264", payload);
        // After a (re)connect, pictures that refer to frames subscribers
        // never got would only show as garbage: they freeze until then.
        if (stream.awaitingKeyframe) {
          if (!keyframe) return;
          stream.awaitingKeyframe = false;
        }
        const sequenceNumber = continuity.nextSequence();
        const track = stream.track;
        track.receive(
          sequenceNumber,
          continuity.timestamp,
          marker,
          planned.media.payloadType,
          payload,
          stream.nowMs,
        );
        const packet = track.cache!.get(sequenceNumber);
        if (packet) gop.add(sequenceNumber, packet, keyframe);
      }, { parameterSets: planned.parameterSets });
    }
    return stream;
  }

  #sink(streams: IngestStream[]): RtspMediaSink {
    this.#streams = streams;
    return {
      onRtp: (index, packet, nowMs) => {
        const stream = this.#streams[index];
        if (stream) ingestRtp(stream, packet, nowMs);
      },
      onRtcp: (index, packet, nowMs) => {
        const stream = this.#streams[index];
        if (stream) ingestRtcp(stream, packet, nowMs);
      },
    };
  }

  /** A subscriber asked for a keyframe: one that has not been sent anything
   * yet starts from the cached one. Those mid-stream wait for the camera's
   * next keyframe. */
  #sendCachedKeyframe(): void {
    const stream = this.#streams.find((s) => s.kind === "video");
    if (!stream || stream.gop!.size === 0) return;
    const waiting = stream.track.consumers.filter((consumer) =>
      consumer.active && consumer.packetsSent === 0
    );
    if (waiting.length === 0) return;
    const nowMs = performance.now();
    stream.gop!.replay((sequenceNumber, packet, first) => {
      for (const consumer of waiting) {
        consumer.forward(sequenceNumber, packet, first, nowMs);
      }
    });
  }
}

/** One RTP packet from the camera into its track. Per packet: one subarray
 * for the payload, and for video whatever splitting needs. */
function ingestRtp(stream: IngestStream, packet: Uint8Array, nowMs: number) {
  const length = packet.length;
  if (length < 12 || packet[0] >> 6 !== RTP_VERSION) return;
  const first = packet[0];
  const payloadType = packet[1] & 0x7f;
  // Anything else (comfort noise, a second format) is not what was set up.
  if (payloadType !== stream.media.payloadType) return;
  let offset = 12 + (first & 0x0f) * 4;
  if (first & 0x10) {
    if (offset + 4 > length) return;
    offset += 4 + ((packet[offset + 2] << 8) | packet[offset + 3]) * 4;
  }
  let end = length;
  if (first & 0x20) end -= packet[length - 1];
  if (end <= offset) return;
  const marker = (packet[1] & 0x80) !== 0;
  const sequenceNumber = (packet[2] << 8) | packet[3];
  const timestamp = ((packet[4] << 24) | (packet[5] << 16) |
    (packet[6] << 8) | packet[7]) >>> 0;
  const ssrc = ((packet[8] << 24) | (packet[9] << 16) | (packet[10] << 8) |
    packet[11]) >>> 0;
  const continuity = stream.continuity;
  const verdict = continuity.accept(sequenceNumber, timestamp, ssrc, nowMs);
  if (verdict === "drop") return;
  const payload = packet.subarray(offset, end);
  const packetizer = stream.packetizer;
  if (packetizer === undefined) {
    stream.track.receive(
      continuity.nextSequence(),
      continuity.timestamp,
      marker,
      payloadType,
      payload,
      nowMs,
    );
    return;
  }
  if (verdict === "new-run") {
    stream.awaitingKeyframe = true;
    packetizer.reset();
    stream.gop!.clear();
  }
  stream.nowMs = nowMs;
  packetizer.push(payload, continuity.timestamp, marker);
}

/** Sender reports tie the camera's RTP clock to wall time, which the
 * router's own sender reports to subscribers extrapolate from. */
function ingestRtcp(stream: IngestStream, packet: Uint8Array, nowMs: number) {
  let offset = 0;
  while (offset + 4 <= packet.length) {
    if (packet[offset] >> 6 !== RTP_VERSION) return;
    const size = (((packet[offset + 2] << 8) | packet[offset + 3]) + 1) * 4;
    if (offset + size > packet.length) return;
    if (packet[offset + 1] === RTCP_SENDER_REPORT && size >= 28) {
      const view = new DataView(
        packet.buffer,
        packet.byteOffset + offset,
        size,
      );
      const rtpTimestamp = stream.continuity.mapTimestamp(view.getUint32(16));
      if (rtpTimestamp !== undefined) {
        const ntpMs = (view.getUint32(8) - NTP_UNIX_OFFSET_SECONDS) * 1000 +
          view.getUint32(12) / 2 ** 32 * 1000;
        stream.track.onSenderReport(ntpMs, rtpTimestamp, nowMs);
      }
    }
    offset += size;
  }
}

function sameCodec(a: TrackDescription, b: TrackDescription): boolean {
  return a.mimeType === b.mimeType && a.fmtp === b.fmtp &&
    a.clockRate === b.clockRate && a.channels === b.channels;
}

/** From the SPS itself when the camera gave one (cameras' fmtp values are
 * sometimes wrong), else the fmtp, else the most widely decodable profile. */
function profileLevelId(video: SdpMedia, parameterSets: Uint8Array[]): string {
  const sps = parameterSets.find((set) => (set[0] & 0x1f) === 7);
  if (sps && sps.length >= 4) {
    return Array.from(
      sps.subarray(1, 4),
      (byte) => byte.toString(16).padStart(2, "0"),
    ).join("");
  }
  const given = video.fmtp.get("profile-level-id");
  return given && /^[0-9a-f]{6}$/i.test(given)
    ? given.toLowerCase()
    : DEFAULT_PROFILE_LEVEL_ID;
}

/** The URL's host and path, e.g. "192.168.1.64/Streaming/Channels/101". */
export function cameraName(url: string): string {
  try {
    const parsed = parseRtspUrl(url);
    const host = parsed.host.includes(":") ? `[${parsed.host}]` : parsed.host;
    return parsed.path === "/" ? host : `${host}${parsed.path}`;
  } catch {
    return redactRtspUrl(url);
  }
}
