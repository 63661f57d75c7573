// The SFU's own added latency, read off the wire: in a loopback capture, the
// time from a publisher's RTP packet entering the SFU's socket to each copy
// the SFU sends a subscriber. Unlike the send stamps in payloads, it leaves
// out the load generators (their timers, their queues, their decryption),
// which on a 2-core machine share the CPU with the SFU.
//
// SRTP leaves the RTP header in the clear. The peers say which SSRC carries
// which payload tag on their legs, which pairs each subscriber stream with
// its publisher's; an SFU renumbers a forwarded stream's sequence numbers
// and timestamps by constant offsets, found as those most of its packets
// agree on. (Streams cannot be paired by offsets alone: publishers that
// send at the same rate keep constant offsets to every stream they do not
// feed, too.)
import { LatencyHistogram } from "./receive_stats.ts";

/** One captured RTP packet: its capture time and clear header fields. */
export interface WirePacket {
  /** Capture time in ms (any epoch, the same for every packet). */
  atMs: number;
  sourcePort: number;
  destinationPort: number;
  ssrc: number;
  sequenceNumber: number;
  timestamp: number;
}

const PCAP_MICROS = 0xa1b2c3d4;
const PCAP_NANOS = 0xa1b23c4d;
const LINKTYPE_ETHERNET = 1;
const ETHERTYPE_IPV4 = 0x0800;
const IPPROTO_UDP = 17;
const ETHERNET_HEADER = 14;
const UDP_HEADER = 8;
const RTP_HEADER = 12;

/** The RTP packets over UDP/IPv4 in a classic pcap file (as tcpdump writes
 * on Linux's loopback interface). Other packets (STUN, DTLS, RTCP) and
 * truncated records are skipped; a file that is not pcap throws. */
export function parsePcap(file: Uint8Array): WirePacket[] {
  if (file.length < 24) throw new Error("not a pcap file: too short");
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const magic = view.getUint32(0, true);
  const littleEndian = magic === PCAP_MICROS || magic === PCAP_NANOS;
  const swapped = view.getUint32(0, false);
  if (!littleEndian && swapped !== PCAP_MICROS && swapped !== PCAP_NANOS) {
    throw new Error("not a pcap file: unknown magic number");
  }
  const fractionPerMs = (littleEndian ? magic : swapped) === PCAP_NANOS
    ? 1e6
    : 1e3;
  const linkType = view.getUint32(20, littleEndian) & 0xffff;
  if (linkType !== LINKTYPE_ETHERNET) {
    throw new Error(`pcap link type ${linkType}, expected Ethernet (1)`);
  }
  const packets: WirePacket[] = [];
  for (let offset = 24; offset + 16 <= file.length;) {
    const seconds = view.getUint32(offset, littleEndian);
    const fraction = view.getUint32(offset + 4, littleEndian);
    const captured = view.getUint32(offset + 8, littleEndian);
    const frame = offset + 16;
    offset = frame + captured;
    if (offset > file.length) break;
    const packet = rtpOverUdp(view, frame, captured);
    if (packet === undefined) continue;
    packet.atMs = seconds * 1000 + fraction / fractionPerMs;
    packets.push(packet);
  }
  return packets;
}

function rtpOverUdp(
  view: DataView,
  frame: number,
  length: number,
): WirePacket | undefined {
  if (length < ETHERNET_HEADER + 20 + UDP_HEADER + RTP_HEADER) return undefined;
  if (view.getUint16(frame + 12) !== ETHERTYPE_IPV4) return undefined;
  const ip = frame + ETHERNET_HEADER;
  const ipHeader = (view.getUint8(ip) & 0x0f) * 4;
  if (view.getUint8(ip + 9) !== IPPROTO_UDP) return undefined;
  const udp = ip + ipHeader;
  const rtp = udp + UDP_HEADER;
  if (rtp + RTP_HEADER > frame + length) return undefined;
  // RTP version 2, and not RTCP (packet types 192-223 where RTP would have
  // its marker bit and payload type; RFC 5761 section 4).
  const first = view.getUint8(rtp);
  const second = view.getUint8(rtp + 1);
  if ((first & 0xc0) !== 0x80 || (second >= 192 && second <= 223)) {
    return undefined;
  }
  return {
    atMs: 0,
    sourcePort: view.getUint16(udp),
    destinationPort: view.getUint16(udp + 2),
    sequenceNumber: view.getUint16(rtp + 2),
    timestamp: view.getUint32(rtp + 4),
    ssrc: view.getUint32(rtp + 8),
  };
}

/** A forwarded packet can be this late and still be timed. */
const MATCH_WINDOW_MS = 250;
/** Packets of a subscriber's stream that vote on its offsets. */
const VOTERS = 24;
/** Votes the winning offsets need, as a share of the voters. */
const QUORUM = 0.5;

/** A stream as its peer knows it: the payload tag it carries (the same
 * at the publisher and at every subscriber) and the SSRC it has on that
 * peer's leg. */
export interface TaggedStream {
  tag: number;
  ssrc: number;
}

/** A captured leg: the generator-side port and the streams on it. */
export interface CapturedLeg {
  port: number;
  streams: TaggedStream[];
}

interface SourceStream {
  packets: WirePacket[];
  /** Capture time of the first copy of each sequence number. */
  firstSeen: Map<number, number>;
}

export interface WireLatency {
  /** Added latency of every timed forwarded packet. */
  histogram: LatencyHistogram;
  /** Median added latency per subscriber leg, in the order of `sinks`. */
  medianBySink: (number | null)[];
  /** Subscriber streams that could not be timed: their source was not
   * captured, or their packets agreed on no offsets. */
  unmatchedStreams: number;
}

/** The SFU's added latency: from each packet a publisher sends on one of
 * the `sources` legs to each copy the SFU sends on one of the `sinks` legs.
 * A subscriber's stream is paired with the publisher's stream of the same
 * tag; retransmissions are not counted. */
export function addedLatency(
  packets: WirePacket[],
  sources: CapturedLeg[],
  sinks: CapturedLeg[],
): WireLatency {
  const tagOf = (legs: CapturedLeg[]) =>
    new Map<string, number>(
      legs.flatMap((leg) =>
        leg.streams.map((s) => [`${leg.port}/${s.ssrc}`, s.tag] as const)
      ),
    );
  const sourceTags = tagOf(sources);
  const sinkTags = tagOf(sinks);
  const sinkIndex = new Map(sinks.map((leg, i) => [leg.port, i]));
  const inbound = new Map<number, SourceStream>();
  const outbound = new Map<string, WirePacket[]>();
  for (const packet of packets) {
    const sourceTag = sourceTags.get(`${packet.sourcePort}/${packet.ssrc}`);
    if (sourceTag !== undefined) {
      let stream = inbound.get(sourceTag);
      if (!stream) {
        stream = { packets: [], firstSeen: new Map() };
        inbound.set(sourceTag, stream);
      }
      stream.packets.push(packet);
      if (!stream.firstSeen.has(packet.sequenceNumber)) {
        stream.firstSeen.set(packet.sequenceNumber, packet.atMs);
      }
    } else if (sinkIndex.has(packet.destinationPort)) {
      const key = `${packet.destinationPort}/${packet.ssrc}`;
      const stream = outbound.get(key);
      if (stream) stream.push(packet);
      else outbound.set(key, [packet]);
    }
  }
  const histogram = new LatencyHistogram();
  const bySink: number[][] = sinks.map(() => []);
  let unmatchedStreams = 0;
  for (const [key, copies] of outbound) {
    const tag = sinkTags.get(key);
    const source = tag === undefined ? undefined : inbound.get(tag);
    const seqOffset = source && sequenceOffset(copies, source);
    if (source === undefined || seqOffset === undefined) {
      unmatchedStreams++;
      continue;
    }
    const sink = bySink[sinkIndex.get(copies[0].destinationPort)!];
    const sent = new Set<number>();
    for (const copy of copies) {
      if (sent.has(copy.sequenceNumber)) continue; // a retransmission
      sent.add(copy.sequenceNumber);
      const at = source.firstSeen.get(
        (copy.sequenceNumber - seqOffset) & 0xffff,
      );
      if (at === undefined) continue; // sent before the capture began
      const latency = copy.atMs - at;
      if (latency < 0 || latency > MATCH_WINDOW_MS) continue;
      histogram.record(latency);
      sink.push(latency);
    }
  }
  return {
    histogram,
    medianBySink: bySink.map((values) => median(values)),
    unmatchedStreams,
  };
}

/** How the SFU renumbered a stream: the (sequence, timestamp) offsets that
 * the most copies agree on with a source packet sent up to the window
 * before them. A stream whose packets are evenly spaced (audio) agrees as
 * well with the packets before its source, each an equally consistent
 * "older" pairing: of tied offsets, the one that makes the copies latest
 * after their source's packet is the SFU's. */
function sequenceOffset(
  copies: WirePacket[],
  source: SourceStream,
): number | undefined {
  const votes = new Map<string, { count: number; latency: number }>();
  const voters = Math.min(VOTERS, copies.length);
  const packets = source.packets;
  for (let v = 0; v < voters; v++) {
    const copy = copies[v];
    let i = lowerBound(packets, copy.atMs - MATCH_WINDOW_MS);
    for (; i < packets.length && packets[i].atMs <= copy.atMs; i++) {
      const seqOffset = (copy.sequenceNumber - packets[i].sequenceNumber) &
        0xffff;
      const tsOffset = (copy.timestamp - packets[i].timestamp) >>> 0;
      const key = `${seqOffset}/${tsOffset}`;
      const vote = votes.get(key);
      if (vote) vote.count++;
      else votes.set(key, { count: 1, latency: copy.atMs - packets[i].atMs });
    }
  }
  let best: string | undefined;
  let bestVote = { count: 0, latency: Infinity };
  for (const [key, vote] of votes) {
    if (
      vote.count > bestVote.count ||
      (vote.count === bestVote.count && vote.latency < bestVote.latency)
    ) {
      [best, bestVote] = [key, vote];
    }
  }
  if (best === undefined || bestVote.count < Math.max(2, voters * QUORUM)) {
    return undefined;
  }
  return Number(best.split("/")[0]);
}

function lowerBound(packets: WirePacket[], atMs: number): number {
  let low = 0, high = packets.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (packets[middle].atMs < atMs) low = middle + 1;
    else high = middle;
  }
  return low;
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = values.toSorted((a, b) => a - b);
  return sorted[sorted.length >> 1];
}
