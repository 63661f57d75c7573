// One subscriber's copy of one track. It rewrites each forwarded packet's
// header (SSRC, payload type, sequence number, timestamp) into one header
// object it owns and reuses, starts video at a keyframe, answers the
// subscriber's NACKs from the track's cache, and makes its sender reports.
// Under overload its video pauses (see media/overload.ts) and resumes at a
// keyframe.
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
import type { CachedPacket } from "./packet_cache.ts";
import { RetransmitLimiter } from "./retransmit_limiter.ts";
import { seqDiff } from "./seq.ts";
import type { Track } from "./track.ts";

/** The encrypted leg to one subscriber. */
export interface RtpOutput {
  /** False until DTLS is up; packets are not forwarded before. */
  readonly ready: boolean;
  sendRtp(payload: Uint8Array, header: RtpHeader): void;
}

const PLI_COUNT = 1;
const FIR_COUNT = 4;

/** NTP timestamp → the middle 32 bits used in LSR/DLSR (RFC 3550 6.4.1). */
const compactNtp = (ntp: bigint) => Number((ntp >> 16n) & 0xffffffffn);

export class Consumer {
  readonly track: Track;
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
  #nackedSinceReport = 0;
  #sentAtReport = 0;
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
  ) {
    this.track = track;
    this.subscriberId = subscriberId;
    this.#header.version = 2;
    this.#shedding = shedding;
    this.#tiebreak = tiebreakFor(subscriberId);
    this.#shedRank = track.isVideo
      ? shedding.enter(subscriberId, shedRank(0, this.#tiebreak))
      : NEVER_SHED;
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
    if (this.#shedRank >= this.#shedding.cutoff) {
      if (!this.#paused) this.#pause();
      this.#shedding.packetsShed++;
      return;
    }
    if (this.#paused) {
      this.#paused = false;
      this.restart(nowMs);
    }
    if (!this.#started) {
      if (this.#awaitingKeyframe && !keyframe) return;
      this.#begin(sequenceNumber, packet.timestamp, nowMs);
    } else if (seqDiff(sequenceNumber, this.#startSeq) < 0) {
      return; // older than this run: the subscriber never saw its frame
    }
    this.#send(output, sequenceNumber, packet, nowMs);
  }

  /** Stops mid-frame: what was sent of it is not repaired (NACKs go
   * unanswered while not started), and the stream resumes at a keyframe
   * with sequence numbers continuing, so the subscriber sees no gap to
   * NACK. */
  #pause(): void {
    this.#paused = true;
    this.#started = false;
    this.#setAwaitingKeyframe(false);
  }

  #begin(sequenceNumber: number, timestamp: number, nowMs: number): void {
    this.#started = true;
    this.#setAwaitingKeyframe(false);
    this.#startSeq = sequenceNumber;
    if (this.#hasSent) {
      this.#seqOffset = (this.#lastSeqOut + 1 - sequenceNumber) & 0xffff;
      const elapsed = Math.round(
        (nowMs - this.#lastOutAtMs) * this.track.description.clockRate / 1000,
      );
      this.#tsOffset = (this.#lastTsOut + Math.max(1, elapsed) - timestamp) >>>
        0;
    }
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
    output.sendRtp(packet.payload, header);
    this.packetsSent++;
    this.bytesSent += packet.payload.byteLength;
    if (!this.#hasSent || seqDiff(seqOut, this.#lastSeqOut) > 0) {
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
          this.#rerank();
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
  #rerank(): void {
    const sent = this.packetsSent - this.#sentAtReport;
    const nacked = sent > 0 ? this.#nackedSinceReport / sent : 0;
    this.#sentAtReport = this.packetsSent;
    this.#nackedSinceReport = 0;
    if (this.#shedRank === NEVER_SHED || this.#paused) return;
    const rank = shedRank(Math.max(this.fractionLost, nacked), this.#tiebreak);
    this.#shedding.move(this.#shedRank, rank);
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
    this.#shedding.leave(this.#shedRank);
    this.track.removeConsumer(this);
    this.onClose?.();
  }
}
