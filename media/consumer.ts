// One subscriber's copy of one track. It rewrites each forwarded packet's
// header (SSRC, payload type, sequence number, timestamp) into one header
// object it owns and reuses, starts video at a keyframe, answers the
// subscriber's NACKs from the track's cache, and makes its sender reports.
// Under overload its video pauses (see media/overload.ts) and resumes at a
// keyframe. A subscription to a simulcast group moves between the group's
// layers (see media/layer_selection.ts): it joins the new layer, keeps
// forwarding the old one until the new one's keyframe, and then goes on in
// the same stream.
import {
  GenericNack,
  type RtcpPacket,
  RtcpPayloadSpecificFeedback,
  RtcpRrPacket,
  RtcpSenderInfo,
  RtcpSrPacket,
  RtcpTransportLayerFeedback,
  RtpHeader,
} from "werift";
import {
  NEVER_SHED,
  shedRank,
  tiebreakFor,
  type VideoShedding,
  videoShedding,
} from "./overload.ts";
import { LayerSelector, type LayerStatus } from "./layer_selection.ts";
import type { CachedPacket } from "./packet_cache.ts";
import { RetransmitLimiter } from "./retransmit_limiter.ts";
import { seqDiff } from "./seq.ts";
import type { Track } from "./track.ts";
import { Vp8PictureIds } from "./vp8_picture_ids.ts";

/** The encrypted leg to one subscriber. */
export interface RtpOutput {
  /** False until DTLS is up; packets are not forwarded before. */
  readonly ready: boolean;
  sendRtp(payload: Uint8Array, header: RtpHeader): void;
}

const PLI_COUNT = 1;
const FIR_COUNT = 4;

/** A layer asked for that has given no keyframe by then is given up; a
 * layer pulled from another node that has sent nothing by then is taken
 * for stopped. */
const SWITCH_TIMEOUT_MS = 4000;
/** A layer that flowed and has been silent this long has been stopped by
 * its source. */
const LAYER_SILENCE_MS = 1500;

/** Simulcast layer changes completed since start, for metrics. */
export const layerSwitches = { up: 0, down: 0 };

const countSwitch = (from: Track, to: Track) => {
  if (to.description.simulcast!.layer > from.description.simulcast!.layer) {
    layerSwitches.up++;
  } else {
    layerSwitches.down++;
  }
};

/** NTP timestamp → the middle 32 bits used in LSR/DLSR (RFC 3550 6.4.1). */
const compactNtp = (ntp: bigint) => Number((ntp >> 16n) & 0xffffffffn);

export class Consumer {
  /** The track (for simulcast: the layer) it forwards now. */
  track: Track;
  readonly subscriberId: string;
  #output: RtpOutput | undefined;
  #header = new RtpHeader();
  #limiter = new RetransmitLimiter();
  #started = false;
  #awaitingKeyframe = false;
  #closed = false;
  #startSeq = 0;
  #seqOffset = 0;
  #tsOffset = 0;
  #hasSent = false;
  #lastSeqOut = 0;
  #lastTsOut = 0;
  #lastOutAtMs = 0;
  #lastSrCompact = 0;
  #lastSrAtMs = 0;
  #shedding: VideoShedding;
  /** Where this subscription stands in line to be shed; frozen while
   * paused, as a paused stream reports no loss. */
  #shedRank: number;
  #tiebreak: number;
  #paused = false;
  /** Held on its lowest layer while shed (a simulcast subscription). */
  #lowered = false;
  #nackedSinceReport = 0;
  #sentAtReport = 0;
  #vp8: Vp8PictureIds | undefined;
  /** Set for a subscription that may move between simulcast layers. */
  #selector: LayerSelector | undefined;
  #maxLayer = Infinity;
  /** The layer it waits to move to, and since when. */
  #target: Track | undefined;
  #targetSinceMs = 0;
  /** When the current run was asked for (its keyframe awaited since). */
  #restartedAtMs = 0;
  onClose: (() => void) | undefined;

  packetsSent = 0;
  bytesSent = 0;
  retransmitted = 0;
  nackMisses = 0;
  keyframeRequests = 0;
  fractionLost = 0;
  packetsLost = 0;
  jitter = 0;
  roundTripMs: number | undefined;

  constructor(
    track: Track,
    subscriberId: string,
    shedding: VideoShedding = videoShedding,
    selector?: LayerSelector,
  ) {
    this.track = track;
    this.subscriberId = subscriberId;
    this.#header.version = 2;
    this.#shedding = shedding;
    this.#tiebreak = tiebreakFor(subscriberId);
    this.#selector = selector;
    this.#shedRank = track.isVideo
      ? shedding.enter(
        subscriberId,
        shedRank(0, this.#tiebreak),
        selector !== undefined,
      )
      : NEVER_SHED;
    if (track.description.mimeType.toLowerCase() === "video/vp8") {
      this.#vp8 = new Vp8PictureIds();
    }
  }

  /** A subscription to the simulcast group of `track`: it starts on the
   * best layer it may have and moves with the subscriber's reception. The
   * track itself is used when it has no group. */
  static adaptive(
    track: Track,
    subscriberId: string,
    maxLayer = Infinity,
    shedding: VideoShedding = videoShedding,
  ): Consumer {
    if (!track.layers) return new Consumer(track, subscriberId, shedding);
    const now = performance.now();
    const selector = new LayerSelector(now);
    const layers = track.layers;
    const start = selector.initial(
      layerStatuses(layers, subscriberId, now),
      capIndex(layers, maxLayer),
      now,
    );
    const consumer = new Consumer(
      start < 0 ? track : layers[start],
      subscriberId,
      shedding,
      selector,
    );
    consumer.#maxLayer = maxLayer;
    return consumer;
  }

  /** The layer this subscription is on (0 is the lowest), or -1 for a
   * plain track. */
  get layer(): number {
    return this.track.layers?.indexOf(this.track) ?? -1;
  }

  /** The highest layer the subscriber wants; it is moved down at once if
   * above, and may move up to it when its reception allows. */
  setMaxLayer(maxLayer: number, nowMs: number): void {
    if (!this.#selector) return;
    this.#maxLayer = maxLayer;
    this.adaptLayer(nowMs);
  }

  /** Runs the layer choice; called about once a second, and on every
   * receiver report. */
  adaptLayer(nowMs: number): void {
    const selector = this.#selector;
    const layers = this.track.layers;
    if (!selector || !layers || this.#closed || this.#output === undefined) {
      return;
    }
    const target = this.#target;
    if (target !== undefined) {
      if (nowMs - this.#targetSinceMs < SWITCH_TIMEOUT_MS) return;
      selector.switchFailed(layers.indexOf(target), nowMs);
      this.#abandonSwitch();
    }
    if (!this.#output.ready) return;
    const current = layers.indexOf(this.track);
    const statuses = layerStatuses(layers, this.subscriberId, nowMs);
    if (!this.#started && !this.#paused && statuses[current] !== "stalled") {
      // A layer it has just moved to (at a start, or with nothing shown
      // yet) gets the time a switch gets to bring a keyframe.
      if (nowMs - this.#restartedAtMs < SWITCH_TIMEOUT_MS) return;
      selector.switchFailed(current, nowMs);
    }
    const wanted = selector.choose(
      current,
      statuses,
      this.#lowered ? 0 : capIndex(layers, this.#maxLayer),
      nowMs,
    );
    if (wanted !== current) this.#moveTo(layers[wanted], nowMs);
  }

  #moveTo(target: Track, nowMs: number): void {
    if (!this.#started || this.#paused) {
      // Nothing is being shown from this layer: move at once.
      this.#setAwaitingKeyframe(false);
      this.#moveOnto(target);
      this.#restartedAtMs = nowMs;
      this.restart(nowMs);
      return;
    }
    this.#target = target;
    this.#targetSinceMs = nowMs;
    target.addJoining(this, nowMs);
  }

  /** Becomes a consumer of `target` instead of its current layer; joins
   * before it leaves, so that neither layer's demand drops meanwhile. */
  #moveOnto(target: Track): void {
    const previous = this.track;
    target.addConsumer(this);
    previous.removeConsumer(this);
    countSwitch(previous, target);
    this.track = target;
  }

  #abandonSwitch(): void {
    const target = this.#target;
    if (target === undefined) return;
    this.#target = undefined;
    target.removeJoining(this);
  }

  /** The layer it was about to move to has ended. */
  switchAbandoned(target: Track): void {
    if (target === this.#target) this.#abandonSwitch();
  }

  /** A keyframe arrived on the layer it waits for: from this packet on it
   * forwards that layer instead, continuing its sequence numbers, and its
   * timestamps by the two layers' common clock where sender reports give
   * it. */
  switchHere(
    target: Track,
    sequenceNumber: number,
    packet: CachedPacket,
    nowMs: number,
  ): void {
    if (target !== this.#target) return;
    const output = this.#output;
    const previous = this.track;
    this.#target = undefined;
    this.#moveOnto(target);
    target.removeJoining(this);
    if (output === undefined || !output.ready) {
      this.restart(nowMs);
      return;
    }
    const aligned = (this.#tsOffset +
      previous.rtpTimestampAt(nowMs) - target.rtpTimestampAt(nowMs)) >>> 0;
    this.#begin(sequenceNumber, packet, nowMs, aligned);
    this.#send(output, sequenceNumber, packet, nowMs);
  }

  get ssrc(): number {
    return this.#header.ssrc;
  }

  get active(): boolean {
    return this.#output !== undefined && !this.#closed;
  }

  /** Starts forwarding on a negotiated leg. */
  activate(output: RtpOutput, ssrc: number, payloadType: number): void {
    if (this.#closed) return;
    this.#output = output;
    this.#header.ssrc = ssrc;
    this.#header.payloadType = payloadType;
    this.restart(performance.now());
  }

  /** Begins a new run of packets: video waits for a keyframe (asked for now)
   * and sequence numbers and timestamps continue from the last ones sent, so
   * the subscriber sees one unbroken stream across source changes. */
  restart(nowMs: number): void {
    // A paused stream restarts when it resumes.
    if (this.#paused) return;
    this.#started = false;
    this.#restartedAtMs = nowMs;
    if (this.track.isVideo) {
      this.#setAwaitingKeyframe(true);
      this.track.requestKeyframe(nowMs);
    }
  }

  #setAwaitingKeyframe(waiting: boolean): void {
    if (waiting === this.#awaitingKeyframe) return;
    this.#awaitingKeyframe = waiting;
    this.track.keyframeWaitChanged(waiting ? 1 : -1);
  }

  forward(
    sequenceNumber: number,
    packet: CachedPacket,
    keyframe: boolean,
    nowMs: number,
  ): void {
    const output = this.#output;
    if (output === undefined || !output.ready) return;
    const shedding = this.#shedding;
    if (this.#shedRank >= shedding.cutoff) {
      // A subscription with a layer choice is always on a simulcast group.
      if (
        this.#selector === undefined || this.#shedRank >= shedding.pauseCutoff
      ) {
        if (!this.#paused) this.#pause();
        shedding.packetsShed++;
        return;
      }
      if (!this.#lowered) {
        this.#lowered = true;
        // Not while its track is handing this packet out: moving changes
        // the track's list of consumers.
        queueMicrotask(() => this.#lower(performance.now()));
      }
    } else if (this.#lowered) {
      // Free to climb back, as its reception allows.
      this.#lowered = false;
    }
    if (this.#paused) {
      this.#paused = false;
      this.restart(nowMs);
    }
    if (!this.#started) {
      if (this.#awaitingKeyframe && !keyframe) return;
      this.#begin(sequenceNumber, packet, nowMs);
    } else if (seqDiff(sequenceNumber, this.#startSeq) < 0) {
      return; // older than this run: the subscriber never saw its frame
    }
    this.#send(output, sequenceNumber, packet, nowMs);
  }

  /** Shed down to the lowest layer (from the next keyframe there). */
  #lower(nowMs: number): void {
    const lowest = this.track.layers![0];
    if (!this.#lowered || this.#closed || this.#target === lowest) return;
    this.#abandonSwitch();
    if (this.track !== lowest) this.#moveTo(lowest, nowMs);
  }

  /** Stops mid-frame: what was sent of it is not repaired (NACKs go
   * unanswered while not started), and the stream resumes at a keyframe
   * with sequence numbers continuing, so the subscriber sees no gap to
   * NACK. */
  #pause(): void {
    this.#paused = true;
    this.#lowered = false;
    this.#started = false;
    this.#setAwaitingKeyframe(false);
    this.#abandonSwitch();
  }

  /** Starts a run at this packet. `alignedTsOffset` is a timestamp offset
   * that keeps the media clock (a simulcast layer switch); it is used if it
   * moves time forward, else the time elapsed since the last packet is. */
  #begin(
    sequenceNumber: number,
    packet: CachedPacket,
    nowMs: number,
    alignedTsOffset?: number,
  ): void {
    this.#started = true;
    this.#setAwaitingKeyframe(false);
    this.#startSeq = sequenceNumber;
    if (!this.#hasSent) return;
    const timestamp = packet.timestamp;
    this.#seqOffset = (this.#lastSeqOut + 1 - sequenceNumber) & 0xffff;
    if (
      alignedTsOffset !== undefined &&
      (((timestamp + alignedTsOffset - this.#lastTsOut) | 0) > 0)
    ) {
      this.#tsOffset = alignedTsOffset;
    } else {
      const elapsed = Math.round(
        (nowMs - this.#lastOutAtMs) * this.track.description.clockRate / 1000,
      );
      this.#tsOffset = (this.#lastTsOut + Math.max(1, elapsed) - timestamp) >>>
        0;
    }
    this.#vp8?.rebase(packet.payload);
  }

  #send(
    output: RtpOutput,
    sequenceNumber: number,
    packet: CachedPacket,
    nowMs: number,
  ): void {
    const header = this.#header;
    const seqOut = (sequenceNumber + this.#seqOffset) & 0xffff;
    header.sequenceNumber = seqOut;
    header.timestamp = (packet.timestamp + this.#tsOffset) >>> 0;
    header.marker = packet.marker;
    const newest = !this.#hasSent || seqDiff(seqOut, this.#lastSeqOut) > 0;
    const vp8 = this.#vp8;
    output.sendRtp(
      vp8 === undefined ? packet.payload : vp8.rewrite(packet.payload, newest),
      header,
    );
    this.packetsSent++;
    this.bytesSent += packet.payload.byteLength;
    if (newest) {
      this.#hasSent = true;
      this.#lastSeqOut = seqOut;
      this.#lastTsOut = header.timestamp;
      this.#lastOutAtMs = nowMs;
    }
  }

  handleRtcp(packet: RtcpPacket, nowMs: number): void {
    switch (packet.type) {
      case RtcpRrPacket.type:
      case RtcpSrPacket.type:
        for (const report of (packet as RtcpRrPacket).reports) {
          if (report.ssrc !== this.ssrc) continue;
          this.fractionLost = report.fractionLost / 256;
          this.packetsLost = report.packetsLost;
          this.jitter = report.jitter;
          this.#rerank(nowMs);
          if (report.lsr !== 0 && report.lsr === this.#lastSrCompact) {
            // RTT = now - LSR - DLSR; measured on our own clock since the SR left.
            this.roundTripMs = Math.max(
              0,
              nowMs - this.#lastSrAtMs - report.dlsr / 65.536,
            );
          }
        }
        break;
      case RtcpTransportLayerFeedback.type: {
        const feedback = (packet as RtcpTransportLayerFeedback).feedback;
        if (feedback?.count === GenericNack.count) {
          this.#answerNack((feedback as GenericNack).lost, nowMs);
        }
        break;
      }
      case RtcpPayloadSpecificFeedback.type: {
        const count = (packet as RtcpPayloadSpecificFeedback).feedback?.count;
        if (count === PLI_COUNT || count === FIR_COUNT) {
          this.keyframeRequests++;
          this.track.requestKeyframe(nowMs);
        }
        break;
      }
    }
  }

  #answerNack(lost: number[], nowMs: number): void {
    const output = this.#output;
    const cache = this.track.cache;
    if (!output || !cache || !this.#started) return;
    this.#nackedSinceReport += lost.length;
    for (const seqOut of lost) {
      const sequenceNumber = (seqOut - this.#seqOffset) & 0xffff;
      if (seqDiff(sequenceNumber, this.#startSeq) < 0) continue;
      const packet = cache.get(sequenceNumber);
      if (packet === undefined) {
        // Not received yet either: the upstream NACK will bring it, and it
        // then reaches every subscriber as an ordinary packet.
        this.nackMisses++;
        continue;
      }
      if (!this.#limiter.allow(sequenceNumber, nowMs)) continue;
      this.retransmitted++;
      this.#send(output, sequenceNumber, packet, nowMs);
    }
  }

  /** Places this subscription by its reception since the previous receiver
   * report: the loss it reports, or the share of packets it NACKed if that
   * is higher (the report counts retransmitted packets as received). */
  #rerank(nowMs: number): void {
    const sent = this.packetsSent - this.#sentAtReport;
    const nacked = sent > 0 ? this.#nackedSinceReport / sent : 0;
    this.#sentAtReport = this.packetsSent;
    this.#nackedSinceReport = 0;
    const loss = Math.max(this.fractionLost, nacked);
    if (this.#selector) {
      this.#selector.onReport(loss, nowMs);
      this.adaptLayer(nowMs);
    }
    if (this.#shedRank === NEVER_SHED || this.#paused) return;
    const rank = shedRank(loss, this.#tiebreak);
    this.#shedding.move(this.#shedRank, rank, this.#selector !== undefined);
    this.#shedRank = rank;
  }

  /** This leg's sender report, or undefined before its first packet. */
  senderReport(ntp: bigint, nowMs: number): RtcpSrPacket | undefined {
    if (!this.#hasSent || this.#closed) return undefined;
    this.#lastSrCompact = compactNtp(ntp);
    this.#lastSrAtMs = nowMs;
    return new RtcpSrPacket({
      ssrc: this.ssrc,
      senderInfo: new RtcpSenderInfo({
        ntpTimestamp: ntp,
        rtpTimestamp: (this.track.rtpTimestampAt(nowMs) + this.#tsOffset) >>> 0,
        packetCount: this.packetsSent >>> 0,
        octetCount: this.bytesSent >>> 0,
      }),
    });
  }

  get retransmitStats() {
    return {
      deduplicated: this.#limiter.deduplicated,
      rateLimited: this.#limiter.rateLimited,
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#setAwaitingKeyframe(false);
    this.#abandonSwitch();
    this.#shedding.leave(this.#shedRank, this.#selector !== undefined);
    this.track.removeConsumer(this);
    this.onClose?.();
  }
}

/** What each layer of a group is doing, as seen by one subscriber (its own
 * layers, e.g. a trunk's own announcements, are never candidates). */
function layerStatuses(
  layers: Track[],
  subscriberId: string,
  nowMs: number,
): LayerStatus[] {
  return layers.map((layer): LayerStatus => {
    if (layer.publisherId === subscriberId || layer.closed) return "stalled";
    if (!layer.expectsPackets) return "idle";
    const flowedSince = layer.lastPacketAtMs >= layer.expectedSinceMs;
    if (flowedSince) {
      return nowMs - layer.lastPacketAtMs < LAYER_SILENCE_MS
        ? "flowing"
        : "stalled";
    }
    return nowMs - layer.expectedSinceMs < SWITCH_TIMEOUT_MS
      ? "idle"
      : "stalled";
  });
}

/** The index in `layers` of the highest layer at most `maxLayer` (a layer
 * number, as a subscriber names it: a group may lack some numbers), or 0
 * when all are above it. */
function capIndex(layers: Track[], maxLayer: number): number {
  let index = 0;
  for (let i = 1; i < layers.length; i++) {
    if (layers[i].description.simulcast!.layer <= maxLayer) index = i;
  }
  return index;
}
