// Umbrella's RTSP 1.0 client for camera ingest: OPTIONS, DESCRIBE (Basic
// or Digest authentication, 3xx redirects followed), SETUP with RTP
// interleaved on the RTSP connection (default) or over UDP, PLAY, keep-alive
// before the session times out, and TEARDOWN. The wire format lives in the
// pure parsers next to this file; this file is the I/O and the sequencing,
// and turns every failure into one plain sentence for the operator.
import dgram from "node:dgram";
import {
  type AuthChallenge,
  authorizationHeader,
  chooseChallenge,
} from "./auth.ts";
import { encodeInterleavedFrame, InterleavedChannels } from "./interleaved.ts";
import {
  parsePublicHeader,
  parseSessionHeader,
  parseTransportHeader,
  RtspProtocolError,
  type RtspRequest,
  type RtspResponse,
  type RtspSession,
  RtspStreamParser,
  serializeRequest,
} from "./message.ts";
import {
  parseSdp,
  resolveControlUrl,
  type SdpMedia,
  type SdpSession,
} from "./sdp.ts";
import { parseRtspUrl, redactRtspUrl, type RtspUrl } from "./url.ts";

export type RtspTransportMode = "tcp" | "udp";

/** A failure worth showing to the operator as it is. */
export class RtspClientError extends Error {
  override name = "RtspClientError";
}

/** A timeout in words: "2 s", or "500 ms" below a second. */
function duration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${Math.round(ms / 1000)} s`;
}

export interface RtspClientOptions {
  /** "tcp" (default): RTP interleaved on the RTSP connection. */
  transport?: RtspTransportMode;
  /** For connecting and for each answer; default 10 s. */
  requestTimeoutMs?: number;
  /** Silence after PLAY that ends the session; default 10 s. */
  mediaTimeoutMs?: number;
}

export interface RtspDescription {
  /** The URL finally described (after redirects), without credentials. */
  url: string;
  sdp: SdpSession;
}

/** Where media goes; stream is the index in the list given to setup(). */
export interface RtspMediaSink {
  onRtp(stream: number, packet: Uint8Array, nowMs: number): void;
  onRtcp(stream: number, packet: Uint8Array, nowMs: number): void;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_REDIRECTS = 5;
const TEARDOWN_WAIT_MS = 2_000;
const RECEIVER_REPORT_INTERVAL_MS = 5_000;
const WATCHDOG_INTERVAL_MS = 1_000;
// Reads go into a slab that is replaced when nearly full rather than reused:
// the parser hands out payloads as views into it, and the router keeps them.
const READ_SLAB_BYTES = 256 * 1024;
const MIN_READ_BYTES = 16 * 1024;
const USER_AGENT = "Umbrella";

const STATUS_HINTS: Record<number, string> = {
  401: "wrong user name or password",
  403: "this user may not view the stream",
  404: "wrong path: the camera has no stream there",
  453: "the camera has no bandwidth left for another viewer",
  454: "the camera forgot the session",
  461: "the camera refused this transport; try the other one (TCP or UDP)",
  503: "the camera is busy or has too many viewers",
};

interface Pending {
  resolve(response: RtspResponse): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/** One TCP connection to the camera: requests matched to answers by CSeq,
 * and interleaved frames passed on as they arrive. */
class Connection {
  readonly #conn: Deno.TcpConn;
  readonly #parser = new RtspStreamParser();
  readonly #pending = new Map<number, Pending>();
  #writing: Promise<void> = Promise.resolve();
  #error: Error | undefined;
  readonly ended: Promise<Error>;
  #endedResolve: (error: Error) => void;
  onFrame: (channel: number, payload: Uint8Array, nowMs: number) => void =
    () => {};

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    const ended = Promise.withResolvers<Error>();
    this.ended = ended.promise;
    this.#endedResolve = ended.resolve;
    void this.#readLoop();
  }

  get localAddress(): string {
    return (this.#conn.localAddr as Deno.NetAddr).hostname;
  }

  get remoteAddress(): string {
    return (this.#conn.remoteAddr as Deno.NetAddr).hostname;
  }

  request(
    bytes: Uint8Array,
    cseq: number,
    timeoutMs: number,
    what: string,
  ): Promise<RtspResponse> {
    if (this.#error) return Promise.reject(this.#error);
    const { promise, resolve, reject } = Promise.withResolvers<RtspResponse>();
    const timer = setTimeout(() => {
      this.#pending.delete(cseq);
      const error = new RtspClientError(
        `timeout: the camera did not answer ${what} within ${
          duration(timeoutMs)
        }`,
      );
      reject(error);
      this.end(error);
    }, timeoutMs);
    this.#pending.set(cseq, { resolve, reject, timer });
    this.write(bytes);
    return promise;
  }

  /** Queued so that concurrent writers never interleave partial writes. */
  write(bytes: Uint8Array): void {
    if (this.#error) return;
    this.#writing = this.#writing.then(async () => {
      if (this.#error) return;
      let offset = 0;
      while (offset < bytes.length) {
        offset += await this.#conn.write(bytes.subarray(offset));
      }
    }).catch((error) => this.end(networkError(error, "sending to")));
  }

  end(error: Error): void {
    if (this.#error) return;
    this.#error = error;
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    this.#pending.clear();
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    this.#endedResolve(error);
  }

  async #readLoop(): Promise<void> {
    let slab = new Uint8Array(READ_SLAB_BYTES);
    let used = 0;
    try {
      while (!this.#error) {
        if (slab.length - used < MIN_READ_BYTES) {
          slab = new Uint8Array(READ_SLAB_BYTES);
          used = 0;
        }
        const count = await this.#conn.read(slab.subarray(used));
        if (count === null) {
          throw new RtspClientError("the camera closed the connection");
        }
        this.#parser.push(slab.subarray(used, used + count));
        used += count;
        const nowMs = performance.now();
        for (let item = this.#parser.next(); item; item = this.#parser.next()) {
          if (item.kind === "frame") {
            this.onFrame(item.channel, item.payload, nowMs);
          } else if (item.kind === "response") this.#answered(item);
          else this.#answerCamera(item);
        }
      }
    } catch (error) {
      this.end(
        error instanceof RtspProtocolError
          ? new RtspClientError(
            `the camera sent something that is not RTSP: ${error.message}`,
          )
          : networkError(error, "reading from"),
      );
    }
  }

  #answered(response: RtspResponse): void {
    const cseq = Number(response.headers.get("cseq"));
    const pending = this.#pending.get(cseq);
    // An answer nobody waits for (one that came after its timeout) is dropped.
    if (!pending) return;
    this.#pending.delete(cseq);
    clearTimeout(pending.timer);
    pending.resolve(response);
  }

  /** Cameras rarely ask anything; a keep-alive probe gets its 200. */
  #answerCamera(request: RtspRequest): void {
    const cseq = request.headers.get("cseq") ?? "";
    const ok = request.method === "OPTIONS" ||
      request.method === "GET_PARAMETER";
    const status = ok ? "200 OK" : "501 Not Implemented";
    const cseqLine = /^\d{1,10}$/.test(cseq) ? `CSeq: ${cseq}\r\n` : "";
    this.write(
      new TextEncoder().encode(`RTSP/1.0 ${status}\r\n${cseqLine}\r\n`),
    );
  }
}

interface UdpPair {
  rtp: dgram.Socket;
  rtcp: dgram.Socket;
  serverRtcpPort?: number;
}

/**
 * One RTSP session with a camera. Use it in order: describe(), setup(),
 * play(); then wait on `ended`, and teardown() or close() to finish.
 */
export class RtspClient {
  readonly #target: RtspUrl;
  readonly #transport: RtspTransportMode;
  readonly #timeoutMs: number;
  readonly #mediaTimeoutMs: number;
  #url: RtspUrl;
  #connection: Connection | undefined;
  #cseq = 0;
  #challenge: AuthChallenge | undefined;
  #nonceCount = 0;
  #methods: Set<string> | undefined;
  #session: RtspSession | undefined;
  #description: RtspDescription | undefined;
  #baseUrl = "";
  #channels = new InterleavedChannels();
  #udp: UdpPair[] = [];
  #sink: RtspMediaSink | undefined;
  #timers: ReturnType<typeof setInterval>[] = [];
  #lastMediaAtMs = 0;
  /** Why the session ended, once it has. */
  #closedBy: Error | undefined;
  readonly #ended = Promise.withResolvers<Error>();

  constructor(url: string, options: RtspClientOptions = {}) {
    this.#target = parseRtspUrl(url);
    if (this.#target.scheme === "rtsps") {
      throw new RtspClientError(
        "rtsps:// (RTSP over TLS) is not supported: use the camera's plain rtsp:// URL",
      );
    }
    this.#url = this.#target;
    this.#transport = options.transport ?? "tcp";
    this.#timeoutMs = options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#mediaTimeoutMs = options.mediaTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** Settles once, with the reason, when the session ends for any cause. */
  get ended(): Promise<Error> {
    return this.#ended.promise;
  }

  /** Connects, then OPTIONS and DESCRIBE, following redirects. */
  async describe(): Promise<RtspDescription> {
    for (let redirects = 0;; redirects++) {
      await this.#connect();
      const options = await this.#request("OPTIONS", this.#url.url);
      let response = options;
      if (options.statusCode >= 200 && options.statusCode < 300) {
        const methods = options.headers.get("public");
        if (methods !== undefined) this.#methods = parsePublicHeader(methods);
      }
      if (!isRedirect(options.statusCode)) {
        response = await this.#request("DESCRIBE", this.#url.url, {
          Accept: "application/sdp",
        });
      }
      if (isRedirect(response.statusCode)) {
        if (redirects >= MAX_REDIRECTS) {
          throw new RtspClientError(
            `the camera redirected more than ${MAX_REDIRECTS} times`,
          );
        }
        this.#follow(response);
        continue;
      }
      expectSuccess("DESCRIBE", response, this.#url);
      const sdp = parseSdp(response.body);
      const base = response.headers.get("content-base") ??
        response.headers.get("content-location") ?? this.#url.url;
      this.#baseUrl = resolveControlUrl(this.#url.url, base);
      this.#description = { url: this.#url.url, sdp };
      return this.#description;
    }
  }

  /** SETUP of each stream, in order; media starts flowing after play(). */
  async setup(
    streams: readonly SdpMedia[],
    sink: RtspMediaSink,
  ): Promise<void> {
    if (!this.#description) throw new Error("describe() comes before setup()");
    this.#sink = sink;
    const connection = this.#connection!;
    connection.onFrame = (channel, payload, nowMs) => {
      const route = this.#channels.route(channel);
      if (route === undefined) return;
      if (route.rtcp) sink.onRtcp(route.stream, payload, nowMs);
      else {
        this.#lastMediaAtMs = nowMs;
        sink.onRtp(route.stream, payload, nowMs);
      }
    };
    for (let index = 0; index < streams.length; index++) {
      const url = resolveControlUrl(
        this.#baseUrl,
        streams[index].control ?? "",
      );
      let transport: string;
      let proposed: [number, number] | undefined;
      let udp: UdpPair | undefined;
      if (this.#transport === "tcp") {
        proposed = this.#channels.proposePair();
        transport = `RTP/AVP/TCP;unicast;interleaved=${proposed[0]}-${
          proposed[1]
        }`;
      } else {
        udp = await bindUdpPair(connection.localAddress);
        if (this.#closedBy) {
          // close() has already closed the pairs it knew of.
          udp.rtp.close();
          udp.rtcp.close();
          throw this.#closedBy;
        }
        this.#udp.push(udp);
        transport =
          `RTP/AVP;unicast;client_port=${udp.rtp.address().port}-${udp.rtcp.address().port}`;
      }
      const response = await this.#request("SETUP", url, {
        Transport: transport,
      });
      expectSuccess("SETUP", response, this.#url);
      const sessionHeader = response.headers.get("session");
      if (sessionHeader === undefined && !this.#session) {
        throw new RtspClientError("the camera's SETUP answer has no Session");
      }
      this.#session ??= parseSessionHeader(sessionHeader!);
      const answered = parseTransportHeader(
        response.headers.get("transport") ?? "",
      );
      if (answered.multicast) {
        throw new RtspClientError("the camera offered multicast only");
      }
      if (udp && answered.lowerTransport === "UDP") {
        udp.serverRtcpPort = answered.serverPort?.[1];
        this.#listenUdp(udp, index, connection.remoteAddress, sink);
      } else if (answered.lowerTransport === "TCP") {
        // Some cameras answer a UDP request with TCP: follow the answer.
        this.#channels.assign(
          index,
          answered.interleaved ?? proposed ?? this.#channels.proposePair(),
        );
      } else {
        throw new RtspClientError(
          "the camera answered SETUP over TCP with a UDP transport",
        );
      }
    }
  }

  async play(): Promise<void> {
    const connection = this.#connection!;
    const url = resolveControlUrl(
      this.#baseUrl,
      this.#description?.sdp.sessionControl ?? "",
    );
    this.#lastMediaAtMs = performance.now();
    const response = await this.#request("PLAY", url, {
      Range: "npt=0.000-",
    });
    expectSuccess("PLAY", response, this.#url);
    // Whatever followed the answer (junk, a dropped connection) may have
    // closed the session already: timers started now would run forever.
    if (this.#closedBy) throw this.#closedBy;
    this.#sendReceiverReports();
    const keepAliveMs = Math.max(1, this.#session!.timeoutSec / 2) * 1000;
    this.#timers.push(
      setInterval(() => this.#keepAlive(url), keepAliveMs),
      setInterval(
        () => this.#sendReceiverReports(),
        RECEIVER_REPORT_INTERVAL_MS,
      ),
      setInterval(() => {
        if (performance.now() - this.#lastMediaAtMs > this.#mediaTimeoutMs) {
          connection.end(
            new RtspClientError(
              `timeout: no media from the camera for ${
                duration(this.#mediaTimeoutMs)
              }${
                this.#transport === "udp"
                  ? " (a firewall may be blocking RTP over UDP: try TCP)"
                  : ""
              }`,
            ),
          );
        }
      }, WATCHDOG_INTERVAL_MS),
    );
  }

  /** Ends the session politely (bounded wait for the camera's answer). */
  async teardown(): Promise<void> {
    const connection = this.#connection;
    if (connection && this.#session && !this.#closedBy) {
      const url = resolveControlUrl(
        this.#baseUrl,
        this.#description?.sdp.sessionControl ?? "",
      );
      await this.#request("TEARDOWN", url, {}, TEARDOWN_WAIT_MS).catch(
        () => {},
      );
    }
    this.close();
  }

  /** Ends the session at once. */
  close(reason: string | Error = "closed"): void {
    if (this.#closedBy) return;
    const error = typeof reason === "string"
      ? new RtspClientError(reason)
      : reason;
    this.#closedBy = error;
    for (const timer of this.#timers) clearInterval(timer);
    for (const pair of this.#udp) {
      pair.rtp.close();
      pair.rtcp.close();
    }
    this.#connection?.end(error);
    this.#ended.resolve(error);
  }

  async #connect(): Promise<void> {
    const previous = this.#connection;
    this.#connection = undefined;
    previous?.end(new RtspClientError("redirected"));
    const { host, port } = this.#url;
    const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
    const attempt = Deno.connect({ hostname: host, port, transport: "tcp" });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // A connection that comes up after all is not leaked.
        attempt.then((conn) => conn.close(), () => {});
        reject(
          new RtspClientError(
            `timeout: no answer from ${where} within ${
              duration(this.#timeoutMs)
            } (is the camera on and reachable?)`,
          ),
        );
      }, this.#timeoutMs);
    });
    let conn: Deno.TcpConn;
    try {
      conn = await Promise.race([attempt, timeout]);
    } catch (error) {
      throw error instanceof RtspClientError
        ? error
        : connectError(error, where, host);
    } finally {
      clearTimeout(timer);
    }
    if (this.#closedBy) {
      conn.close();
      throw new RtspClientError("closed");
    }
    const connection = new Connection(conn);
    this.#connection = connection;
    connection.ended.then((error) => {
      // A connection replaced by a redirect is not the session ending.
      if (this.#connection === connection) this.close(error);
    });
  }

  /** Follows a 3xx: credentials go along only to the same host. */
  #follow(response: RtspResponse): void {
    const location = response.headers.get("location");
    if (!location) {
      throw new RtspClientError(
        `the camera answered ${response.statusCode} ${response.reason} without saying where to go`,
      );
    }
    const next = parseRtspUrl(location);
    if (next.scheme === "rtsps") {
      throw new RtspClientError(
        `the camera redirects to ${
          redactRtspUrl(location)
        }, which is rtsps:// (RTSP over TLS, not supported)`,
      );
    }
    if (next.username === undefined && next.host === this.#target.host) {
      next.username = this.#target.username;
      next.password = this.#target.password;
    }
    this.#url = next;
    this.#challenge = undefined;
  }

  async #request(
    method: string,
    url: string,
    headers: Record<string, string> = {},
    timeoutMs = this.#timeoutMs,
  ): Promise<RtspResponse> {
    const connection = this.#connection;
    if (!connection) throw new RtspClientError("not connected");
    // A challenge carried over from an earlier request may have expired
    // (some cameras use each nonce once), so only an answer refusing a
    // challenge fetched for this very request means the password is wrong.
    let freshChallenge = false;
    for (let attempt = 1;; attempt++) {
      const all: Record<string, string> = {
        "User-Agent": USER_AGENT,
        ...headers,
      };
      if (this.#session) all.Session = this.#session.id;
      const challenge = this.#challenge;
      if (challenge) {
        all.Authorization = authorizationHeader(challenge, {
          username: this.#url.username ?? "",
          password: this.#url.password ?? "",
          method,
          uri: url,
          nc: ++this.#nonceCount,
        });
      }
      const cseq = ++this.#cseq;
      const response = await connection.request(
        serializeRequest({ method, url, cseq, headers: all }),
        cseq,
        timeoutMs,
        method,
      );
      if (response.statusCode !== 401) return response;
      if (this.#url.username === undefined) {
        throw new RtspClientError(
          "401 Unauthorized: the camera needs a user name and password; put them in the URL as rtsp://user:password@host/path",
        );
      }
      let next: AuthChallenge;
      try {
        next = chooseChallenge(response.headers.getAll("www-authenticate"));
      } catch (error) {
        throw new RtspClientError(
          `401 Unauthorized: ${(error as Error).message}`,
        );
      }
      const stale = next.scheme === "digest" && next.stale;
      if ((challenge && freshChallenge && !stale) || attempt >= 3) {
        throw new RtspClientError(`401 Unauthorized: ${STATUS_HINTS[401]}`);
      }
      this.#challenge = next;
      this.#nonceCount = 0;
      freshChallenge = true;
    }
  }

  #keepAlive(url: string): void {
    const method = this.#methods?.has("GET_PARAMETER")
      ? "GET_PARAMETER"
      : "OPTIONS";
    this.#request(method, url).then((response) => {
      // A camera that lists GET_PARAMETER but refuses it gets OPTIONS.
      if (response.statusCode >= 400) this.#methods?.delete("GET_PARAMETER");
    }, () => {/* the connection has ended with the reason */});
  }

  /** Empty receiver reports: some cameras end a session whose client sends
   * no RTCP, and over UDP they keep a NAT or firewall mapping open. */
  #sendReceiverReports(): void {
    const report = new Uint8Array(8);
    report.set([0x80, 201, 0, 1]);
    crypto.getRandomValues(report.subarray(4));
    const connection = this.#connection;
    for (let stream = 0; stream < this.#streamCount(); stream++) {
      const channel = this.#channels.rtcpChannel(stream);
      if (channel !== undefined) {
        connection?.write(encodeInterleavedFrame(channel, report));
      }
    }
    for (const pair of this.#udp) {
      if (pair.serverRtcpPort !== undefined && connection) {
        pair.rtcp.send(report, pair.serverRtcpPort, connection.remoteAddress);
      }
    }
  }

  #streamCount(): number {
    return this.#description?.sdp.media.length ?? 0;
  }

  #listenUdp(
    pair: UdpPair,
    stream: number,
    cameraAddress: string,
    sink: RtspMediaSink,
  ): void {
    // Anyone can send to an open port: only the camera's packets count.
    pair.rtp.on("message", (packet: Uint8Array, from: dgram.RemoteInfo) => {
      if (from.address !== cameraAddress) return;
      const nowMs = performance.now();
      this.#lastMediaAtMs = nowMs;
      sink.onRtp(stream, packet, nowMs);
    });
    pair.rtcp.on("message", (packet: Uint8Array, from: dgram.RemoteInfo) => {
      if (from.address === cameraAddress) {
        sink.onRtcp(stream, packet, performance.now());
      }
    });
  }
}

function isRedirect(status: number): boolean {
  return status >= 300 && status < 400;
}

function expectSuccess(
  method: string,
  response: RtspResponse,
  url: RtspUrl,
): void {
  const status = response.statusCode;
  if (status >= 200 && status < 300) return;
  const hint = STATUS_HINTS[status];
  const what = `${status} ${response.reason}`.trim();
  if (status === 404) {
    throw new RtspClientError(
      `404 Not Found: wrong path: the camera has no stream at ${url.path}`,
    );
  }
  throw new RtspClientError(
    hint ? `${what}: ${hint}` : `${what}: the camera refused ${method}`,
  );
}

function connectError(error: unknown, where: string, host: string): Error {
  if (error instanceof Deno.errors.ConnectionRefused) {
    return new RtspClientError(
      `connection refused by ${where}: is the camera on, and RTSP enabled on that port?`,
    );
  }
  const message = (error as Error)?.message ?? String(error);
  if (/lookup|name or service|no address/i.test(message)) {
    return new RtspClientError(
      `cannot find the host "${host}": check the camera's address`,
    );
  }
  if (
    error instanceof Deno.errors.TimedOut ||
    error instanceof Deno.errors.ConnectionAborted
  ) {
    return new RtspClientError(`timeout: no answer from ${where}`);
  }
  return new RtspClientError(`cannot connect to ${where}: ${message}`);
}

function networkError(error: unknown, doing: string): Error {
  if (error instanceof RtspClientError) return error;
  if (error instanceof Deno.errors.ConnectionReset) {
    return new RtspClientError("the camera reset the connection");
  }
  if (
    error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted
  ) {
    return new RtspClientError("closed");
  }
  return new RtspClientError(
    `error ${doing} the camera: ${(error as Error)?.message ?? error}`,
  );
}

/** An even RTP port and the RTCP one above it (RFC 3550 §11). */
async function bindUdpPair(address: string): Promise<UdpPair> {
  const type = address.includes(":") ? "udp6" : "udp4";
  for (let attempt = 0; attempt < 20; attempt++) {
    const rtp = await bindUdp(type, address, 0);
    const port = rtp.address().port;
    if (port % 2 === 0) {
      try {
        const rtcp = await bindUdp(type, address, port + 1);
        return { rtp, rtcp };
      } catch { /* taken: try another pair */ }
    }
    rtp.close();
  }
  throw new RtspClientError(
    "no two adjacent UDP ports are free for RTP and RTCP",
  );
}

function bindUdp(
  type: "udp4" | "udp6",
  address: string,
  port: number,
): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({ type });
    socket.once("error", (error) => {
      socket.close();
      reject(error);
    });
    socket.bind({ port, address, exclusive: true }, () => {
      socket.removeAllListeners("error");
      socket.on("error", () => {});
      try {
        // Keyframes arrive as bursts of dozens of packets at once.
        socket.setRecvBufferSize(2 * 1024 * 1024);
      } catch { /* the system default it is */ }
      resolve(socket);
    });
  });
}
