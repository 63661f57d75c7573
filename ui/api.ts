/// <reference lib="dom" />
// The JSON API the pages read (docs/api.md). Paths are relative to the page
// so everything keeps working under an HTTP prefix.
import { useEffect, useState } from "preact/hooks";
import { pageName } from "./format.ts";

export interface NodeInfo {
  id: string;
  name: string;
  site: string;
  version: string;
  uptimeSeconds: number;
  cloud: boolean;
  certificateFingerprint: string | null;
  /** Whether pages, API and trunks need this node's password. */
  passwordRequired: boolean;
  /** Whether managing servers and reading metrics need a password. */
  operatorPasswordRequired: boolean;
}

export type PeerState =
  | "new"
  | "connecting"
  | "connected"
  | "disconnected"
  | "failed";

export interface PeerStatus {
  id: string;
  name: string;
  kind: "browser" | "node" | "client";
  site: string;
  state: PeerState;
  connectedSeconds: number;
  tracksPublished: number;
  tracksSubscribed: number;
}

export interface TrackStatus {
  id: string;
  kind: "audio" | "video";
  mimeType: string;
  participantId: string;
  participantName: string;
  site: string;
  source: "participant" | "camera";
  label: string;
  muted: boolean;
  bitrateBps: number;
  packetsReceived: number;
  packetsLost: number;
  lossFraction: number;
  subscribers: number;
  /** Set on each layer of a simulcast video; 0 is the lowest. */
  simulcastLayer?: number;
}

/** A live link to another Umbrella node, dialled by either side. */
export interface TrunkStatus {
  id: string;
  remoteSite: string;
  remoteNodeId: string;
  direction: "outgoing" | "incoming";
  connectedSeconds: number;
  tracksIn: number;
  tracksOut: number;
  bytesIn: number;
  bytesOut: number;
}

export interface CameraTrack {
  id: string;
  kind: "audio" | "video";
  mimeType: string;
  subscribers: number;
}

export interface CameraDetail {
  name: string;
  transport: "tcp" | "udp";
  /** 0: always on. */
  idleSeconds: number;
  tracks: CameraTrack[];
  /** Plain words about what is used differently than asked, e.g. skipped
   * audio. */
  notices: string[];
  reconnects: number;
}

export interface CameraStatus {
  id: string;
  name: string;
  state: string;
  lastError: string | null;
  retryInSeconds: number | null;
  detail: CameraDetail;
}

export interface StatusResponse {
  node: NodeInfo;
  peers: PeerStatus[];
  tracks: TrackStatus[];
  trunks: TrunkStatus[];
  cameras: CameraStatus[];
}

/** A trunk's facts; the traffic fields are there while it is connected. */
export interface TrunkDetail {
  fingerprint?: string;
  remoteSite?: string;
  remoteNodeId?: string;
  tracksIn?: number;
  tracksOut?: number;
  bytesIn?: number;
  bytesOut?: number;
}

interface RemoteServerBase {
  id: string;
  /** With any password replaced by ***. */
  url: string;
  state: string;
  lastError: string | null;
  retryInSeconds: number | null;
}

/** An entry of the servers list. A camera's detail is empty for the moment
 * an entry is being removed, hence Partial. */
export type RemoteServer =
  | RemoteServerBase & { kind: "trunk"; detail: TrunkDetail }
  | RemoteServerBase & { kind: "camera"; detail: Partial<CameraDetail> };

export interface ServersResponse {
  servers: RemoteServer[];
}

export class ApiError extends Error {
  override name = "ApiError";
}

/** Fetches JSON, turning every failure into an ApiError whose message can
 * be shown as is: the API's own `{ error }` text where there is one. */
export async function fetchJson<T>(
  path: string,
  init: RequestInit = {},
): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      ...init,
      headers: { accept: "application/json", ...init.headers },
    });
  } catch (error) {
    if (init.signal?.aborted) throw error;
    throw new ApiError(
      "Cannot reach the Umbrella server. Check that it is running and that this device is on the network.",
    );
  }
  const text = await response.text();
  const body = parseJson(text);
  // The sign-in ran out (or the password changed) while the page was open.
  if (response.status === 401 && path !== "api/login") {
    location.assign(`login?next=${pageName(location.pathname)}`);
  }
  if (!response.ok) {
    const apiText = (body as { error?: unknown } | undefined)?.error;
    throw new ApiError(
      typeof apiText === "string" && apiText
        ? apiText
        : `The server answered ${response.status} ${response.statusText}.`,
    );
  }
  if (response.status !== 204 && body === undefined) {
    throw new ApiError("The server's answer was not JSON.");
  }
  return body as T;
}

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

export interface Polled<T> {
  data: T | null;
  /** Why the latest poll failed; null after a success. */
  error: string | null;
  /** When data was fetched (ms since the epoch); 0 before the first. */
  fetchedAt: number;
  refresh: () => void;
}

/** Polls a JSON path, waiting for each answer before scheduling the next so
 * a slow server is never asked twice at once. */
export function usePolling<T>(path: string, intervalMs: number): Polled<T> {
  const [state, setState] = useState<Omit<Polled<T>, "refresh">>({
    data: null,
    error: null,
    fetchedAt: 0,
  });
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const data = await fetchJson<T>(path, { signal: abort.signal });
        setState({ data, error: null, fetchedAt: Date.now() });
      } catch (error) {
        if (abort.signal.aborted) return;
        setState((old) => ({ ...old, error: (error as Error).message }));
      }
      timer = setTimeout(poll, intervalMs);
    };
    poll();
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [path, intervalMs, generation]);
  return { ...state, refresh: () => setGeneration((g) => g + 1) };
}

/** The current time, refreshed every `intervalMs`, for countdowns. */
export function useNow(intervalMs: number): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return now;
}
