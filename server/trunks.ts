// Outgoing trunks: for each trunk URL in the servers list, keep a
// connection to that Umbrella node, reconnecting with capped exponential
// backoff and jitter, and say in plain words what is happening.
import { log } from "./log.ts";
import type { RemoteEntry, RemoteStatus } from "./servers.ts";
import { redactUrl } from "./servers.ts";
import {
  type NodeContext,
  type SignalChannel,
  SignallingSession,
} from "./session.ts";
import { openTrunkSocket } from "./trunk_socket.ts";

const FIRST_RETRY_S = 1;
const MAX_RETRY_S = 60;
/** A connection that lasted this long resets the backoff. */
const STABLE_AFTER_MS = 30_000;

export interface TrunkDialerOptions {
  /** Resolves .local names (mDNS); undefined leaves them to the system. */
  resolveHost?: (host: string) => Promise<string | undefined>;
  /** Called for each connected session, so the app can list it. */
  onSession(session: SignallingSession): void;
}

export class TrunkDialer {
  readonly entry: RemoteEntry;
  #context: NodeContext;
  #options: TrunkDialerOptions;
  #state: "connecting" | "connected" | "retrying" | "stopped" = "connecting";
  #lastError: string | null = null;
  #retryAtMs = 0;
  #attempt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #session: SignallingSession | undefined;
  #log;

  constructor(
    entry: RemoteEntry,
    context: NodeContext,
    options: TrunkDialerOptions,
  ) {
    this.entry = entry;
    this.#context = context;
    this.#options = options;
    this.#log = log.child({ trunk: redactUrl(entry.url) });
  }

  get session(): SignallingSession | undefined {
    return this.#session;
  }

  get #stopped(): boolean {
    return this.#state === "stopped";
  }

  start(): void {
    void this.#connect();
  }

  stop(): void {
    this.#state = "stopped";
    clearTimeout(this.#timer);
    this.#session?.close(1000, "trunk removed");
    this.#session = undefined;
  }

  status(): RemoteStatus {
    const session = this.#session;
    const peer = session?.peer;
    return {
      state: this.#state,
      lastError: this.#lastError,
      retryInSeconds: this.#state === "retrying"
        ? Math.max(0, Math.ceil((this.#retryAtMs - Date.now()) / 1000))
        : null,
      detail: {
        ...(this.entry.fingerprint
          ? { fingerprint: this.entry.fingerprint }
          : {}),
        ...(session && peer
          ? {
            remoteSite: session.remoteSite,
            remoteNodeId: session.remoteNodeId,
            tracksIn: peer.inboundTracks.length,
            tracksOut: [...peer.subscriptions].length,
            bytesIn: peer.mediaBytesReceived,
            bytesOut: peer.mediaBytesSent,
          }
          : {}),
      },
    };
  }

  async #connect(): Promise<void> {
    if (this.#state === "stopped") return;
    this.#state = "connecting";
    let channel: SignalChannel;
    try {
      const socket = await openTrunkSocket(this.entry.url, {
        fingerprint: this.entry.fingerprint,
        resolveHost: this.#options.resolveHost,
      });
      // The trunk socket only ever delivers binary frames (it closes on
      // text itself), a subset of what a session's channel may deliver.
      channel = {
        get open() {
          return socket.open;
        },
        send: (data) => socket.send(data),
        close: (code, reason) => socket.close(code, reason),
        onmessage: null,
        onclose: null,
      };
      socket.onmessage = (data) => channel.onmessage?.(data);
      socket.onclose = (code, reason) => channel.onclose?.(code, reason);
    } catch (error) {
      this.#retry((error as Error).message);
      return;
    }
    // stop() may have run while the socket was opening.
    if (this.#stopped) {
      channel.close(1000, "trunk removed");
      return;
    }
    const session = new SignallingSession(channel, this.#context, {
      remote: redactUrl(this.entry.url),
      dialed: true,
    });
    this.#session = session;
    const connectedAt = Date.now();
    session.onReady = () => {
      this.#state = "connected";
      this.#lastError = null;
      this.#options.onSession(session);
    };
    session.onClosed = (reason) => {
      if (this.#session === session) this.#session = undefined;
      if (this.#state === "stopped") return;
      if (Date.now() - connectedAt > STABLE_AFTER_MS) this.#attempt = 0;
      this.#retry(reason);
    };
  }

  #retry(reason: string): void {
    if (this.#state === "stopped") return;
    const base = Math.min(MAX_RETRY_S, FIRST_RETRY_S * 2 ** this.#attempt++);
    // Jitter keeps nodes that lost a shared link from redialling in step.
    const delayS = base * (0.8 + Math.random() * 0.4);
    this.#state = "retrying";
    this.#lastError = reason;
    this.#retryAtMs = Date.now() + delayS * 1000;
    this.#log.warn("trunk unavailable, retrying", {
      reason,
      retryInSeconds: Math.round(delayS),
    });
    this.#timer = setTimeout(() => void this.#connect(), delayS * 1000);
  }
}
