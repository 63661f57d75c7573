// RTSP 1.0 (RFC 2326) wire format for the camera ingest: request
// serialisation, and a parser for the TCP stream a camera sends back, which
// mixes text messages with '$'-framed interleaved RTP/RTCP (RFC 2326 §10.12).
// No I/O here, so every edge case can be tested byte by byte.

/**
 * Something the camera sent (or a value derived from it) cannot be used.
 * The ingest's answer is to drop the connection and reconnect.
 */
export class RtspProtocolError extends Error {
  override name = "RtspProtocolError";
}

/** Longest start line plus headers accepted, blank line included. */
export const MAX_HEADER_BYTES = 16 * 1024;
/** Largest Content-Length accepted (a DESCRIBE's SDP is a few KiB). */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Header fields by lower-case name; repeated fields keep every value. */
export class RtspHeaders {
  readonly #values = new Map<string, string[]>();

  append(name: string, value: string): void {
    const key = name.toLowerCase();
    const existing = this.#values.get(key);
    if (existing) existing.push(value);
    else this.#values.set(key, [value]);
  }

  /** The first value of the field, if present. */
  get(name: string): string | undefined {
    return this.#values.get(name.toLowerCase())?.[0];
  }

  /** Every value of the field in arrival order (WWW-Authenticate repeats). */
  getAll(name: string): readonly string[] {
    return this.#values.get(name.toLowerCase()) ?? [];
  }

  has(name: string): boolean {
    return this.#values.has(name.toLowerCase());
  }
}

export interface RtspResponse {
  kind: "response";
  statusCode: number;
  reason: string;
  headers: RtspHeaders;
  body: Uint8Array;
}

/** A request the camera sent to us (ANNOUNCE, GET_PARAMETER, ...). */
export interface RtspRequest {
  kind: "request";
  method: string;
  uri: string;
  headers: RtspHeaders;
  body: Uint8Array;
}

/** One '$'-framed packet: RTP on even channels, RTCP on odd ones by SETUP. */
export interface InterleavedFrame {
  kind: "frame";
  channel: number;
  payload: Uint8Array;
}

export type RtspStreamItem = RtspResponse | RtspRequest | InterleavedFrame;

export interface RtspRequestInit {
  method: string;
  url: string;
  cseq: number;
  headers?: Record<string, string>;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const METHOD = /^[A-Za-z][A-Za-z0-9_-]*$/;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function serializeRequest(request: RtspRequestInit): Uint8Array {
  const { method, url, cseq } = request;
  if (!METHOD.test(method)) {
    throw new RtspProtocolError(`invalid RTSP method ${quote(method)}`);
  }
  if (url === "" || hasControlCharacter(url, false)) {
    throw new RtspProtocolError(`invalid RTSP request URL ${quote(url)}`);
  }
  if (!Number.isSafeInteger(cseq) || cseq < 0) {
    throw new RtspProtocolError(`invalid CSeq ${cseq}`);
  }
  let text = `${method} ${url} RTSP/1.0\r\nCSeq: ${cseq}\r\n`;
  for (const [name, value] of Object.entries(request.headers ?? {})) {
    if (!TOKEN.test(name) || name.toLowerCase() === "cseq") {
      throw new RtspProtocolError(`invalid request header name ${quote(name)}`);
    }
    // Values echoed from the camera (session ids, nonces) end up here, so a
    // CR or LF must never reach the wire: the camera could inject headers.
    if (hasControlCharacter(value, true)) {
      throw new RtspProtocolError(
        `header ${name} has a control character in ${quote(value)}`,
      );
    }
    text += `${name}: ${value}\r\n`;
  }
  return encoder.encode(text + "\r\n");
}

const DOLLAR = 0x24;
const CR = 0x0d;
const LF = 0x0a;
const TAB = 0x09;

type StartLine =
  | { kind: "response"; statusCode: number; reason: string }
  | { kind: "request"; method: string; uri: string };

interface PendingMessage {
  start: StartLine;
  headers: RtspHeaders;
  bodyLength: number;
}

/**
 * Splits the byte stream from a camera into responses, requests and
 * interleaved frames. Pushed chunks are kept by reference and frame payloads
 * are usually subarrays of them, so a chunk must not be reused after push().
 * After an RtspProtocolError every call throws it again: the stream has lost
 * framing and only a new connection recovers.
 */
export class RtspStreamParser {
  // Unconsumed input: a queue of chunks and a read offset into the first, so
  // media bytes are never copied just to append more input behind them.
  #chunks: Uint8Array[] = [];
  #offset = 0;
  #buffered = 0;
  // Progress of the search for the end of a header block, kept across pushes
  // so a header arriving in many small pieces is scanned once.
  #scanChunk = 0;
  #scanOffset = 0;
  #scanned = 0;
  #lineEmpty = false;
  #start: StartLine | null = null;
  #pending: PendingMessage | null = null;
  #error: RtspProtocolError | null = null;

  push(chunk: Uint8Array): void {
    if (this.#error) throw this.#error;
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  /** The next complete item, or null until more bytes are pushed. */
  next(): RtspStreamItem | null {
    if (this.#error) throw this.#error;
    if (this.#pending) return this.#finishMessage(this.#pending);
    while (this.#buffered > 0) {
      const first = this.#chunks[0][this.#offset];
      if (first === DOLLAR) return this.#readFrame();
      // Some servers put a stray CRLF between messages; RFC 7230 §3.5 style
      // robustness says to skip it rather than fail.
      if (this.#scanned === 0 && (first === CR || first === LF)) {
        this.#consume(1);
        continue;
      }
      return this.#readMessage();
    }
    return null;
  }

  #fail(message: string): RtspProtocolError {
    this.#error = new RtspProtocolError(message);
    return this.#error;
  }

  #readFrame(): InterleavedFrame | null {
    if (this.#buffered < 4) return null;
    const length = (this.#byteAt(2) << 8) | this.#byteAt(3);
    if (this.#buffered < 4 + length) return null;
    const channel = this.#byteAt(1);
    this.#consume(4);
    return { kind: "frame", channel, payload: this.#take(length) };
  }

  #readMessage(): RtspStreamItem | null {
    const headerLength = this.#scanHeader();
    if (headerLength === 0) return null;
    const block = decoder.decode(this.#take(headerLength));
    const start = this.#start!;
    this.#resetScan();
    const headers = this.#parseHeaderLines(block);
    const bodyLength = this.#contentLength(headers);
    return this.#finishMessage({ start, headers, bodyLength });
  }

  #finishMessage(pending: PendingMessage): RtspStreamItem | null {
    if (this.#buffered < pending.bodyLength) {
      this.#pending = pending;
      return null;
    }
    this.#pending = null;
    const body = this.#take(pending.bodyLength);
    return { ...pending.start, headers: pending.headers, body };
  }

  /**
   * Scans forward for the blank line ending the header block; returns its
   * total length, or 0 when more bytes are needed.
   */
  #scanHeader(): number {
    if (this.#scanned === 0) {
      const first = this.#chunks[0][this.#offset];
      if (!isLetter(first)) {
        throw this.#fail(
          `expected an RTSP message or '$' frame, got byte 0x${
            first.toString(16).padStart(2, "0")
          }`,
        );
      }
      this.#scanOffset = this.#offset;
    }
    while (this.#scanChunk < this.#chunks.length) {
      const chunk = this.#chunks[this.#scanChunk];
      for (let i = this.#scanOffset; i < chunk.length; i++) {
        const byte = chunk[i];
        this.#scanned++;
        if (this.#scanned > MAX_HEADER_BYTES) {
          throw this.#fail(
            `RTSP header block exceeds ${MAX_HEADER_BYTES} bytes`,
          );
        }
        if (byte === LF) {
          if (this.#lineEmpty) {
            this.#scanOffset = i + 1;
            return this.#scanned;
          }
          if (this.#start === null) this.#start = this.#parseStartLine();
          this.#lineEmpty = true;
        } else if (byte !== CR) {
          if ((byte < 0x20 && byte !== TAB) || byte === 0x7f) {
            throw this.#fail(
              `control byte 0x${byte.toString(16)} in an RTSP header`,
            );
          }
          this.#lineEmpty = false;
        }
      }
      this.#scanChunk++;
      this.#scanOffset = 0;
    }
    return 0;
  }

  #resetScan(): void {
    this.#scanChunk = 0;
    this.#scanOffset = 0;
    this.#scanned = 0;
    this.#lineEmpty = false;
    this.#start = null;
  }

  // Checked as soon as the first line is in, so a stream that lost framing
  // fails at once instead of after 16 KiB of garbage.
  #parseStartLine(): StartLine {
    const line = decoder.decode(this.#peek(this.#scanned)).trimEnd();
    const response = /^RTSP\/\d+\.\d+[ \t]+(\d{3})(?:[ \t]+(.*))?$/.exec(line);
    if (response) {
      return {
        kind: "response",
        statusCode: Number(response[1]),
        reason: response[2] ?? "",
      };
    }
    const request = /^(\S+)[ \t]+(\S+)[ \t]+RTSP\/\d+\.\d+$/.exec(line);
    if (request && METHOD.test(request[1])) {
      return { kind: "request", method: request[1], uri: request[2] };
    }
    throw this.#fail(`not an RTSP status or request line: ${quote(line)}`);
  }

  #parseHeaderLines(block: string): RtspHeaders {
    const lines = block.split("\n");
    const fields: [string, string][] = [];
    // Line 0 is the start line; the block ends with the blank line.
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i].replace(/\r/g, "");
      if (line === "") continue;
      if (line[0] === " " || line[0] === "\t") {
        // Obsolete line folding, still legal in RTSP 1.0.
        const last = fields.at(-1);
        if (!last) throw this.#fail(`header continuation without a header`);
        last[1] = `${last[1]} ${line.trim()}`;
        continue;
      }
      const colon = line.indexOf(":");
      const name = colon > 0 ? line.slice(0, colon).trim() : "";
      if (!TOKEN.test(name)) {
        throw this.#fail(`malformed RTSP header line ${quote(line)}`);
      }
      fields.push([name, line.slice(colon + 1).trim()]);
    }
    const headers = new RtspHeaders();
    for (const [name, value] of fields) headers.append(name, value);
    return headers;
  }

  #contentLength(headers: RtspHeaders): number {
    const values = headers.getAll("content-length");
    if (values.length === 0) return 0;
    // Disagreeing duplicates would make the framing ambiguous.
    if (
      values.some((value) => value !== values[0]) || !/^\d+$/.test(values[0])
    ) {
      throw this.#fail(`invalid Content-Length ${quote(values.join(", "))}`);
    }
    const length = Number(values[0]);
    if (length > MAX_BODY_BYTES) {
      throw this.#fail(
        `RTSP body of ${
          values[0]
        } bytes exceeds the ${MAX_BODY_BYTES} byte limit`,
      );
    }
    return length;
  }

  #byteAt(index: number): number {
    let chunkIndex = 0;
    let position = this.#offset + index;
    while (position >= this.#chunks[chunkIndex].length) {
      position -= this.#chunks[chunkIndex].length;
      chunkIndex++;
    }
    return this.#chunks[chunkIndex][position];
  }

  /** Removes `length` bytes; a subarray when they sit in one chunk. */
  #take(length: number): Uint8Array {
    if (length === 0) return new Uint8Array(0);
    const head = this.#chunks[0];
    if (this.#offset + length <= head.length) {
      const out = head.subarray(this.#offset, this.#offset + length);
      this.#consume(length);
      return out;
    }
    const out = this.#peek(length);
    this.#consume(length);
    return out;
  }

  /** A copy of the first `length` bytes, leaving them in place. */
  #peek(length: number): Uint8Array {
    const out = new Uint8Array(length);
    let filled = 0;
    let offset = this.#offset;
    for (const chunk of this.#chunks) {
      const count = Math.min(chunk.length - offset, length - filled);
      out.set(chunk.subarray(offset, offset + count), filled);
      filled += count;
      offset = 0;
      if (filled === length) break;
    }
    return out;
  }

  #consume(length: number): void {
    this.#buffered -= length;
    let remaining = length;
    while (remaining > 0) {
      const available = this.#chunks[0].length - this.#offset;
      if (remaining < available) {
        this.#offset += remaining;
        return;
      }
      remaining -= available;
      this.#chunks.shift();
      this.#offset = 0;
    }
  }
}

/**
 * Whether text has a character that would break an RTSP line: a control
 * character other than tab, and when spaces are not allowed (request-URIs),
 * also space and tab.
 */
export function hasControlCharacter(
  text: string,
  spacesAllowed: boolean,
): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x7f || (code <= 0x20 && !spacesAllowed)) return true;
    if (code < 0x20 && code !== TAB) return true;
  }
  return false;
}

function isLetter(byte: number): boolean {
  return (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a);
}

function quote(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text);
}

/** Session: "id;timeout=60"; timeout in seconds. */
export interface RtspSession {
  id: string;
  timeoutSec: number;
}

/** RFC 2326 §12.37 default when the camera gives no timeout. */
export const DEFAULT_SESSION_TIMEOUT_SEC = 60;
// A keep-alive timer is derived from the timeout; a huge value from a camera
// must not overflow setTimeout (which fires at once past 2^31 ms).
const MAX_SESSION_TIMEOUT_SEC = 3600;

export function parseSessionHeader(value: string): RtspSession {
  const [idPart, ...params] = value.split(";");
  const id = idPart.trim();
  if (!/^[\x21-\x7e]+$/.test(id)) {
    throw new RtspProtocolError(`invalid Session header ${quote(value)}`);
  }
  let timeoutSec = DEFAULT_SESSION_TIMEOUT_SEC;
  for (const param of params) {
    const [name, number] = splitParam(param);
    if (name === "timeout" && /^\d+$/.test(number) && Number(number) > 0) {
      timeoutSec = Math.min(Number(number), MAX_SESSION_TIMEOUT_SEC);
    }
  }
  return { id, timeoutSec };
}

export interface RtspTransport {
  /** e.g. "RTP/AVP/TCP", upper case. */
  protocol: string;
  lowerTransport: "TCP" | "UDP";
  multicast: boolean;
  /** [RTP, RTCP] channel numbers. */
  interleaved?: [number, number];
  /** [RTP, RTCP] ports. */
  clientPort?: [number, number];
  serverPort?: [number, number];
  ssrc?: number;
  mode?: string;
}

/**
 * The first transport in a Transport header (a reply carries one). Values
 * the client relies on (channels, ports) throw when malformed; the SSRC is
 * only advisory (RTP packets carry the real one), so a bad one is left out.
 */
export function parseTransportHeader(value: string): RtspTransport {
  const [spec, ...params] = value.split(",")[0].split(";");
  const protocol = spec.trim().toUpperCase();
  const parts = protocol.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((part) => !part)) {
    throw new RtspProtocolError(`invalid Transport header ${quote(value)}`);
  }
  const lower = parts[2] ?? "UDP";
  if (lower !== "TCP" && lower !== "UDP") {
    throw new RtspProtocolError(`unknown lower transport in ${quote(value)}`);
  }
  const transport: RtspTransport = {
    protocol,
    lowerTransport: lower,
    multicast: false,
  };
  for (const param of params) {
    const [name, raw] = splitParam(param);
    switch (name) {
      case "multicast":
        transport.multicast = true;
        break;
      case "interleaved":
        transport.interleaved = parseRange(raw, 255, name, value);
        break;
      case "client_port":
        transport.clientPort = parseRange(raw, 65535, name, value);
        break;
      case "server_port":
        transport.serverPort = parseRange(raw, 65535, name, value);
        break;
      case "ssrc":
        if (/^[0-9a-f]{1,8}$/i.test(raw)) {
          transport.ssrc = parseInt(raw, 16);
        }
        break;
      case "mode":
        transport.mode = raw.replace(/"/g, "").trim().toUpperCase();
        break;
    }
  }
  return transport;
}

// A single number means the RTCP one follows it (RFC 2326 §12.39).
function parseRange(
  raw: string,
  max: number,
  name: string,
  header: string,
): [number, number] {
  const match = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(raw);
  const first = Number(match?.[1]);
  const second = match?.[2] === undefined ? first + 1 : Number(match[2]);
  if (!match || first > max || second > max) {
    throw new RtspProtocolError(
      `invalid ${name} in Transport header ${quote(header)}`,
    );
  }
  return [first, second];
}

/** Methods from a Public header, upper case. */
export function parsePublicHeader(value: string): Set<string> {
  const methods = new Set<string>();
  for (const part of value.split(",")) {
    const method = part.trim().toUpperCase();
    if (method) methods.add(method);
  }
  return methods;
}

export interface RtpInfoEntry {
  url: string;
  seq?: number;
  rtptime?: number;
}

/**
 * RTP-Info from a PLAY reply. Control URLs may themselves contain ';' or
 * ',', so entries split only before "url=" and unknown parameters are taken
 * to be part of the URL. seq and rtptime are hints for the first packet, so
 * malformed ones are left out rather than failing the session.
 */
export function parseRtpInfo(value: string): RtpInfoEntry[] {
  const entries: RtpInfoEntry[] = [];
  for (const part of value.split(/,(?=\s*url=)/i)) {
    const params = part.trim().split(";");
    const [name, first] = splitParam(params[0]);
    if (name !== "url") continue;
    const entry: RtpInfoEntry = { url: first };
    for (const param of params.slice(1)) {
      const [key, raw] = splitParam(param);
      if (key !== "seq" && key !== "rtptime") {
        entry.url += `;${param}`;
        continue;
      }
      const number = /^\d{1,10}$/.test(raw) ? Number(raw) : NaN;
      if (number <= (key === "seq" ? 0xffff : 0xffffffff)) entry[key] = number;
    }
    entry.url = entry.url.replace(/^"(.*)"$/, "$1");
    if (entry.url) entries.push(entry);
  }
  return entries;
}

/** "name=value" with the name trimmed and lower-cased and the value trimmed. */
function splitParam(param: string): [string, string] {
  const equals = param.indexOf("=");
  if (equals < 0) return [param.trim().toLowerCase(), ""];
  return [
    param.slice(0, equals).trim().toLowerCase(),
    param.slice(equals + 1).trim(),
  ];
}
