// UDP straight to the kernel: libc's sendto and recvfrom through Deno FFI,
// on a duplicate of the file descriptor of werift's node:dgram socket (so
// the datagrams leave from the same address and port).
//
// Why sends: Deno's node:dgram makes every send an asynchronous op that
// copies the datagram and completes on a later turn of the event loop, and
// it gets slower as sends pile up. Measured here (bench/udp_micro.ts,
// 1200-byte datagrams over loopback, fan-out bursts over K sockets):
// node:dgram about 11 µs of CPU per datagram in small bursts, 50-80 µs in
// bursts of 640-1920 over 128 sockets; sendto 4.4-7 µs (mostly the kernel's
// own work) whatever the burst. A send is done when sendto returns, so the
// caller may reuse its buffer, and nothing waits in between to pile up.
// (Deno 2.9's node:dgram also sends what one turn queued on a socket in
// reverse order.)
//
// Why receives: node:dgram stays the socket's reader (it is what wakes the
// event loop), but each datagram it reads costs an op, a promise and a fresh
// buffer. A caller woken by one datagram can read the ones queued behind it
// (the rest of a video frame's burst) here, in order: node:dgram hands a
// datagram over before it asks the kernel for the next.
import type { Socket } from "node:dgram";
import { isIPv4 } from "node:net";
import { sizeT } from "./ffi_size.ts";

const LIBC_CANDIDATES = ["libc.so.6", "libc.so"];
const AF_INET = 2;
const AF_INET6 = 10;
/** Fail instead of blocking, whatever the socket's mode. */
const MSG_DONTWAIT = 0x40;
/** recvfrom returns a datagram's real length even when it was cut short. */
const MSG_TRUNC = 0x20;
/** Room for a sockaddr_in6, the larger of the two. */
const SOCKADDR_BYTES = 28;

const SYMBOLS = {
  // ssize_t is read as its low 32 bits: -1 or at most a datagram's size.
  sendto: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
    result: "i32",
  },
  recvfrom: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"],
    result: "i32",
  },
  close: { parameters: ["i32"], result: "i32" },
  inet_pton: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "buffer"],
    result: "i32",
  },
} as const;
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;

/** The symbols as called here. */
interface Libc {
  sendto(
    fd: number,
    data: Uint8Array,
    length: bigint,
    flags: number,
    address: Uint8Array,
    addressLength: number,
  ): number;
  recvfrom(
    fd: number,
    data: Uint8Array,
    length: bigint,
    flags: number,
    address: Uint8Array,
    addressLength: Uint8Array,
  ): number;
  close(fd: number): number;
  getsockopt(
    fd: number,
    level: number,
    name: number,
    value: Uint8Array,
    length: Uint8Array,
  ): number;
  inet_pton(family: number, text: Uint8Array, out: Uint8Array): number;
}

/** Sends from one socket to any destination, and reads what is queued. */
export class NativeUdpSocket {
  readonly #libc: Libc;
  #fd: number;
  #host = "";
  #port = 0;
  /** sockaddr_in or sockaddr_in6 of the last destination. */
  #address: Uint8Array = new Uint8Array(0);
  /** sockaddr of the last datagram received, and its length (in/out). */
  readonly #source = new Uint8Array(SOCKADDR_BYTES);
  readonly #sourceLength = new Uint32Array(1);
  readonly #sourceLengthBytes = new Uint8Array(this.#sourceLength.buffer);

  constructor(libc: Libc, fd: number) {
    this.#libc = libc;
    this.#fd = fd;
  }

  /** Sends one datagram now; false if it was not sent (the socket's buffer
   * full, an unusable destination, or the sender closed). */
  send(data: Uint8Array, host: string, port: number): boolean {
    if (host !== this.#host || port !== this.#port) {
      if (!this.#setDestination(host, port)) return false;
    }
    const address = this.#address;
    return this.#fd >= 0 &&
      this.#libc.sendto(
          this.#fd,
          data,
          sizeT(data.byteLength),
          MSG_DONTWAIT,
          address,
          address.byteLength,
        ) >= 0;
  }

  /** Reads the next queued datagram into `into` without waiting: its
   * length, or -1 when none is queued (or the socket is closed). A datagram
   * longer than `into` is consumed and skipped. */
  receive(into: Uint8Array): number {
    const size = sizeT(into.byteLength);
    for (;;) {
      if (this.#fd < 0) return -1;
      this.#sourceLength[0] = SOCKADDR_BYTES;
      const length = this.#libc.recvfrom(
        this.#fd,
        into,
        size,
        MSG_DONTWAIT | MSG_TRUNC,
        this.#source,
        this.#sourceLengthBytes,
      );
      if (length <= into.byteLength) return length;
    }
  }

  /** The address and port the last received datagram came from, as
   * node:dgram names them ("127.0.0.1", "::1"). */
  source(): { address: string; port: number; family: "IPv4" | "IPv6" } {
    const source = this.#source;
    const port = (source[2] << 8) | source[3];
    if (source[0] === AF_INET && source[1] === 0) {
      return { address: source.subarray(4, 8).join("."), port, family: "IPv4" };
    }
    return { address: ipv6Text(source.subarray(8, 24)), port, family: "IPv6" };
  }

  #setDestination(host: string, port: number): boolean {
    const address = socketAddress(this.#libc, host, port);
    if (address === undefined) return false;
    this.#host = host;
    this.#port = port;
    this.#address = address;
    return true;
  }

  /** The kernel's receive buffer for the socket (SO_RCVBUF), in bytes. */
  kernelReceiveBuffer(): number {
    const value = new Int32Array(1);
    const length = new Uint32Array([4]);
    const failed = this.#fd < 0 ||
      this.#libc.getsockopt(
          this.#fd,
          SOL_SOCKET,
          SO_RCVBUF,
          new Uint8Array(value.buffer),
          new Uint8Array(length.buffer),
        ) !== 0;
    return failed ? -1 : value[0];
  }

  /** Closes the duplicate descriptor; the node:dgram socket is untouched. */
  close(): void {
    if (this.#fd < 0) return;
    this.#libc.close(this.#fd);
    this.#fd = -1;
  }
}

/** An IPv6 address as RFC 5952 writes it (the longest run of two or more
 * zero groups as "::", lower-case hex), as Rust, and so node:dgram in Deno,
 * prints it; an IPv4-mapped address ends in dotted quad. */
export function ipv6Text(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${bytes.subarray(12, 16).join(".")}`;
  }
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8;) {
    let end = start;
    while (end < 8 && groups[end] === 0) end++;
    if (end - start > bestLength) {
      bestStart = start;
      bestLength = end - start;
    }
    start = end === start ? start + 1 : end;
  }
  const hex = (from: number, to: number) =>
    groups.slice(from, to).map((g) => g.toString(16)).join(":");
  return bestStart < 0
    ? hex(0, 8)
    : `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

/** A sockaddr for an IP address literal, or undefined for anything else
 * (host names; IPv6 with a zone, which would need the interface index). */
function socketAddress(
  libc: Libc,
  host: string,
  port: number,
): Uint8Array | undefined {
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  const v4 = isIPv4(host);
  const address = new Uint8Array(v4 ? 16 : 28);
  const view = new DataView(address.buffer);
  view.setUint16(0, v4 ? AF_INET : AF_INET6, true);
  view.setUint16(2, port, false);
  const text = new TextEncoder().encode(`${host}\0`);
  const ok = libc.inet_pton(
    v4 ? AF_INET : AF_INET6,
    text,
    address.subarray(v4 ? 4 : 8),
  );
  return ok === 1 ? address : undefined;
}

export type NativeUdp =
  | { available: true; library: string; libc: Libc }
  | { available: false; reason: string };

let loaded: NativeUdp | undefined;

/** libc through FFI, when --allow-ffi permits it and it loads. Decided
 * once; never prompts for a permission. */
export function loadNativeUdp(
  candidates: readonly string[] = LIBC_CANDIDATES,
): NativeUdp {
  if (loaded) return loaded;
  const permitted = (path?: string) =>
    Deno.permissions.querySync({ name: "ffi", path }).state === "granted";
  if (!permitted() && !candidates.some(permitted)) {
    return loaded = {
      available: false,
      reason: "FFI is not permitted (--allow-ffi)",
    };
  }
  const failures: string[] = [];
  for (const path of candidates) {
    if (!permitted(path)) continue;
    try {
      const library = Deno.dlopen(path, SYMBOLS);
      const libc = library.symbols as unknown as Libc;
      return loaded = { available: true, library: path, libc };
    } catch (error) {
      failures.push(
        `${path}: ${error instanceof Error ? error.message : error}`,
      );
    }
  }
  return loaded = {
    available: false,
    reason: `no usable libc (${failures.join("; ") || "none permitted"})`,
  };
}

interface UdpHandle {
  fdForIpc?: () => number;
}

/** The native side of a bound node:dgram socket, or why there is none. */
export function nativeSocketFor(
  native: NativeUdp,
  socket: Socket,
): NativeUdpSocket | { reason: string } {
  if (!native.available) return { reason: native.reason };
  // Deno's node:dgram keeps its handle under a symbol; the handle can hand
  // out a duplicate of its descriptor (meant for passing it to a child).
  const state = Object.getOwnPropertySymbols(socket)
    .filter((symbol) => symbol.description === "kStateSymbol")
    .map((symbol) =>
      (socket as unknown as Record<symbol, { handle?: UdpHandle }>)[symbol]
    )[0];
  const handle = state?.handle;
  if (typeof handle?.fdForIpc !== "function") {
    return { reason: "this Deno's node:dgram does not expose its socket" };
  }
  const fd = handle.fdForIpc();
  if (!Number.isInteger(fd) || fd < 0) {
    return { reason: "the socket has no file descriptor" };
  }
  return new NativeUdpSocket(native.libc, fd);
}
