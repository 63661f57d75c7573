// The WebSocket a trunk opens to another Umbrella node. Deno's WebSocket can
// neither take a pinned certificate nor skip verification, and LAN nodes have
// self-signed certificates, so this is a small RFC 6455 client over node:tls:
// it can look at the server's certificate after the TLS handshake and before
// a single WebSocket byte is sent.
import { createHash, randomBytes } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import { MAX_NODE_FRAME_BYTES } from "../proto/codec.ts";
import { authorizationFromUrl } from "./auth.ts";
import { VERSION } from "./version.ts";

/** Incoming messages above this size close the trunk with 1009: the most a
 * node may send another in one signalling frame. */
export const MAX_TRUNK_MESSAGE_BYTES = MAX_NODE_FRAME_BYTES;

const DEFAULT_TIMEOUT_MS = 10_000;
// How long the closing handshake may take before the connection is dropped.
const CLOSE_GRACE_MS = 5_000;
// A WebSocket handshake answer is a few hundred bytes; a proxy's error page
// may be larger, but we only need its status line.
const MAX_RESPONSE_HEAD_BYTES = 16 * 1024;
const ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

/** Why a trunk could not be opened, in words fit for the /servers page. */
export class TrunkConnectError extends Error {
  override name = "TrunkConnectError";
}

export interface TrunkSocket {
  /** Sends one binary message; dropped once the socket is no longer open. */
  send(data: Uint8Array): void;
  /** Starts the closing handshake; onclose follows when it completes. */
  close(code?: number, reason?: string): void;
  /** Binary messages. Incoming data waits (the socket is paused) until this
   * is set, so nothing is lost between opening and attaching handlers. */
  onmessage: ((data: Uint8Array) => void) | null;
  /** Called once: the code and reason of whichever side closed first, or
   * 1006 when the connection dropped without a close frame. */
  onclose: ((code: number, reason: string) => void) | null;
  readonly open: boolean;
  /** SHA-256 of the server's certificate (uppercase, colon-separated), for wss. */
  readonly peerCertificateFingerprint?: string;
}

export interface TrunkSocketOptions {
  /** Trust exactly this certificate (SHA-256, as on the remote's /status page) instead of verifying the chain and name. */
  fingerprint?: string;
  /** Limit for connecting, TLS and the WebSocket handshake together. */
  timeoutMs?: number;
  /** An address for a host name (e.g. mDNS for .local); undefined falls back to DNS. */
  resolveHost?: (host: string) => Promise<string | undefined>;
}

interface Target {
  secure: boolean;
  /** The host as written, without IPv6 brackets: used for SNI, the name check and the Host header. */
  hostname: string;
  port: number;
  /** host:port as the operator wrote it, for messages. */
  label: string;
  /** The URL without credentials or query, for messages. */
  display: string;
  hostHeader: string;
  requestPath: string;
  pin?: string;
  /** From the URL's user:password, for a node that needs its password. */
  authorization?: string;
}

/** Opens a trunk WebSocket; rejects with a TrunkConnectError saying why not. */
export async function openTrunkSocket(
  url: string,
  options: TrunkSocketOptions = {},
): Promise<TrunkSocket> {
  const target = parseTarget(url, options.fingerprint);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const timedOut = `${target.label} did not answer: timed out after ${
    Number((timeoutMs / 1000).toFixed(1))
  } s`;
  const deadline = Date.now() + timeoutMs;
  const address = await withDeadline(
    resolveAddress(target, options.resolveHost),
    timeoutMs,
    timedOut,
  );
  return handshake(target, address, deadline - Date.now(), timedOut);
}

function parseTarget(text: string, fingerprint: string | undefined): Target {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TrunkConnectError(`"${text}" is not a valid URL`);
  }
  if (url.protocol !== "wss:" && url.protocol !== "ws:") {
    throw new TrunkConnectError(
      `a trunk URL starts with wss:// or ws://, not ${url.protocol}//`,
    );
  }
  const secure = url.protocol === "wss:";
  if (fingerprint !== undefined && !secure) {
    throw new TrunkConnectError(
      "a certificate fingerprint only applies to wss:// URLs",
    );
  }
  const port = Number(url.port || (secure ? 443 : 80));
  const label = `${url.hostname}:${port}`;
  return {
    secure,
    hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port,
    label,
    display: `${url.protocol}//${url.host}${url.pathname}`,
    hostHeader: url.host,
    requestPath: `${url.pathname}${url.search}`,
    pin: fingerprint === undefined ? undefined : normalizePin(fingerprint),
    authorization: authorizationFromUrl(url),
  };
}

function normalizePin(fingerprint: string): string {
  const hex = fingerprint.replace(/[:\s]/g, "").toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) {
    throw new TrunkConnectError(
      "the pinned fingerprint is not a SHA-256 fingerprint (32 hex byte pairs, as shown on the remote's /status page)",
    );
  }
  return formatFingerprint(hex);
}

function formatFingerprint(hex: string): string {
  return hex.toUpperCase().match(/../g)!.join(":");
}

async function resolveAddress(
  target: Target,
  resolveHost: TrunkSocketOptions["resolveHost"],
): Promise<string> {
  if (!resolveHost || net.isIP(target.hostname)) return target.hostname;
  try {
    return (await resolveHost(target.hostname)) || target.hostname;
  } catch (error) {
    throw new TrunkConnectError(
      `host not found: ${target.hostname} (${(error as Error).message})`,
    );
  }
}

function withDeadline<T>(
  promise: Promise<T>,
  timeoutMs: number,
  message: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new TrunkConnectError(message)),
      timeoutMs,
    );
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

function handshake(
  target: Target,
  address: string,
  timeoutMs: number,
  timedOut: string,
): Promise<TrunkSocket> {
  const where = address === target.hostname
    ? target.label
    : `${target.label} (${address})`;
  const socket = target.secure
    ? tls.connect({
      host: address,
      port: target.port,
      // SNI cannot carry an address; the name check then uses the address.
      servername: net.isIP(target.hostname) ? undefined : target.hostname,
      rejectUnauthorized: target.pin === undefined,
      ALPNProtocols: ["http/1.1"],
    })
    : net.connect({ host: address, port: target.port });
  socket.setNoDelay(true);
  const key = randomBytes(16).toString("base64");
  const response = new ByteQueue();
  const { promise, resolve, reject } = Promise.withResolvers<TrunkSocket>();
  let settled = false;
  let fingerprint: string | undefined;

  const fail = (message: string) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    socket.destroy();
    reject(new TrunkConnectError(message));
  };
  const timer = setTimeout(() => fail(timedOut), Math.max(timeoutMs, 0));

  const onConnected = () => {
    if (target.secure) {
      const raw = (socket as tls.TLSSocket).getPeerCertificate().raw;
      fingerprint = raw && formatFingerprint(
        createHash("sha256").update(raw).digest("hex"),
      );
      if (target.pin !== undefined && fingerprint !== target.pin) {
        return fail(
          `certificate fingerprint mismatch: expected ${target.pin}, got ${
            fingerprint ?? "no certificate"
          } — the remote's certificate changed or this is not the expected server`,
        );
      }
    }
    socket.write(
      `GET ${target.requestPath} HTTP/1.1\r\n` +
        `Host: ${target.hostHeader}\r\n` +
        "Upgrade: websocket\r\n" +
        "Connection: Upgrade\r\n" +
        `Sec-WebSocket-Key: ${key}\r\n` +
        "Sec-WebSocket-Version: 13\r\n" +
        (target.authorization
          ? `Authorization: ${target.authorization}\r\n`
          : "") +
        `User-Agent: Umbrella/${VERSION}\r\n\r\n`,
    );
  };
  const onData = (chunk: Uint8Array) => {
    response.push(chunk);
    const bytes = response.peek(response.length);
    if (!target.secure && (bytes[0] === 0x15 || bytes[0] === 0x16)) {
      return fail(`${where} speaks TLS: use wss:// instead of ws://`);
    }
    const end = indexOfHeadEnd(bytes);
    if (end < 0) {
      if (response.length > MAX_RESPONSE_HEAD_BYTES) {
        fail(`the server at ${target.display} did not answer HTTP`);
      }
      return;
    }
    const head = new TextDecoder("latin1").decode(bytes.subarray(0, end));
    const problem = upgradeProblem(head, key, target);
    if (problem) return fail(problem);
    settled = true;
    clearTimeout(timer);
    // Stop the flow before handing over, or bytes would reach no listener.
    socket.pause();
    socket.off("data", onData);
    socket.off("error", onError);
    socket.off("close", onClose);
    response.skip(end + 4);
    resolve(new Connection(socket, response, fingerprint));
  };
  const onError = (error: Error) => fail(describeError(error, target, where));
  const onClose = () =>
    fail(`${where} closed the connection during the WebSocket handshake`);

  socket.once(target.secure ? "secureConnect" : "connect", onConnected);
  socket.on("data", onData);
  socket.on("error", onError);
  socket.on("close", onClose);
  return promise;
}

function indexOfHeadEnd(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (
      bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 &&
      bytes[i + 3] === 10
    ) return i;
  }
  return -1;
}

/** What is wrong with a handshake answer, or undefined when it accepts. */
function upgradeProblem(
  head: string,
  key: string,
  target: Target,
): string | undefined {
  const [statusLine, ...lines] = head.split("\r\n");
  const status = statusLine.match(/^HTTP\/1\.[01] (\d{3})/);
  if (!status) return `the server at ${target.display} did not answer HTTP`;
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) {
      headers.set(
        line.slice(0, colon).trim().toLowerCase(),
        line.slice(colon + 1).trim(),
      );
    }
  }
  if (status[1] === "401") {
    return target.authorization
      ? `the node at ${target.display} refused the password in the trunk URL (HTTP 401)`
      : `the node at ${target.display} needs a password: write it in the trunk URL, as in wss://umbrella:PASSWORD@${target.hostHeader}${target.requestPath}`;
  }
  if (status[1] === "429") {
    return `the node at ${target.display} refuses passwords from this address for a while after too many wrong ones (HTTP 429)`;
  }
  if (status[1] !== "101") {
    const location = headers.get("location");
    return `the server at ${target.display} did not accept a WebSocket (HTTP ${
      status[1]
    }${location ? `, redirecting to ${location}` : ""})`;
  }
  const expectedAccept = createHash("sha1").update(key + ACCEPT_GUID).digest(
    "base64",
  );
  if (
    headers.get("upgrade")?.toLowerCase() !== "websocket" ||
    !/(^|,)\s*upgrade\s*(,|$)/i.test(headers.get("connection") ?? "") ||
    headers.get("sec-websocket-accept") !== expectedAccept ||
    headers.has("sec-websocket-extensions") ||
    headers.has("sec-websocket-protocol")
  ) {
    return `the server at ${target.display} answered the WebSocket handshake incorrectly`;
  }
  return undefined;
}

const UNTRUSTED_CERTIFICATE = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_UNTRUSTED",
]);
const PIN_HINT =
  "pin its fingerprint (shown on the remote's /status page) to trust it";

function describeError(error: Error, target: Target, where: string): string {
  const code = (error as { code?: string }).code ?? "";
  if (code === "ECONNREFUSED") return `connection refused by ${where}`;
  if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EAI_NONAME") {
    return `host not found: ${target.hostname}`;
  }
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH") {
    return `${where} is unreachable`;
  }
  if (code === "ECONNRESET" || code === "EPIPE") {
    return `${where} reset the connection`;
  }
  if (UNTRUSTED_CERTIFICATE.has(code)) {
    return `certificate of ${where} is not trusted (self-signed?); ${PIN_HINT}`;
  }
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") {
    return `certificate of ${where} is outside its validity period (${error.message}); ${PIN_HINT}`;
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return `certificate of ${where} is not valid for the name ${target.hostname}; use a name it lists or ${PIN_HINT}`;
  }
  if (code === "ERR_SSL_WRONG_VERSION_NUMBER") {
    return `${where} did not answer TLS: use ws:// if it serves plain HTTP`;
  }
  return `cannot connect to ${where}: ${error.message}`;
}

/** Received bytes not yet parsed, kept as the chunks they arrived in. */
class ByteQueue {
  #chunks: Uint8Array[] = [];
  length = 0;

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.length += chunk.length;
  }

  /** The first n bytes (n <= length) as one view, joining chunks only when they span several. */
  peek(n: number): Uint8Array {
    const first = this.#chunks[0];
    if (first.length >= n) return first.subarray(0, n);
    let count = 0;
    let joined = 0;
    while (joined < n) joined += this.#chunks[count++].length;
    const merged = new Uint8Array(joined);
    let offset = 0;
    for (const chunk of this.#chunks.splice(0, count, merged)) {
      merged.set(chunk, offset);
      offset += chunk.length;
    }
    return merged.subarray(0, n);
  }

  skip(n: number): void {
    this.length -= n;
    while (n > 0) {
      const first = this.#chunks[0];
      if (first.length > n) {
        this.#chunks[0] = first.subarray(n);
        return;
      }
      n -= first.length;
      this.#chunks.shift();
    }
  }

  /** A copy (a Buffer's slice() would be a view), so a message never keeps a large received chunk alive. */
  take(n: number): Uint8Array {
    const bytes = new Uint8Array(this.peek(n));
    this.skip(n);
    return bytes;
  }

  clear(): void {
    this.#chunks = [];
    this.length = 0;
  }
}

class Connection implements TrunkSocket {
  onclose: ((code: number, reason: string) => void) | null = null;
  readonly peerCertificateFingerprint?: string;
  #socket: net.Socket;
  #incoming: ByteQueue;
  #onmessage: ((data: Uint8Array) => void) | null = null;
  #state: "open" | "closing" | "closed" = "open";
  #reading = false;
  /** Set after a protocol violation: nothing more is read. */
  #failed = false;
  #fragments: Uint8Array[] = [];
  #fragmentBytes = 0;
  #closeCode = 1006;
  #closeReason = "the connection was lost";
  #closeTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    socket: net.Socket,
    leftover: ByteQueue,
    fingerprint: string | undefined,
  ) {
    this.#socket = socket;
    this.#incoming = leftover;
    this.peerCertificateFingerprint = fingerprint;
    // Errors are always followed by "close", which reports them as 1006.
    socket.on("error", () => {});
    socket.on("close", () => this.#finish());
  }

  get open(): boolean {
    return this.#state === "open";
  }

  get onmessage(): ((data: Uint8Array) => void) | null {
    return this.#onmessage;
  }

  set onmessage(handler: ((data: Uint8Array) => void) | null) {
    this.#onmessage = handler;
    if (handler) this.#startReading();
  }

  #startReading(): void {
    if (this.#reading) return;
    this.#reading = true;
    this.#socket.on("data", (chunk: Uint8Array) => {
      if (this.#failed) return;
      this.#incoming.push(chunk);
      this.#parse();
    });
    this.#socket.resume();
    // Frames that arrived with the handshake answer.
    queueMicrotask(() => this.#parse());
  }

  send(data: Uint8Array): void {
    if (this.#state === "open") this.#sendFrame(OP_BINARY, data);
  }

  close(code = 1000, reason = ""): void {
    // 1004-1006 and 1015 are reserved for reporting, never sent (RFC 6455 7.4.1).
    const sendable = (code >= 1000 && code <= 1003) ||
      (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
    if (!Number.isInteger(code) || !sendable) {
      throw new RangeError(
        `close code ${code} cannot be sent: use 1000-1003, 1007-1014 or 3000-4999`,
      );
    }
    if (this.#state === "open") this.#startClose(code, reason);
  }

  #sendFrame(opcode: number, payload: Uint8Array): void {
    const length = payload.length;
    const header = length < 126 ? 2 : length < 0x10000 ? 4 : 10;
    const frame = new Uint8Array(header + 4 + length);
    frame[0] = 0x80 | opcode;
    if (header === 2) {
      frame[1] = 0x80 | length;
    } else if (header === 4) {
      frame[1] = 0x80 | 126;
      frame[2] = length >>> 8;
      frame[3] = length & 0xff;
    } else {
      frame[1] = 0x80 | 127;
      new DataView(frame.buffer).setBigUint64(2, BigInt(length));
    }
    // Clients must mask every frame so that proxies cannot be fooled into
    // treating crafted payloads as HTTP (RFC 6455 section 10.3).
    const mask = crypto.getRandomValues(frame.subarray(header, header + 4));
    const body = header + 4;
    for (let i = 0; i < length; i++) {
      frame[body + i] = payload[i] ^ mask[i & 3];
    }
    this.#socket.write(frame);
  }

  #startClose(code: number, reason: string): void {
    this.#state = "closing";
    this.#closeCode = code;
    this.#closeReason = reason;
    this.#sendFrame(OP_CLOSE, closePayload(code, reason));
    // The closing handshake needs the answer even if no handler was set.
    this.#startReading();
    this.#closeTimer = setTimeout(
      () => this.#socket.destroy(),
      CLOSE_GRACE_MS,
    );
  }

  /** Closes after a protocol violation and stops reading. */
  #fail(code: number, reason: string): void {
    this.#failed = true;
    this.#incoming.clear();
    this.#fragments = [];
    if (this.#state === "open") this.#startClose(code, reason);
    this.#socket.end();
  }

  #finish(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    clearTimeout(this.#closeTimer);
    this.onclose?.(this.#closeCode, this.#closeReason);
  }

  #parse(): void {
    const incoming = this.#incoming;
    while (!this.#failed && incoming.length >= 2) {
      const start = incoming.peek(2);
      const opcode = start[0] & 0x0f;
      if ((start[0] & 0x70) !== 0) {
        return this.#fail(1002, "reserved bits set without an extension");
      }
      if ((start[1] & 0x80) !== 0) {
        return this.#fail(1002, "server frames must not be masked");
      }
      const shortLength = start[1] & 0x7f;
      const header = shortLength === 126 ? 4 : shortLength === 127 ? 10 : 2;
      if (incoming.length < header) return;
      const view = incoming.peek(header);
      const length = header === 2
        ? shortLength
        : header === 4
        ? (view[2] << 8) | view[3]
        : Number(
          new DataView(view.buffer, view.byteOffset, 10).getBigUint64(2),
        );
      const final = (start[0] & 0x80) !== 0;
      if (opcode >= OP_CLOSE && (!final || length > 125)) {
        return this.#fail(1002, "control frames must be whole and short");
      }
      if (this.#fragmentBytes + length > MAX_TRUNK_MESSAGE_BYTES) {
        return this.#fail(
          1009,
          `message exceeds the ${MAX_TRUNK_MESSAGE_BYTES} byte limit`,
        );
      }
      if (incoming.length < header + length) return;
      incoming.skip(header);
      this.#frame(opcode, final, incoming.take(length));
    }
  }

  #frame(opcode: number, final: boolean, payload: Uint8Array): void {
    switch (opcode) {
      case OP_TEXT:
        return this.#fail(1003, "text frames are not part of the protocol");
      case OP_BINARY:
      case OP_CONTINUATION: {
        if ((opcode === OP_CONTINUATION) !== (this.#fragments.length > 0)) {
          return this.#fail(1002, "unexpected continuation frame");
        }
        if (this.#state !== "open") return;
        if (!final) {
          this.#fragments.push(payload);
          this.#fragmentBytes += payload.length;
          return;
        }
        const message = this.#fragments.length === 0
          ? payload
          : joinFragments([...this.#fragments, payload]);
        this.#fragments = [];
        this.#fragmentBytes = 0;
        this.#onmessage?.(message);
        return;
      }
      case OP_PING:
        if (this.#state === "open") this.#sendFrame(OP_PONG, payload);
        return;
      case OP_PONG:
        return;
      case OP_CLOSE:
        return this.#receiveClose(payload);
      default:
        return this.#fail(1002, `unknown opcode ${opcode}`);
    }
  }

  #receiveClose(payload: Uint8Array): void {
    if (payload.length === 1) {
      return this.#fail(1002, "close frame with a one-byte payload");
    }
    if (this.#state === "open") {
      this.#state = "closing";
      this.#closeCode = payload.length === 0
        ? 1005
        : (payload[0] << 8) | payload[1];
      this.#closeReason = new TextDecoder().decode(payload.subarray(2));
      this.#sendFrame(OP_CLOSE, payload.subarray(0, 2));
      this.#closeTimer = setTimeout(
        () => this.#socket.destroy(),
        CLOSE_GRACE_MS,
      );
    }
    this.#socket.end();
  }
}

function closePayload(code: number, reason: string): Uint8Array {
  // A control frame holds at most 125 bytes, 2 of them the code.
  const text = new TextEncoder().encode(reason);
  let length = Math.min(text.length, 123);
  // Cut at a character boundary: never between a UTF-8 lead and its continuation bytes.
  while (length < text.length && (text[length] & 0xc0) === 0x80) length--;
  const payload = new Uint8Array(2 + length);
  payload[0] = code >>> 8;
  payload[1] = code & 0xff;
  payload.set(text.subarray(0, length), 2);
  return payload;
}

function joinFragments(fragments: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const fragment of fragments) length += fragment.length;
  const message = new Uint8Array(length);
  let offset = 0;
  for (const fragment of fragments) {
    message.set(fragment, offset);
    offset += fragment.length;
  }
  return message;
}
