// Received RTP from the socket to its router Track in one step.
//
// werift passes every datagram through node:dgram's event, an attempt to
// parse it as STUN, two ICE events, the DTLS transport's SRTP and RTP parse
// (header bits read through strings), the RTP router's header extension map,
// the receiver's statistics and a copy of the packet for the track's event.
// At one subscriber that was about a third of the SFU's main thread (perf,
// bench fan-out at K=1). Once a stream is bound to a Track (at its first
// packet, which takes werift's way), its packets are decrypted here and
// handed straight on, with the bookkeeping werift's own way keeps: the ICE
// pair's and the DTLS transport's counters (the peer's liveness watchdog
// reads them) and the receiver's statistics (werift's RTCP receiver reports
// are made from them). Everything else (RTCP, STUN, DTLS, another payload
// type, an SSRC not bound, a receiver stopped, SRTP left to werift) takes
// werift's way as before.
//
// A socket that carries a bound stream is also drained: the datagram that
// woke the event loop is followed by reading whatever queued behind it (the
// rest of a video frame's burst) straight from the kernel, so a burst costs
// one wake-up and one node:dgram read instead of one each.
import { Buffer } from "node:buffer";
import { type RTCDtlsTransport, StunProtocol } from "werift";
import type { NativeUdpSocket } from "./native_udp.ts";
import { PacketScratch } from "./packet_scratch.ts";
import { FastSrtpSession } from "./srtp/werift_srtp_patch.ts";

/** Takes one received RTP packet; the payload is the receiver's to keep. */
export type RtpDelivery = (
  sequenceNumber: number,
  timestamp: number,
  marker: boolean,
  payloadType: number,
  payload: Uint8Array,
) => void;

/** werift's per-SSRC receive statistics (StreamStatistics), as read by
 * add(): the fields of the packet it looks at. */
interface ReceiveStatistics {
  add(packet: StatisticsView): void;
}

/** One reusable stand-in for the RtpPacket werift's statistics read. */
interface StatisticsView {
  header: { sequenceNumber: number; timestamp: number; serializeSize: number };
  payload: { length: number };
}

interface CandidatePair {
  protocol: unknown;
  packetsReceived: number;
  bytesReceived: number;
}

interface IceConnection {
  protocols: unknown[];
  nominated?: CandidatePair;
}

/** What of werift's RTCDtlsTransport the fast path reads and counts. */
interface DtlsCounters {
  srtp: unknown;
  packetsReceived: number;
  bytesReceived: number;
  iceTransport: { connection: IceConnection };
}

class BoundStream {
  constructor(
    readonly payloadType: number,
    readonly statistics: ReceiveStatistics,
    readonly isStopped: () => boolean,
    readonly deliver: RtpDelivery,
  ) {}
}

const RTP_HEADER = 12;
const view: StatisticsView = {
  header: { sequenceNumber: 0, timestamp: 0, serializeSize: 0 },
  payload: { length: 0 },
};

/** The bound streams of one DTLS transport (one BUNDLEd PeerConnection). */
class TransportReceiver {
  readonly #dtls: DtlsCounters;
  readonly #streams = new Map<number, BoundStream>();
  /** Packets that took this way, for tests and metrics. */
  packets = 0;
  /** Datagrams read by draining a socket rather than from node:dgram. */
  drained = 0;

  constructor(dtls: DtlsCounters) {
    this.#dtls = dtls;
  }

  bind(ssrc: number, stream: BoundStream): void {
    this.#streams.set(ssrc, stream);
  }

  /** True when the datagram was taken here (delivered or dropped). */
  receive(protocol: unknown, data: Uint8Array): boolean {
    const length = data.length;
    // RTP only (RFC 7983 and 5761): version 2, not an RTCP packet type.
    if (length < RTP_HEADER || data[0] >> 6 !== 2) return false;
    const second = data[1];
    if (second >= 192 && second <= 208) return false;
    const ssrc = ((data[8] << 24) | (data[9] << 16) | (data[10] << 8) |
      data[11]) >>> 0;
    const stream = this.#streams.get(ssrc);
    if (stream === undefined || (second & 0x7f) !== stream.payloadType) {
      return false;
    }
    const dtls = this.#dtls;
    const srtp = dtls.srtp;
    if (!(srtp instanceof FastSrtpSession)) return false;
    if (stream.isStopped()) {
      this.#streams.delete(ssrc);
      return false;
    }
    const pair = dtls.iceTransport.connection.nominated;
    if (pair !== undefined && pair.protocol === protocol) {
      pair.packetsReceived++;
      pair.bytesReceived += length;
    }
    dtls.packetsReceived++;
    dtls.bytesReceived += length;
    let plain: Buffer;
    try {
      plain = srtp.remote.unprotectRtp(data);
    } catch {
      // Forged, replayed or mangled: dropped, as werift drops them.
      return true;
    }
    const end = plain.length;
    let headerLength = RTP_HEADER + 4 * (plain[0] & 0x0f);
    if (plain[0] & 0x10) {
      if (headerLength + 4 > end) return true;
      headerLength += 4 +
        4 * ((plain[headerLength + 2] << 8) | plain[headerLength + 3]);
    }
    const padding = plain[0] & 0x20 ? plain[end - 1] : 0;
    const payloadEnd = end - padding;
    if (payloadEnd < headerLength) return true;
    const sequenceNumber = (plain[2] << 8) | plain[3];
    const timestamp = ((plain[4] << 24) | (plain[5] << 16) | (plain[6] << 8) |
      plain[7]) >>> 0;
    const header = view.header;
    header.sequenceNumber = sequenceNumber;
    header.timestamp = timestamp;
    header.serializeSize = headerLength;
    view.payload.length = payloadEnd - headerLength;
    this.packets++;
    try {
      stream.statistics.add(view);
      stream.deliver(
        sequenceNumber,
        timestamp,
        (second & 0x80) !== 0,
        second & 0x7f,
        plain.subarray(headerLength, payloadEnd),
      );
    } catch {
      // As on werift's way: one packet's failure is not the socket's.
    }
    return true;
  }
}

const RECEIVER = Symbol("fastRtpReceiver");
type WithReceiver = { [RECEIVER]?: TransportReceiver };

/** werift's StunProtocol as the drain sees it. */
interface DrainedProtocol extends WithReceiver {
  transport?: {
    nativeSocket?: NativeUdpSocket;
    rinfo?: { address: string; port: number; family: string };
  };
}

type DatagramHandler = (
  this: DrainedProtocol,
  data: Buffer,
  addr: [string, number],
) => void;

/** At most this many queued datagrams are read per wake-up, so one busy
 * socket cannot hold the event loop from the others. */
const DRAIN_LIMIT = 64;
/** Larger than any datagram a WebRTC peer sends; longer ones are skipped. */
const drainScratch = new PacketScratch(16 * 1024);

/** Reads what is queued on the protocol's socket behind the datagram just
 * handled. Bound RTP takes the short way from the shared buffer (SRTP
 * decrypts into a buffer of its own); anything else is copied and given to
 * werift's way with its source address, as node:dgram would have. */
function drain(
  protocol: DrainedProtocol,
  receiver: TransportReceiver,
  weriftWay: DatagramHandler,
): void {
  const transport = protocol.transport;
  const socket = transport?.nativeSocket;
  if (socket === undefined) return;
  for (let i = 0; i < DRAIN_LIMIT; i++) {
    const length = socket.receive(drainScratch.bytes);
    if (length < 0) return;
    receiver.drained++;
    const datagram = drainScratch.upTo(length);
    if (receiver.receive(protocol, datagram)) continue;
    const source = socket.source();
    transport!.rinfo = source;
    try {
      weriftWay.call(protocol, Buffer.from(datagram), [
        source.address,
        source.port,
      ]);
    } catch {
      // As on node:dgram's way: one datagram's failure is not the socket's.
    }
  }
}

/** Where a stream's later packets go once it is bound, as werift's receiver
 * would route them: by SSRC, for the one payload type the Track carries. */
export interface StreamBinding {
  dtls: RTCDtlsTransport;
  ssrc: number;
  payloadType: number;
  /** werift's RTCRtpReceiver of the stream. */
  receiver: { stopped: boolean; remoteStreams: Record<number, unknown> };
  deliver: RtpDelivery;
}

/** Sends a bound stream's packets the short way from now on. False when
 * it cannot (werift's statistics for the SSRC not made yet, or SRTP left to
 * werift): its packets then keep taking werift's way. */
export function bindFastRtpReceive(binding: StreamBinding): boolean {
  const { dtls, ssrc, receiver } = binding;
  const counters = dtls as unknown as DtlsCounters & WithReceiver;
  const statistics = receiver.remoteStreams[ssrc] as
    | ReceiveStatistics
    | undefined;
  if (
    !patched || !(counters.srtp instanceof FastSrtpSession) ||
    typeof statistics?.add !== "function"
  ) {
    return false;
  }
  let transport = counters[RECEIVER];
  if (transport === undefined) {
    transport = counters[RECEIVER] = new TransportReceiver(counters);
  }
  // Every local candidate's socket: the nominated pair may change.
  for (const protocol of counters.iceTransport.connection.protocols) {
    if (protocol instanceof StunProtocol) {
      (protocol as unknown as WithReceiver)[RECEIVER] = transport;
    }
  }
  transport.bind(
    ssrc,
    new BoundStream(
      binding.payloadType,
      statistics,
      () => receiver.stopped,
      binding.deliver,
    ),
  );
  return true;
}

/** Packets that took the short way on a transport, and datagrams read by
 * draining its sockets. */
export function fastRtpCounts(
  dtls: RTCDtlsTransport,
): { packets: number; drained: number } {
  const receiver = (dtls as unknown as WithReceiver)[RECEIVER];
  return { packets: receiver?.packets ?? 0, drained: receiver?.drained ?? 0 };
}

let patched = false;

/** Puts the short way in front of werift's handling of each datagram. */
export function applyFastRtpReceive(): void {
  if (patched) return;
  const prototype = StunProtocol.prototype as unknown as {
    datagramReceived: DatagramHandler;
  };
  const datagramReceived = prototype.datagramReceived;
  if (typeof datagramReceived !== "function") {
    throw new Error(
      "werift changed: StunProtocol.prototype.datagramReceived is gone; media/fast_rtp_receive.ts needs updating",
    );
  }
  prototype.datagramReceived = function (data, addr) {
    const receiver = this[RECEIVER];
    if (receiver === undefined) return datagramReceived.call(this, data, addr);
    if (!receiver.receive(this, data)) datagramReceived.call(this, data, addr);
    drain(this, receiver, datagramReceived);
  };
  patched = true;
}
