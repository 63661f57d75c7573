// The remote sources an operator added on /servers: trunks to other Umbrella
// nodes (wss://…/wsb) and RTSP cameras. The list is persisted in the data
// directory; the trunk and camera behaviour attaches to these entries.
import { join } from "node:path";

export type RemoteKind = "trunk" | "camera";

export interface RemoteEntry {
  id: string;
  url: string;
  kind: RemoteKind;
  /** SHA-256 fingerprint to pin a trunk's self-signed certificate. */
  fingerprint?: string;
  /** A camera's name for participants; its host and path when absent. */
  name?: string;
  /** How a camera's RTP travels: interleaved on the RTSP connection
   * (the default, through any NAT or firewall) or over UDP. */
  transport?: "tcp" | "udp";
  /** Overrides the node's camera idle time for this camera; 0: always on. */
  idleSeconds?: number;
}

export interface RemoteInput {
  url?: unknown;
  fingerprint?: unknown;
  name?: unknown;
  transport?: unknown;
  idleSeconds?: unknown;
}

export interface RemoteStatus {
  state: string;
  lastError: string | null;
  retryInSeconds: number | null;
  detail: Record<string, unknown>;
}

export class InvalidRemoteError extends Error {
  override name = "InvalidRemoteError";
}

const FINGERPRINT = /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/;

/** Checks an operator's input and says in plain words what is wrong. */
export function parseRemote(input: RemoteInput): Omit<RemoteEntry, "id"> {
  if (typeof input.url !== "string" || input.url.trim() === "") {
    throw new InvalidRemoteError(
      "give the url of another Umbrella (wss://host:port/wsb) or of a camera (rtsp://user:pass@host/path)",
    );
  }
  const text = input.url.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidRemoteError(`"${redactUrl(text)}" is not a valid URL`);
  }
  if (!url.hostname) throw new InvalidRemoteError("the URL has no host");
  let kind: RemoteKind;
  if (url.protocol === "wss:" || url.protocol === "ws:") {
    if (!url.pathname.endsWith("/wsb")) {
      throw new InvalidRemoteError(
        "a trunk URL ends in /wsb, e.g. wss://host:8081/wsb",
      );
    }
    kind = "trunk";
  } else if (url.protocol === "rtsp:" || url.protocol === "rtsps:") {
    kind = "camera";
  } else {
    throw new InvalidRemoteError(
      `unsupported scheme "${url.protocol}": use wss:// for another Umbrella or rtsp:// for a camera`,
    );
  }
  let fingerprint: string | undefined;
  if (input.fingerprint !== undefined && input.fingerprint !== "") {
    if (kind !== "trunk") {
      throw new InvalidRemoteError(
        "a certificate fingerprint only applies to wss:// trunks",
      );
    }
    fingerprint = String(input.fingerprint).trim().toUpperCase();
    if (!FINGERPRINT.test(fingerprint)) {
      throw new InvalidRemoteError(
        "the fingerprint must be 32 hex byte pairs separated by colons (SHA-256), as shown on the remote's /status page",
      );
    }
  }
  const cameraOnly = (field: string) => {
    if (kind !== "camera") {
      throw new InvalidRemoteError(`${field} only applies to rtsp:// cameras`);
    }
  };
  const options: Partial<RemoteEntry> = {};
  if (fingerprint) options.fingerprint = fingerprint;
  if (input.name !== undefined && input.name !== "") {
    cameraOnly("a name");
    if (typeof input.name !== "string" || input.name.trim().length > 64) {
      throw new InvalidRemoteError(
        "a camera name is text of 64 characters at most",
      );
    }
    options.name = input.name.trim();
  }
  if (input.transport !== undefined && input.transport !== "") {
    cameraOnly("a transport");
    if (input.transport !== "tcp" && input.transport !== "udp") {
      throw new InvalidRemoteError(
        'the transport is "tcp" (RTP inside the RTSP connection) or "udp"',
      );
    }
    options.transport = input.transport;
  }
  if (input.idleSeconds !== undefined && input.idleSeconds !== "") {
    cameraOnly("idle seconds");
    const seconds = Number(input.idleSeconds);
    if (!Number.isInteger(seconds) || seconds < 0 || seconds > 86_400) {
      throw new InvalidRemoteError(
        "idle seconds is a whole number from 0 (always on) to 86400",
      );
    }
    options.idleSeconds = seconds;
  }
  return { url: text, kind, ...options };
}

export function redactUrl(text: string): string {
  return text.replace(/^([a-z]+:\/\/[^:/@]*):[^@/]*@/i, "$1:***@");
}

export class RemoteStore {
  #file: string;
  #entries: RemoteEntry[] = [];

  constructor(dataDir: string) {
    this.#file = join(dataDir, "servers.json");
  }

  /** Loads the saved list; seeds it from the config file's lists once. */
  async load(seed: string[] = []): Promise<void> {
    try {
      const saved = JSON.parse(await Deno.readTextFile(this.#file));
      if (!Array.isArray(saved)) throw new Error("not a list");
      this.#entries = saved.map((entry) => ({
        ...parseRemote(entry),
        id: String(entry.id),
      }));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        throw new Error(
          `${this.#file} is unreadable: ${(error as Error).message}`,
        );
      }
    }
    for (const url of seed) {
      if (!this.#entries.some((e) => e.url === url)) await this.add({ url });
    }
  }

  list(): readonly RemoteEntry[] {
    return this.#entries;
  }

  async add(input: RemoteInput): Promise<RemoteEntry> {
    const parsed = parseRemote(input);
    if (this.#entries.some((e) => e.url === parsed.url)) {
      throw new InvalidRemoteError("that URL is already in the list");
    }
    const entry = { id: crypto.randomUUID().slice(0, 8), ...parsed };
    this.#entries.push(entry);
    await this.#save();
    return entry;
  }

  async remove(id: string): Promise<boolean> {
    const before = this.#entries.length;
    this.#entries = this.#entries.filter((e) => e.id !== id);
    if (this.#entries.length === before) return false;
    await this.#save();
    return true;
  }

  async #save(): Promise<void> {
    const temporary = `${this.#file}.tmp`;
    await Deno.writeTextFile(temporary, JSON.stringify(this.#entries, null, 2));
    await Deno.rename(temporary, this.#file);
  }
}
