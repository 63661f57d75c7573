// What a benchmark subscriber measures: per received stream, packets and loss
// over a measurement window (from RTP sequence numbers, which both SFUs
// carry through with a per-subscriber offset, so upstream loss shows too),
// and the latency of every packet from its publisher's send stamp. Latencies
// go into a fixed log-scale histogram so generators can merge them cheaply.
import type { RTCPeerConnection } from "werift";
import { bodyOffset, readBody } from "../tests/support/media_payload.ts";
import { wallClockMs } from "./media_source.ts";
import type { CapturedLeg, TaggedStream } from "./wire_latency.ts";

const HISTOGRAM_MIN_MS = 0.01;
const HISTOGRAM_GROWTH = 1.02; // 2 % relative resolution
const HISTOGRAM_BUCKETS = 720; // up to 0.01 ms * 1.02^720 ≈ 16 s
const LOG_GROWTH = Math.log(HISTOGRAM_GROWTH);
/** Magic, tag, counter and send time before a synthetic body's filler
 * (tests/support/media_payload.ts). */
const STAMP_BYTES = 4 + 4 + 4 + 8;
/** One received packet in this many has its whole payload checked. */
const VERIFY_EVERY = 16;

export class LatencyHistogram {
  readonly counts = new Uint32Array(HISTOGRAM_BUCKETS);
  total = 0;

  record(ms: number): void {
    const index = ms <= HISTOGRAM_MIN_MS ? 0 : Math.min(
      HISTOGRAM_BUCKETS - 1,
      Math.floor(Math.log(ms / HISTOGRAM_MIN_MS) / LOG_GROWTH),
    );
    this.counts[index]++;
    this.total++;
  }

  reset(): void {
    this.counts.fill(0);
    this.total = 0;
  }

  /** Non-empty buckets as [index, count] pairs, for sending between processes. */
  toSparse(): [number, number][] {
    const sparse: [number, number][] = [];
    for (let i = 0; i < HISTOGRAM_BUCKETS; i++) {
      if (this.counts[i] > 0) sparse.push([i, this.counts[i]]);
    }
    return sparse;
  }

  addSparse(sparse: [number, number][]): void {
    for (const [index, count] of sparse) {
      this.counts[index] += count;
      this.total += count;
    }
  }

  /** The q-quantile (0..1) in ms: the upper edge of the bucket it falls in. */
  quantile(q: number): number | undefined {
    if (this.total === 0) return undefined;
    const rank = Math.ceil(q * this.total);
    let seen = 0;
    for (let i = 0; i < HISTOGRAM_BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank && seen > 0) {
        return HISTOGRAM_MIN_MS * HISTOGRAM_GROWTH ** (i + 1);
      }
    }
    return undefined;
  }
}

export interface StreamWindow {
  tag: number;
  received: number;
  receivedBytes: number;
  /** Packets the sequence numbers say were sent in the window. */
  expected: number;
  /** Every payload so far carried exactly the bytes its publisher made. */
  intact: boolean;
}

/** One received RTP stream, identified by the tag in its payloads. */
export class ReceivedStream {
  readonly tag: number;
  /** The SSRC it last arrived with. */
  ssrc = 0;
  intact = true;
  packets = 0;
  #cycles = 0;
  #lastSeq = -1;
  #highest = -1; // extended sequence number
  #windowStart = -1; // extended sequence number of the window's first packet
  #windowReceived = 0;
  #windowBytes = 0;

  constructor(tag: number) {
    this.tag = tag;
  }

  onPacket(sequenceNumber: number, payloadBytes: number, ssrc: number): void {
    this.packets++;
    this.ssrc = ssrc;
    this.#windowReceived++;
    this.#windowBytes += payloadBytes;
    if (this.#lastSeq >= 0) {
      const back = this.#lastSeq - sequenceNumber;
      if (back > 0x8000) this.#cycles++; // wrapped forwards
      else if (back < -0x8000) return; // late packet from before a wrap
    }
    this.#lastSeq = sequenceNumber;
    const extended = this.#cycles * 0x10000 + sequenceNumber;
    if (extended > this.#highest) this.#highest = extended;
    if (this.#windowStart < 0) this.#windowStart = extended;
  }

  /** Starts a measurement window at the next packet. */
  mark(): void {
    this.#windowStart = this.#highest >= 0 ? this.#highest + 1 : -1;
    this.#windowReceived = 0;
    this.#windowBytes = 0;
  }

  window(): StreamWindow {
    const expected =
      this.#windowStart >= 0 && this.#highest >= this.#windowStart
        ? this.#highest - this.#windowStart + 1
        : 0;
    return {
      tag: this.tag,
      received: this.#windowReceived,
      receivedBytes: this.#windowBytes,
      expected,
      intact: this.intact,
    };
  }
}

/** Everything one peer receives. */
export class ReceiveStats {
  readonly streams = new Map<number, ReceivedStream>();
  readonly latency: LatencyHistogram;
  firstMediaAtMs: number | undefined;
  #packets = 0;

  /** Peers in one process share a histogram: only the merged one matters. */
  constructor(latency: LatencyHistogram) {
    this.latency = latency;
  }

  /** Handles one packet; codecOffset is where the synthetic body starts. */
  onPacket(
    ssrc: number,
    sequenceNumber: number,
    payload: Uint8Array,
    codecOffset: number,
    nowMs: number,
  ): void {
    // Checking every byte of every payload cost the generators more than
    // the rest of their receive path; one packet in VERIFY_EVERY still
    // catches an SFU that alters payloads. The others are read up to the
    // stamp only, which readBody then has no body bytes to check.
    const verify = ++this.#packets % VERIFY_EVERY === 0;
    const body = readBody(
      verify ? payload : payload.subarray(0, codecOffset + STAMP_BYTES),
      codecOffset,
    );
    if (body === undefined) return;
    let stream = this.streams.get(body.tag);
    if (stream === undefined) {
      stream = new ReceivedStream(body.tag);
      this.streams.set(body.tag, stream);
    }
    if (!body.intact) stream.intact = false;
    stream.onPacket(sequenceNumber, payload.byteLength, ssrc);
    this.latency.record(nowMs - body.sentAtMs);
    this.firstMediaAtMs ??= nowMs;
  }

  mark(): void {
    for (const stream of this.streams.values()) stream.mark();
  }
}

/** Where a receiving PeerConnection stands: a peer that is connected and
 * gets SRTP packets but no media cannot decrypt them; one that gets none is
 * sent nothing. */
export interface ReceiveLeg {
  /** Connection, ICE and DTLS states, as "connected/ICE completed/DTLS
   * connected". */
  state: string;
  srtpPackets: number;
}

export function receiveLeg(pc: RTCPeerConnection | undefined): ReceiveLeg {
  if (!pc) return { state: "none", srtpPackets: 0 };
  const dtls = pc.dtlsTransports[0];
  return {
    state: `${pc.connectionState}/ICE ${pc.iceConnectionState}/DTLS ${
      dtls?.state ?? "none"
    }`,
    srtpPackets: dtls?.packetsReceived ?? 0,
  };
}

/** A connection's leg for a capture: the local UDP port of its selected
 * candidate pair (where its media leaves and arrives) and its streams. */
export function capturedLeg(
  pc: RTCPeerConnection | undefined,
  streams: TaggedStream[],
): CapturedLeg | undefined {
  const port = pc?.iceTransports[0]?.connection.nominated?.localCandidate
    .port;
  return port === undefined ? undefined : { port, streams };
}

/** The streams received so far, as a capture pairs them with their source. */
export function receivedStreams(stats: ReceiveStats): TaggedStream[] {
  return [...stats.streams.values()].map((s) => ({ tag: s.tag, ssrc: s.ssrc }));
}

/** Feeds every RTP packet a PeerConnection receives into stats. */
export function recordIncoming(pc: RTCPeerConnection, stats: ReceiveStats) {
  pc.ontrack = ({ track }) => {
    const offset = bodyOffset(track.kind === "audio" ? "opus" : "vp8");
    track.onReceiveRtp.subscribe((rtp) =>
      stats.onPacket(
        rtp.header.ssrc,
        rtp.header.sequenceNumber,
        rtp.payload,
        offset,
        wallClockMs(),
      )
    );
  };
}
