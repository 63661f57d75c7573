// Pure logic behind the Servers page and the remote sources on the Status
// page: which fields an address needs, checking the form before it is
// sent, and the words shown for a trunk's or a camera's state. Nothing here
// touches the DOM, so the tests run it directly.
import { codecName, formatBytes, formatDuration } from "./format.ts";

export type RemoteKind = "trunk" | "camera";

/** What an address will become once added, from its scheme alone, so the
 * form can show the matching fields while the operator types. */
export function addressKind(address: string): RemoteKind | null {
  const scheme = /^\s*([a-z][a-z0-9+.-]*):/i.exec(address)?.[1].toLowerCase();
  if (scheme === "wss" || scheme === "ws") return "trunk";
  if (scheme === "rtsp" || scheme === "rtsps") return "camera";
  return null;
}

const FINGERPRINT = /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/;

/** A SHA-256 fingerprint in the `AB:CD:…` form the API takes, from what an
 * operator is likely to paste: lower case, surrounding spaces, the
 * `sha256 Fingerprint=` prefix openssl prints, or bare hex without colons.
 * Anything else comes back cleaned but unchanged, for the check to refuse. */
export function normalizeFingerprint(text: string): string {
  const value = text.replace(/^.*=/, "").replace(/\s+/g, "").toUpperCase();
  return /^[0-9A-F]{64}$/.test(value) ? value.match(/../g)!.join(":") : value;
}

export interface ServerForm {
  url: string;
  /** Trunks only. */
  fingerprint: string;
  /** Cameras only, like the rest. */
  name: string;
  transport: "tcp" | "udp";
  /** As typed; empty means the server's default. */
  idleSeconds: string;
}

export type ServerFormCheck =
  | { ok: true; body: Record<string, string | number> }
  | { ok: false; field: keyof ServerForm; problem: string };

const MAX_CAMERA_NAME = 64;
const MAX_IDLE_SECONDS = 86_400;

/** Checks the add form the way the server will (server/servers.ts
 * parseRemote), so most mistakes are explained before anything is sent and
 * next to the field that has them, and builds the request body. */
export function checkServerForm(form: ServerForm): ServerFormCheck {
  const address = form.url.trim();
  const refuse = (field: keyof ServerForm, problem: string) =>
    ({ ok: false, field, problem }) as const;
  if (!address) {
    return refuse(
      "url",
      "Enter the address of another Umbrella (wss://host:8081/wsb) or of a camera (rtsp://user:password@host/path).",
    );
  }
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    return refuse(
      "url",
      "This is not a complete address. It starts with wss:// for another Umbrella or rtsp:// for a camera, then the host name or IP address.",
    );
  }
  if (url.protocol === "https:" || url.protocol === "http:") {
    return refuse(
      "url",
      `That is the address of a web page. To link to the Umbrella there, use ${
        trunkAddressOf(url)
      }`,
    );
  }
  const kind = addressKind(address);
  if (kind === null) {
    return refuse(
      "url",
      `Addresses starting with ${url.protocol}// are not supported. Use wss:// for another Umbrella or rtsp:// for a camera.`,
    );
  }
  if (!url.hostname) {
    return refuse("url", "The address has no host name or IP address.");
  }
  if (kind === "trunk") {
    if (!/\/wsb$/.test(url.pathname)) {
      return refuse(
        "url",
        `The address of another Umbrella ends in /wsb, for example ${
          trunkAddressOf(url)
        }`,
      );
    }
    const fingerprint = normalizeFingerprint(form.fingerprint);
    if (fingerprint && !FINGERPRINT.test(fingerprint)) {
      return refuse(
        "fingerprint",
        "A certificate fingerprint is 32 pairs of hex digits separated by colons (AB:CD:…). Copy it from the other Umbrella's Status page.",
      );
    }
    return {
      ok: true,
      body: fingerprint ? { url: address, fingerprint } : { url: address },
    };
  }
  const body: Record<string, string | number> = {
    url: address,
    transport: form.transport,
  };
  const name = form.name.trim();
  if (name.length > MAX_CAMERA_NAME) {
    return refuse(
      "name",
      `A camera name is at most ${MAX_CAMERA_NAME} characters long.`,
    );
  }
  if (name) body.name = name;
  const idle = form.idleSeconds.trim();
  if (idle) {
    const seconds = Number(idle);
    if (!/^\d+$/.test(idle) || seconds > MAX_IDLE_SECONDS) {
      return refuse(
        "idleSeconds",
        `Idle time is a whole number of seconds from 0 (always on) to ${MAX_IDLE_SECONDS} (a day), or empty for the server's default.`,
      );
    }
    body.idleSeconds = seconds;
  }
  return { ok: true, body };
}

/** The trunk address of the Umbrella a page or mistyped address belongs to:
 * `wsb` beside the page, with the WebSocket scheme matching the page's. */
function trunkAddressOf(url: URL): string {
  const trunk = new URL("wsb", url);
  trunk.protocol = url.protocol === "http:" || url.protocol === "ws:"
    ? "ws:"
    : "wss:";
  trunk.search = "";
  trunk.hash = "";
  return trunk.href;
}

/** Seconds left until a retry the server announced `retryInSeconds` before
 * `fetchedAt`, counted down between polls; null when none is scheduled. */
export function secondsLeft(
  retryInSeconds: number | null,
  fetchedAt: number,
  now: number,
): number | null {
  if (retryInSeconds === null) return null;
  return Math.max(
    0,
    Math.ceil(retryInSeconds - Math.max(0, now - fetchedAt) / 1000),
  );
}

/** The state word people see: the API's word, with the countdown folded
 * into "retrying". */
export function remoteStateLabel(
  state: string,
  retryInSeconds: number | null,
): string {
  if (state !== "retrying") return state;
  if (retryInSeconds === null) return "retrying";
  return retryInSeconds > 0
    ? `retrying in ${formatDuration(retryInSeconds)}`
    : "retrying now";
}

export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/** One direction of a trunk: "3 tracks, 1.2 MB". */
export function trafficText(tracks: number, bytes: number): string {
  return `${plural(tracks, "track")}, ${formatBytes(bytes)}`;
}

/** A camera track for people: "H.264 video, 2 watching". */
export function cameraTrackText(
  track: { kind: string; mimeType: string; subscribers: number },
): string {
  return `${
    codecName(track.mimeType)
  } ${track.kind}, ${track.subscribers} watching`;
}

/** What a camera does when nobody watches it. */
export function idleText(idleSeconds: number): string {
  return idleSeconds === 0
    ? "always on"
    : `stops ${formatDuration(idleSeconds)} after the last viewer leaves`;
}

/** API errors are lower-case phrases; shown alone they read as sentences. */
export function sentence(text: string): string {
  const trimmed = text.trim();
  if (!trimmed) return trimmed;
  const capitalised = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capitalised) ? capitalised : `${capitalised}.`;
}
