// A published track inside the router: whatever feeds it (a browser's
// PeerConnection, a trunk, a camera) pushes RTP in with receive(), and every
// subscribed Consumer gets it. Video keeps a bounded packet cache so that
// subscribers' NACKs are answered here instead of travelling upstream.
import type { Consumer } from "./consumer.ts";
import { isKeyframeStart } from "./keyframe.ts";
import { NackGenerator } from "./nack_generator.ts";
import { type CachedPacket, PacketCache } from "./packet_cache.ts";

export type MediaKind = "audio" | "video";

export interface TrackDescription {
  id: string;
  kind: MediaKind;
  mimeType: string;
  fmtp: string;
  clockRate: number;
  channels: number;
  participantId: string;
  participantName: string;
  site: string;
  originNodeId: string;
  /** Node ids the track crossed to get here, origin first. */
  path: string[];
  source: "participant" | "camera";
  label: string;
  muted: boolean;
  /** Set on each layer of a simulcast video (see Router.publish). */
  simulcast?: { group: string; layer: number };
}

export interface TrackTotals {
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  retransmitted: number;
  nackedUpstream: number;
  keyframeRequests: number;
  nackMisses: number;
}

/** Whatever feeds a track: keyframe requests and NACKs go back through it. */
export interface TrackUpstream {
  requestKeyframe(): void;
  sendNack(lost: number[]): void;
  /** Told when the first subscriber arrives and when the last one leaves, so
   * a source that costs something (a trunk, a camera) can pull or stop. */
  setDemand?(wanted: boolean): void;
}

/** Upstream keyframe requests are at most this frequent per track; a request
 * inside the window is deferred to its end rather than dropped. */
const KEYFRAME_REQUEST_INTERVAL_MS = 500;

export class Track {
  readonly description: TrackDescription;
  readonly isVideo: boolean;
  readonly consumers: Consumer[] = [];
  /** Consumers on another layer of this track's simulcast group, waiting
   * for a keyframe here to move over. */
  readonly joining: Consumer[] = [];
  /** The layers of this track's simulcast group, lowest first (the same
   * array for each), kept by the router; undefined for a plain track. */
  layers: Track[] | undefined;
  readonly cache: PacketCache | undefined;
  /** The peer the track comes from (a participant, or the trunk link its
   * route uses now); a track is never sent back to it. */
  publisherId: string;
  #upstream: TrackUpstream;
  #nackGenerator: NackGenerator | undefined;
  #nackScratch: number[] = [];
  #consumersAwaitingKeyframe = 0;
  #mimeLower: string;
  #lastKeyframeRequestMs = -Infinity;
  #deferredKeyframeRequest: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #demanded = false;
  /** Since when packets are expected: since the track exists, or for an
   * upstream that sends on demand, since the demand began. */
  expectedSinceMs = performance.now();

  /** What consumers that have left had sent. */
  #retiredOut = { packets: 0, bytes: 0, retransmitted: 0, nackMisses: 0 };
  packetsReceived = 0;
  bytesReceived = 0;
  keyframeRequests = 0;
  lastPacketAtMs = 0;
  /** Latest RTP timestamp and when it arrived, to extrapolate the media clock
   * for subscribers' sender reports. */
  lastTimestamp = 0;
  lastTimestampAtMs = 0;
  /** Publisher's latest sender report mapping (NTP ms, RTP timestamp, local arrival). */
  senderReport:
    | { ntpMs: number; rtpTimestamp: number; atMs: number }
    | undefined;

  constructor(
    description: TrackDescription,
    publisherId: string,
    upstream: TrackUpstream,
  ) {
    this.description = description;
    this.publisherId = publisherId;
    this.isVideo = description.kind === "video";
    this.#mimeLower = description.mimeType.toLowerCase();
    this.#upstream = upstream;
    if (this.isVideo) {
      this.cache = new PacketCache(1024);
      this.#nackGenerator = new NackGenerator();
    }
  }

  get id(): string {
    return this.description.id;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** One RTP packet from upstream, already decrypted. Per packet: the only
   * allocation is the cache entry, shared by every consumer. */
  receive(
    sequenceNumber: number,
    timestamp: number,
    marker: boolean,
    payloadType: number,
    payload: Uint8Array,
    nowMs: number,
  ): void {
    if (this.#closed) return;
    this.packetsReceived++;
    this.bytesReceived += payload.byteLength;
    this.lastPacketAtMs = nowMs;
    this.lastTimestamp = timestamp;
    this.lastTimestampAtMs = nowMs;
    const packet: CachedPacket = { payload, timestamp, marker, payloadType };
    let keyframe = false;
    if (this.isVideo) {
      this.cache!.put(sequenceNumber, packet);
      const generator = this.#nackGenerator!;
      if (generator.onPacket(sequenceNumber, nowMs)) {
        // A jump too large to repair: the source restarted or lost a lot,
        // and cached packets of the old run must not answer new NACKs.
        this.cache!.clear();
        this.cache!.put(sequenceNumber, packet);
        this.requestKeyframe(nowMs);
      }
      const count = generator.takeNacks(nowMs, this.#nackScratch);
      if (count > 0) {
        this.#upstream.sendNack(this.#nackScratch.slice(0, count));
      }
      if (this.#consumersAwaitingKeyframe > 0) {
        keyframe = isKeyframeStart(this.#mimeLower, payload);
        // Asked again (throttled) for as long as someone waits: the first
        // request can be lost, or made before a trunk's stream was bound,
        // and a subscriber that gets no video sends no PLI of its own.
        if (
          !keyframe &&
          nowMs - this.#lastKeyframeRequestMs >= KEYFRAME_REQUEST_INTERVAL_MS
        ) {
          this.requestKeyframe(nowMs);
        }
      }
    }
    const consumers = this.consumers;
    for (let i = 0; i < consumers.length; i++) {
      consumers[i].forward(sequenceNumber, packet, keyframe, nowMs);
    }
    // After the loop above, which the arrivals would otherwise join.
    if (keyframe && this.joining.length > 0) {
      const joining = this.joining;
      for (let i = joining.length - 1; i >= 0; i--) {
        joining[i].switchHere(this, sequenceNumber, packet, nowMs);
      }
    }
  }

  onSenderReport(ntpMs: number, rtpTimestamp: number, nowMs: number): void {
    this.senderReport = { ntpMs, rtpTimestamp, atMs: nowMs };
  }

  /** The RTP timestamp that corresponds to nowMs on this track's clock. */
  rtpTimestampAt(nowMs: number): number {
    const clockPerMs = this.description.clockRate / 1000;
    const report = this.senderReport;
    if (report && report.atMs >= this.lastTimestampAtMs - 5000) {
      return (report.rtpTimestamp +
        Math.round((nowMs - report.atMs) * clockPerMs)) >>> 0;
    }
    return (this.lastTimestamp +
      Math.round((nowMs - this.lastTimestampAtMs) * clockPerMs)) >>> 0;
  }

  requestKeyframe(nowMs: number): void {
    if (!this.isVideo || this.#closed) return;
    const wait = this.#lastKeyframeRequestMs + KEYFRAME_REQUEST_INTERVAL_MS -
      nowMs;
    if (wait <= 0) {
      this.#lastKeyframeRequestMs = nowMs;
      this.keyframeRequests++;
      this.#upstream.requestKeyframe();
      return;
    }
    if (this.#deferredKeyframeRequest !== undefined) return;
    this.#deferredKeyframeRequest = setTimeout(() => {
      this.#deferredKeyframeRequest = undefined;
      this.requestKeyframe(performance.now());
    }, wait);
  }

  /** A consumer that moves here from another layer brings its counts; they
   * are taken off in advance so that this track counts only what it sends
   * from here on (and its totals never go backwards). */
  addConsumer(consumer: Consumer): void {
    this.consumers.push(consumer);
    this.#retire(consumer, -1);
    this.#updateDemand();
  }

  removeConsumer(consumer: Consumer): void {
    const index = this.consumers.indexOf(consumer);
    if (index < 0) return;
    this.consumers.splice(index, 1);
    this.#retire(consumer, 1);
    this.#updateDemand();
  }

  #retire(consumer: Consumer, sign: 1 | -1): void {
    const retired = this.#retiredOut;
    retired.packets += sign * consumer.packetsSent;
    retired.bytes += sign * consumer.bytesSent;
    retired.retransmitted += sign * consumer.retransmitted;
    retired.nackMisses += sign * consumer.nackMisses;
  }

  /** A consumer of another layer waits here for a keyframe; it pulls this
   * layer meanwhile, as a trunk sends a layer only on demand. */
  addJoining(consumer: Consumer, nowMs: number): void {
    this.joining.push(consumer);
    this.keyframeWaitChanged(1);
    this.#updateDemand();
    this.requestKeyframe(nowMs);
  }

  removeJoining(consumer: Consumer): void {
    const index = this.joining.indexOf(consumer);
    if (index < 0) return;
    this.joining.splice(index, 1);
    this.keyframeWaitChanged(-1);
    this.#updateDemand();
  }

  #updateDemand(): void {
    const wanted = this.consumers.length + this.joining.length > 0;
    if (wanted === this.#demanded) return;
    this.#demanded = wanted;
    if (wanted) this.expectedSinceMs = performance.now();
    this.#upstream.setDemand?.(wanted);
  }

  /** Whether packets are expected: an upstream that sends on demand only
   * (a trunk, a camera) sends nothing while nobody here wants the track. */
  get expectsPackets(): boolean {
    return this.#demanded || this.#upstream.setDemand === undefined;
  }

  /** Consumers count themselves in and out of waiting, so receive() parses
   * payloads for keyframes only while someone is waiting for one. */
  keyframeWaitChanged(delta: 1 | -1): void {
    this.#consumersAwaitingKeyframe += delta;
  }

  /** Losses on the publisher's leg that retransmission did not repair. */
  get packetsLost(): number {
    const generator = this.#nackGenerator;
    return generator ? Math.max(0, generator.nacked - generator.recovered) : 0;
  }

  #rateSample = { bytes: 0, atMs: 0, bps: 0 };

  /** Receive bitrate over the time since the previous sample (at least 1 s),
   * computed when asked so the packet path pays nothing for it. */
  bitrateBps(nowMs: number): number {
    const sample = this.#rateSample;
    const elapsed = nowMs - sample.atMs;
    if (elapsed >= 1000) {
      sample.bps = sample.atMs === 0
        ? 0
        : Math.round((this.bytesReceived - sample.bytes) * 8000 / elapsed);
      sample.bytes = this.bytesReceived;
      sample.atMs = nowMs;
    }
    return sample.bps;
  }

  totals(): TrackTotals {
    const totals: TrackTotals = {
      packetsIn: this.packetsReceived,
      bytesIn: this.bytesReceived,
      packetsOut: this.#retiredOut.packets,
      bytesOut: this.#retiredOut.bytes,
      retransmitted: this.#retiredOut.retransmitted,
      nackedUpstream: this.#nackGenerator?.nacked ?? 0,
      keyframeRequests: this.keyframeRequests,
      nackMisses: this.#retiredOut.nackMisses,
    };
    for (const consumer of this.consumers) {
      totals.packetsOut += consumer.packetsSent;
      totals.bytesOut += consumer.bytesSent;
      totals.retransmitted += consumer.retransmitted;
      totals.nackMisses += consumer.nackMisses;
    }
    return totals;
  }

  /** Ends the track: every consumer is closed, which tells its subscriber. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#deferredKeyframeRequest);
    for (const consumer of [...this.joining]) consumer.switchAbandoned(this);
    for (const consumer of [...this.consumers]) consumer.close();
    this.consumers.length = 0;
  }
}
