// The SFU's own added latency, read off the wire: in a loopback capture, the
// time from a publisher's RTP packet entering the SFU's socket to each copy
// the SFU sends a subscriber. Unlike the send stamps in payloads, it leaves
// out the load generators (their timers, their queues, their decryption),
// which on a 2-core machine share the CPU with the SFU.
//
// SRTP leaves the RTP header in the clear, and an SFU rewrites a forwarded
// stream's SSRC, sequence numbers and timestamps by constant offsets, so a
// subscriber's stream is matched to its source by the one (source stream,
// sequence offset, timestamp offset) that most of its packets agree on.
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

/** A forwarded packet can be this late and still be matched to its source. */
const MATCH_WINDOW_MS = 250;
/** Packets of a subscriber's stream that vote on its source. */
const VOTERS = 24;
/** Votes the winning source needs, as a share of the voters. */
const QUORUM = 0.5;

interface SourceStream {
  index: number;
  packets: WirePacket[];
  /** Capture time of the first copy of each sequence number. */
  firstSeen: Map<number, number>;
}

export interface WireLatency {
  /** Added latency of every matched forwarded packet. */
  histogram: LatencyHistogram;
  /** Median added latency per subscriber port, in the order of `sinks`. */
  medianBySink: (number | null)[];
  /** Subscriber streams whose source could not be told. */
  unmatchedStreams: number;
}

/** The SFU's added latency: from each packet sent from one of `sources`
 * (publishers' ports) to each copy sent to one of `sinks` (subscribers'
 * ports). Retransmissions are not counted. */
export function addedLatency(
  packets: WirePacket[],
  sources: number[],
  sinks: number[],
): WireLatency {
  const sourcePorts = new Set(sources);
  const sinkIndex = new Map(sinks.map((port, i) => [port, i]));
  const inbound = new Map<string, SourceStream>();
  const outbound = new Map<string, WirePacket[]>();
  for (const packet of packets) {
    if (sourcePorts.has(packet.sourcePort)) {
      const key = `${packet.sourcePort}/${packet.ssrc}`;
      let stream = inbound.get(key);
      if (!stream) {
        stream = { index: inbound.size, packets: [], firstSeen: new Map() };
        inbound.set(key, stream);
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
  const sourceStreams = [...inbound.values()];
  const histogram = new LatencyHistogram();
  const bySink: number[][] = sinks.map(() => []);
  let unmatchedStreams = 0;
  for (const copies of outbound.values()) {
    const match = matchSource(copies, sourceStreams);
    if (match === undefined) {
      unmatchedStreams++;
      continue;
    }
    const sink = bySink[sinkIndex.get(copies[0].destinationPort)!];
    const sent = new Set<number>();
    for (const copy of copies) {
      if (sent.has(copy.sequenceNumber)) continue; // a retransmission
      sent.add(copy.sequenceNumber);
      const sourceSeq = (copy.sequenceNumber - match.seqOffset) & 0xffff;
      const at = match.stream.firstSeen.get(sourceSeq);
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

function matchSource(
  copies: WirePacket[],
  sources: SourceStream[],
): { stream: SourceStream; seqOffset: number } | undefined {
  const votes = new Map<string, number>();
  const voters = Math.min(VOTERS, copies.length);
  for (let v = 0; v < voters; v++) {
    const copy = copies[v];
    for (const source of sources) {
      // Each source packet sent in the window before the copy is a
      // candidate; the true source agrees on the same offsets every time.
      const packets = source.packets;
      let i = lowerBound(packets, copy.atMs - MATCH_WINDOW_MS);
      for (; i < packets.length && packets[i].atMs <= copy.atMs; i++) {
        const seqOffset = (copy.sequenceNumber - packets[i].sequenceNumber) &
          0xffff;
        const tsOffset = (copy.timestamp - packets[i].timestamp) >>> 0;
        const key = `${source.index}/${seqOffset}/${tsOffset}`;
        votes.set(key, (votes.get(key) ?? 0) + 1);
      }
    }
  }
  let best: string | undefined;
  let bestVotes = 0;
  for (const [key, count] of votes) {
    if (count > bestVotes) [best, bestVotes] = [key, count];
  }
  if (best === undefined || bestVotes < Math.max(2, voters * QUORUM)) {
    return undefined;
  }
  const [index, seqOffset] = best.split("/").map(Number);
  return { stream: sources[index], seqOffset };
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
