// Pure helpers shared by the pages: turning numbers, ids and errors into
// the words and shapes people see. Nothing here touches the DOM, so the
// tests run them directly.

/** The page a path names: its last segment ("/umbrella/sfu" → "sfu"). */
export function pageName(pathname: string): string {
  return pathname.slice(pathname.lastIndexOf("/") + 1);
}

/** The signalling WebSocket beside the page, so it keeps any HTTP prefix
 * the server runs under (https://h/umbrella/sfu → wss://h/umbrella/wsb). */
export function signallingUrl(pageHref: string): string {
  const url = new URL("wsb", pageHref);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.hash = "";
  url.search = "";
  return url.href;
}

/** Seconds to wait before reconnect attempt number `attempt` (0-based):
 * 1, 2, 4, 8, then 10 s, so a short blip heals fast and a long outage
 * does not hammer the server. */
export function reconnectDelaySeconds(attempt: number): number {
  return Math.min(10, 2 ** Math.max(0, attempt));
}

export function formatDuration(totalSeconds: number): string {
  const seconds = Math.max(0, Math.floor(totalSeconds));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

export function formatBitrate(bitsPerSecond: number): string {
  if (bitsPerSecond >= 1e6) return `${(bitsPerSecond / 1e6).toFixed(2)} Mbit/s`;
  if (bitsPerSecond >= 1e3) return `${Math.round(bitsPerSecond / 1e3)} kbit/s`;
  return `${Math.round(bitsPerSecond)} bit/s`;
}

export function formatPercent(fraction: number): string {
  return `${(fraction * 100).toFixed(1)} %`;
}

/** "video/H264" → "H.264": codec names as people write them. */
export function codecName(mimeType: string): string {
  const subtype = mimeType.slice(mimeType.indexOf("/") + 1);
  switch (subtype.toLowerCase()) {
    case "h264":
      return "H.264";
    case "opus":
      return "Opus";
    case "":
      return "unknown codec";
    default:
      return subtype.toUpperCase();
  }
}

/** Up to two letters for an avatar: "Ada Lovelace" → "AL". */
export function initials(name: string): string {
  const letters = name.trim().split(/\s+/).filter(Boolean).slice(0, 2)
    .map((word) => Array.from(word)[0].toUpperCase());
  return letters.length > 0 ? letters.join("") : "?";
}

/** A stable hue for an id, so a participant keeps their avatar colour. */
export function hueOf(id: string): number {
  let hash = 0;
  for (let i = 0; i < id.length; i++) {
    hash = (hash * 31 + id.charCodeAt(i)) >>> 0;
  }
  return hash % 360;
}

/** SVG polyline points for a sparkline, the largest value touching the top
 * and zero on the bottom edge; newest sample on the right. */
export function sparklinePoints(
  values: readonly number[],
  width: number,
  height: number,
): string {
  if (values.length === 0) return "";
  const top = Math.max(...values, 1);
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  return values.map((value, i) => {
    const x = values.length > 1 ? i * step : width;
    const y = height - (Math.max(0, value) / top) * height;
    return `${round2(x)},${round2(y)}`;
  }).join(" ");
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

/** What to tell a person when the camera or microphone cannot be opened
 * (getUserMedia's DOMException names). */
export function mediaErrorMessage(
  error: { name?: string; message?: string },
): string {
  switch (error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Camera and microphone access was blocked. Allow it in your browser's site settings (usually the icon left of the address), then try again, or join with Watch only.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No camera or microphone was found. Plug one in and try again, or join with Watch only.";
    case "NotReadableError":
    case "AbortError":
      return "The camera or microphone is in use by another application or could not be started. Close other apps using it and try again, or join with Watch only.";
    default:
      return `The camera or microphone could not be opened${
        error.message ? ` (${error.message})` : ""
      }. You can still join with Watch only.`;
  }
}

export const INSECURE_CONTEXT_MESSAGE =
  "This page was not opened over https, so the browser will not share a camera or microphone. Open it with https:// (on a local Umbrella, accept its certificate when the browser warns about it). You can still join with Watch only.";

/** How a tile names a participant, also its accessible name. */
export function tileLabel(name: string, site: string): string {
  return site ? `${name} (${site})` : name;
}

export type Tone = "good" | "warn" | "bad" | "neutral";

/** Colour of a state word, for WebRTC peers as for trunks and cameras:
 * green when media can flow, amber while getting there, red when it failed
 * (a retry is scheduled because something failed), grey when nothing is
 * meant to flow (an idle camera, a removed entry). */
export function stateTone(state: string): Tone {
  switch (state) {
    case "connected":
    case "streaming":
      return "good";
    case "new":
    case "connecting":
      return "warn";
    case "failed":
    case "disconnected":
    case "retrying":
      return "bad";
    default:
      return "neutral";
  }
}

/** Byte counts in decimal units, as network traffic is usually counted. */
export function formatBytes(bytes: number): string {
  const value = Math.max(0, bytes);
  if (value < 999.5) return `${Math.round(value)} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let scaled = value / 1000;
  let unit = 0;
  while (scaled >= 999.5 && unit < units.length - 1) {
    scaled /= 1000;
    unit++;
  }
  return `${scaled < 99.95 ? scaled.toFixed(1) : Math.round(scaled)} ${
    units[unit]
  }`;
}

/** Whether a participant is at another site than this node (reached over
 * a trunk), which its tile marks. */
export function fromOtherSite(site: string, ownSite: string): boolean {
  return site !== "" && ownSite !== "" && site !== ownSite;
}
