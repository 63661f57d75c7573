// A clearly separated patch layer over werift, applied once at start-up.
//
// SRTP: werift builds node:crypto cipher and HMAC objects for every packet;
// media/srtp keeps one context per session (libcrypto through FFI where
// allowed), see media/srtp/werift_srtp_patch.ts.
//
// DTLS key exchange: X25519 in native code instead of tweetnacl's
// JavaScript (media/x25519.ts).
//
// STUN: with no STUN server configured, werift queries its built-in default
// (stun.l.google.com) while gathering, and waits up to 5 s for it. Umbrella
// sends nothing to outside hosts unless told to, so that default is removed.
//
// NACK handling: werift's receiver re-NACKs every missing packet every 5 ms and
// its sender retransmits every listed packet every time, with no dedup or rate
// limit and 16-bit comparisons without wrap-around: under load that grows
// memory without bound. Umbrella answers NACKs itself (media/consumer.ts) and
// NACKs publishers once per lost packet (media/nack_generator.ts), so both of
// werift's paths are switched off here while "nack" stays negotiated in SDP.
//
// RTP receive: a bound stream's packets go from the socket to its Track
// without werift's layers (media/fast_rtp_receive.ts).
//
// UDP sends: straight to the kernel through FFI where allowed
// (media/native_udp.ts), RTP without werift's per-packet promises; else
// through node:dgram, with media datagrams counted from send until its
// callback and dropped beyond the send queue's cap (media/overload.ts).
import type { Buffer } from "node:buffer";
import type { Socket } from "node:dgram";
import { isIP } from "node:net";
import {
  Connection,
  DtlsClient,
  DtlsSocket,
  GenericNack,
  type RTCDtlsTransport,
  RtcpHeader,
  RtcpTransportLayerFeedback,
  RTCRtpReceiver,
  RTCRtpSender,
  type RtpHeader,
  UdpTransport,
} from "werift";
import {
  loadNativeUdp,
  nativeSocketFor,
  type NativeUdp,
  NativeUdpSocket,
} from "./native_udp.ts";
import { applyFastRtpReceive } from "./fast_rtp_receive.ts";
import { type SendQueue, sendQueue } from "./overload.ts";
import { applyNativeX25519 } from "./x25519.ts";
import {
  applyFastSrtp,
  FastSrtpSession,
  type FastSrtpStatus,
  MAX_RTP_OVERHEAD,
} from "./srtp/werift_srtp_patch.ts";
import { PacketScratch } from "./packet_scratch.ts";

export interface PatchStatus {
  srtp: FastSrtpStatus;
  /** Why UDP sends go through node:dgram, when they do. */
  udpFallbackReason?: string;
}

let applied: PatchStatus | undefined;

/** Applies every patch once; says which SRTP and UDP paths are in use. */
export function applyWeriftPatches(): PatchStatus {
  if (applied) return applied;
  const native = loadNativeUdp();
  applied = {
    srtp: applyFastSrtp(),
    ...(native.available ? {} : { udpFallbackReason: native.reason }),
  };

  // The receiver's NackHandler only runs when this getter finds "nack" in the
  // codec's feedback; PLI support is looked up separately and is untouched.
  Object.defineProperty(RTCRtpReceiver.prototype, "nackEnabled", {
    configurable: true,
    get: () => undefined,
  });

  // The sender still sees every RTCP packet through onRtcp, where the
  // consumer handles NACKs; only the built-in retransmission is skipped.
  const handleRtcpPacket = RTCRtpSender.prototype.handleRtcpPacket;
  RTCRtpSender.prototype.handleRtcpPacket = function (
    this: RTCRtpSender,
    packet: Parameters<typeof handleRtcpPacket>[0],
  ) {
    if (
      packet.type === RtcpTransportLayerFeedback.type &&
      (packet as RtcpTransportLayerFeedback).feedback?.count ===
        GenericNack.count
    ) {
      this.onRtcp.execute(packet);
      return;
    }
    handleRtcpPacket.call(this, packet);
  };

  patchRtcpHeaderParsing();
  patchDtlsRetransmission();
  patchUdpSends(sendQueue, native);
  applyFastRtpReceive();
  patchDefaultStunServer();
  patchSocketsBoundAfterClose();
  applyNativeX25519();
  return applied;
}

/**
 * werift reads the three bit fields of every RTCP header by printing the
 * byte as a binary string, splitting it into an array, padding, slicing and
 * joining it again and parsing the result: about thirty short-lived objects
 * per header, the largest single source of garbage in a node forwarding to
 * dozens of subscribers (each sends receiver reports every second). The same
 * fields, read with shifts and masks.
 */
function patchRtcpHeaderParsing(): void {
  const Header = RtcpHeader as unknown as {
    deSerialize(buf: Uint8Array): RtcpHeader;
    new (props: Partial<RtcpHeader>): RtcpHeader;
  };
  Header.deSerialize = (buf) => {
    // werift's own reader threw on a short header, which drops the packet.
    if (buf.length < 4) {
      throw new RangeError("RTCP header shorter than 4 bytes");
    }
    return new Header({
      version: buf[0] >> 6,
      padding: (buf[0] & 0x20) !== 0,
      count: buf[0] & 0x1f,
      type: buf[1],
      length: (buf[2] << 8) | buf[3],
    });
  };
}

/** Only a configured STUN server is ever used: werift fills in a public
 * one (and resolves its name) when none is given. */
function patchDefaultStunServer(): void {
  // applyStunTurnServersFromOptions and these fields are not in werift's
  // typings; the constructor and setIceServers both call the method.
  const prototype = Connection.prototype as unknown as {
    applyStunTurnServersFromOptions(this: ConnectionServers): void;
  };
  const apply = prototype.applyStunTurnServersFromOptions;
  if (typeof apply !== "function") {
    throw new Error(
      "werift changed: Connection.prototype.applyStunTurnServersFromOptions is gone; media/werift_patches.ts needs updating",
    );
  }
  prototype.applyStunTurnServersFromOptions = function (this) {
    apply.call(this);
    if (this.options.stunServer === undefined) this.stunServer = undefined;
  };
}

/**
 * werift's ICE gathering binds a socket for each address (probing a port
 * range one port at a time) and only then lists it among the connection's
 * protocols, which close() closes. A connection closed while a socket was
 * still binding (a participant gone within moments of joining, a trunk
 * dropped mid-setup) left that socket open for good, holding a port of the
 * range and, here, a duplicate descriptor for the native socket. Such a
 * socket is now closed as soon as it is bound, and the gathering of that
 * candidate fails as the connection is closed anyway.
 */
function patchSocketsBoundAfterClose(): void {
  const prototype = Connection.prototype as unknown as {
    ensureProtocol(this: ClosableConnection, protocol: GatheredProtocol): void;
  };
  const ensureProtocol = prototype.ensureProtocol;
  if (typeof ensureProtocol !== "function") {
    throw new Error(
      "werift changed: Connection.prototype.ensureProtocol is gone; media/werift_patches.ts needs updating",
    );
  }
  prototype.ensureProtocol = function (this, protocol) {
    ensureProtocol.call(this, protocol);
    const connectionMade = protocol.connectionMade;
    protocol.connectionMade = async (...args: unknown[]) => {
      await connectionMade.apply(protocol, args);
      if (this.state === "closed") {
        await protocol.close?.();
        throw new Error("the ICE connection closed while gathering");
      }
    };
  };
}

interface ClosableConnection {
  state: string;
}

interface GatheredProtocol {
  connectionMade(...args: unknown[]): Promise<void>;
  close?(): Promise<void>;
}

interface ConnectionServers {
  options: { stunServer?: [string, number] };
  stunServer?: [string, number];
}

type Address = [string, number];
interface PatchedUdpTransport {
  socket: Socket;
  rinfo?: { address?: string; port?: number };
  send(data: Buffer, addr?: Address): Promise<void>;
  /** Set once the socket is bound, when sends can bypass node:dgram. */
  nativeSocket?: NativeUdpSocket;
}

/** Every send is already complete from its caller's point of view. */
const SENT = Promise.resolve();

/** RFC 7983: first bytes 128-191 are RTP or RTCP; the rest (STUN, DTLS) is
 * connection upkeep, rare, small and never dropped. */
const isMedia = (data: Uint8Array) => data[0] >= 128 && data[0] <= 191;

/**
 * werift's UdpTransport.send hands each datagram to node:dgram without a
 * callback. Each transport's send (an instance field, set before init,
 * which werift calls right after construction) is replaced: once init has
 * bound the socket, datagrams go straight to the kernel (media/native_udp.ts)
 * where FFI allows; otherwise through node:dgram, counting each media
 * datagram in the queue until node:dgram's callback and dropping it when
 * the queue is full. A socket closed with sends outstanding never calls
 * back for them, so its remainder is released on close. Sends to a host
 * name (TURN servers) keep werift's path, which resolves it.
 */
function patchUdpSends(queue: SendQueue, native: NativeUdp): void {
  // init is private in werift's types.
  const prototype = UdpTransport.prototype as unknown as {
    init(this: UdpTransport): Promise<void>;
  };
  const init = prototype.init;
  prototype.init = async function (this: UdpTransport) {
    const transport = this as unknown as PatchedUdpTransport;
    countSends(transport, queue);
    await init.call(this);
    const socket = nativeSocketFor(native, transport.socket);
    if (!(socket instanceof NativeUdpSocket)) return;
    transport.nativeSocket = socket;
    shrinkReceiveAllocations(transport.socket, socket);
    transport.socket.once("close", () => {
      transport.nativeSocket = undefined;
      socket.close();
    });
  };
}

interface Waiting {
  data: Buffer;
  port: number | undefined;
  host: string | undefined;
  counted: boolean;
}

function countSends(transport: PatchedUdpTransport, queue: SendQueue): void {
  const socket = transport.socket;
  const sendToHostName = transport.send;
  let inFlight = 0;
  let checkedIp = "";
  // Deno 2.9's node:dgram sends what one turn queued on a socket in reverse
  // order, so each datagram waits for the previous one's callback here.
  let busy = false;
  const waiting: Waiting[] = [];
  const sent = () => {
    // After close the remainder is already released.
    if (inFlight === 0) return;
    inFlight--;
    queue.release(1);
  };
  const start = (
    data: Buffer,
    port: number | undefined,
    host: string | undefined,
    counted: boolean,
  ) => {
    busy = true;
    try {
      // A failed send is reported here too; UDP carries on regardless.
      socket.send(data, port, host, () => {
        if (counted) sent();
        next();
      });
    } catch (error) {
      busy = false;
      if (counted) sent();
      throw error;
    }
  };
  const next = () => {
    busy = false;
    const item = waiting.shift();
    if (item === undefined) return;
    try {
      start(item.data, item.port, item.host, item.counted);
    } catch {
      // The socket closed: what still waits is released with it.
    }
  };
  socket.once("close", () => {
    queue.release(inFlight);
    inFlight = 0;
    waiting.length = 0;
  });
  transport.send = (data, addr) => {
    if (addr !== undefined && addr[0] !== checkedIp) {
      if (!isIP(addr[0])) return sendToHostName(data, addr);
      checkedIp = addr[0];
    }
    const host = addr !== undefined ? addr[0] : transport.rinfo?.address;
    const port = addr !== undefined ? addr[1] : transport.rinfo?.port;
    const native = transport.nativeSocket;
    if (native !== undefined) {
      if (!native.send(data, host!, port!) && isMedia(data)) queue.refused++;
      return SENT;
    }
    const counted = isMedia(data);
    if (counted) {
      if (!queue.acquire()) return SENT;
      inFlight++;
    }
    if (busy) {
      waiting.push({ data, port, host, counted });
      return SENT;
    }
    try {
      start(data, port, host, counted);
    } catch (error) {
      return Promise.reject(error);
    }
    return SENT;
  };
}

/** What node:dgram allocates per received datagram, at most: more than any
 * WebRTC datagram (they stay under the path MTU, about 1200 bytes in
 * practice), far less than its 64 KiB default. */
const RECEIVE_ALLOCATION_BYTES = 16 * 1024;

/**
 * Deno's node:dgram allocates a fresh buffer of its "receive buffer size"
 * (64 KiB by default) for every datagram it receives: a publisher's 200
 * packets a second made 13 MB/s of garbage, and garbage collection most of
 * the receiving thread's work. In Deno, setRecvBufferSize only sets that
 * allocation (doubled on Linux, as Node doubles SO_RCVBUF); should it ever
 * shrink the kernel's buffer instead, the kernel's size is put back.
 */
function shrinkReceiveAllocations(
  socket: Socket,
  native: NativeUdpSocket,
): void {
  const kernel = native.kernelReceiveBuffer();
  const doubled = Deno.build.os === "linux";
  socket.setRecvBufferSize(RECEIVE_ALLOCATION_BYTES / (doubled ? 2 : 1));
  if (kernel > 0 && native.kernelReceiveBuffer() !== kernel) {
    socket.setRecvBufferSize(kernel / 2);
  }
}

/** Room for any RTP packet this node sends (payloads come from datagrams of
 * at most an MTU) plus SRTP's tag. */
const SCRATCH_BYTES = 4096;
const scratch = new PacketScratch(SCRATCH_BYTES);

/**
 * Sends one RTP packet on a connected transport. werift's sendRtp goes
 * through three async functions (DTLS transport, ICE connection, STUN
 * protocol), each making a promise per packet, and needs a fresh buffer
 * for the encrypted packet because node:dgram sends it later. Where the
 * nominated pair sends through a native socket, the packet is encrypted
 * into one scratch buffer and handed to the kernel before this returns.
 * Anything else (TURN relays, node:dgram, SRTP left to werift) takes
 * werift's path.
 */
export function sendRtp(
  dtls: RTCDtlsTransport,
  payload: Uint8Array,
  header: RtpHeader,
): void {
  const connection = dtls.iceTransport.connection as unknown as {
    nominated?: {
      protocol: { type: string; transport: PatchedUdpTransport };
      // Its remoteAddr getter builds an array on every call.
      remoteCandidate: { host: string; port: number };
    };
    canSendApplicationData(): boolean;
  };
  const pair = connection.nominated;
  const native = pair?.protocol.type === "stun"
    ? pair.protocol.transport.nativeSocket
    : undefined;
  const srtp = dtls.srtp as unknown;
  // The connection reports connected a moment before werift derives the
  // SRTP keys; werift's own sendRtp would throw and catch for each packet.
  if (srtp === undefined) return;
  if (
    native === undefined || !(srtp instanceof FastSrtpSession) ||
    payload.byteLength > SCRATCH_BYTES - MAX_RTP_OVERHEAD
  ) {
    // deno-lint-ignore no-explicit-any
    dtls.sendRtp(payload as any, header);
    return;
  }
  if (!connection.canSendApplicationData()) return;
  const packet = srtp.encryptInto(scratch, payload, header);
  const remote = pair!.remoteCandidate;
  if (!native.send(packet, remote.host, remote.port)) sendQueue.refused++;
}

const CLIENT_HELLO = 1;
const HELLO_VERIFY_REQUEST = 3;
const SERVER_HELLO_DONE = 14;
const FINISHED = 20;

type Handshake = { msg_type: number; fragment: Buffer };
type HandshakeHandler = (assembled: Handshake[]) => Promise<void>;
interface PatchedSocket {
  dtls: {
    flight: number;
    epoch: number;
    recordSequenceNumber: number;
    lastMessage: Buffer[];
    handshakeCache: Record<number, { data: Handshake[] } | undefined>;
  };
  transport: { send(data: Buffer): Promise<unknown> };
}

/**
 * werift takes a retransmitted flight as a new one. Its client, seeing the
 * server's flight 4 again after sending flight 5 (slow in werift, so the
 * peer times out), makes a fresh key pair and, once the server's Finished
 * is in, a second flight 5 with a new master secret; its server, seeing
 * flight 5 again after sending flight 6, recomputes the master secret over
 * a handshake log that now holds its own Finished. Either way the SRTP keys
 * come from a secret the peer never saw: every packet then fails
 * authentication while the connection looks healthy. Per RFC 6347 4.2.4 a
 * repeated flight only means the peer missed our answer, so it is answered
 * by resending that flight and changes nothing.
 *
 * A copy can also arrive before we have answered: werift's server handles
 * a flight's messages as they come and finishes the first copy's Finished
 * asynchronously, so a resent ClientKeyExchange taken in between computes
 * the master secret again, over a log that now holds CertificateVerify and
 * Finished, and flight 6 goes out under keys the client does not have. So
 * a message of the peer's key exchange flight that werift has already
 * logged is dropped whenever it comes; other repeats are told by our own
 * flight (repeatedFrom).
 *
 * The client also sees the server's HelloVerifyRequest again when its
 * ClientHello was retransmitted before the first one was answered (a busy
 * client, or a slow path): werift's client then throws and fails the
 * transport, although the server goes on to complete the handshake and
 * then sends media to a peer that will never decrypt it. Its own flight 3
 * retransmits by timer, so a repeated HelloVerifyRequest is dropped.
 */
function patchDtlsRetransmission(): void {
  // setupExtensions is private in werift's types.
  const prototype = DtlsSocket.prototype as unknown as {
    setupExtensions(this: DtlsSocket): void;
  };
  const setupExtensions = prototype.setupExtensions;
  // The handler is assigned by each subclass constructor after the base
  // constructor, which calls setupExtensions, has run: an accessor placed
  // here sees that assignment and wraps it.
  prototype.setupExtensions = function (this: DtlsSocket) {
    setupExtensions.call(this);
    const socket = this as unknown as PatchedSocket;
    keepSequenceRising(socket.dtls);
    const isClient = this instanceof DtlsClient;
    const answered = isClient ? 5 : 6;
    // Where werift logs the messages of the peer's key exchange flight.
    const peerFlight = isClient ? 4 : 5;
    const trigger = isClient ? SERVER_HELLO_DONE : FINISHED;
    let handler: HandshakeHandler = () => Promise.resolve();
    const guarded: HandshakeHandler = (assembled) => {
      const flight = socket.dtls.flight;
      const received = socket.dtls.handshakeCache[peerFlight]?.data;
      const rest = assembled.filter((h) =>
        !received?.some((seen) => seen.msg_type === h.msg_type) &&
        flight < repeatedFrom(h, isClient)
      );
      if (
        flight === answered && assembled.some((h) => h.msg_type === trigger)
      ) {
        for (const message of socket.dtls.lastMessage) {
          socket.transport.send(message).catch(() => {});
        }
      }
      return rest.length > 0 ? handler(rest) : Promise.resolve();
    };
    Object.defineProperty(this, "onHandleHandshakes", {
      configurable: true,
      get: () => guarded,
      set: (value: HandshakeHandler) => handler = value,
    });
  };
}

/**
 * werift sends its Finished as the first record of epoch 1 with the next
 * sequence number of epoch 0, then restarts the count at 0: its next
 * records in epoch 1 (the data channel's) reuse those numbers. AES-GCM then
 * sees a nonce twice under one key, and a peer that missed the Finished
 * drops its resend as a replay and never completes. Within an epoch the
 * number now only rises (RFC 6347 4.1).
 */
function keepSequenceRising(
  dtls: { epoch: number; recordSequenceNumber: number },
): void {
  let sequence = dtls.recordSequenceNumber;
  Object.defineProperty(dtls, "recordSequenceNumber", {
    configurable: true,
    enumerable: true,
    get: () => sequence,
    set: (value: number) => {
      sequence = dtls.epoch > 0 ? Math.max(sequence, value) : value;
    },
  });
}

/**
 * Our own flight from which a message of the peer's that werift does not
 * log with its key exchange can only be a repeat (RFC 6347 4.2.2). The
 * client sees the HelloVerifyRequest again when its first ClientHello was
 * resent before being answered. The server must not act on a ClientHello
 * after flight 3's: werift takes one arriving after the handshake for a
 * renegotiation and starts over with new keys, which WebRTC forbids (RFC
 * 8827); and it answers flight 1's (no cookie yet) with a new random and
 * key pair, so a late copy would leave the flight 4 already sent, and the
 * keys the client derives from it, unusable and the handshake hung.
 */
function repeatedFrom(handshake: Handshake, isClient: boolean): number {
  if (isClient) {
    return handshake.msg_type === HELLO_VERIFY_REQUEST ? 3 : Infinity;
  }
  if (handshake.msg_type !== CLIENT_HELLO) return Infinity;
  return isFirstClientHello(handshake) ? 4 : 6;
}

/** A ClientHello without a cookie: version (2), random (32), session id
 * (length-prefixed), then the cookie's length (RFC 6347 4.2.1). */
function isFirstClientHello(handshake: Handshake): boolean {
  if (handshake.msg_type !== CLIENT_HELLO) return false;
  const fragment = handshake.fragment;
  const cookieLengthAt = 35 + (fragment[34] ?? 0);
  return (fragment[cookieLengthAt] ?? 0) === 0;
}
