// The SDP a camera answers DESCRIBE with (RFC 4566 as cameras write it), the
// control URLs SETUP needs, and plain-words verdicts on whether each stream
// can reach a browser over WebRTC. Cameras write sloppy SDP, so parsing is
// lenient line by line; a stream we cannot use is skipped with its reason.
import { hasControlCharacter, RtspProtocolError } from "./message.ts";

export interface SdpMedia {
  /** The m= media type: "video", "audio", or whatever the camera wrote. */
  kind: string;
  payloadType: number;
  /** Upper case ("H264", "PCMU", "MPEG4-GENERIC"), except "opus". */
  encoding: string;
  clockRate: number;
  channels?: number;
  /** fmtp parameters by lower-case name. */
  fmtp: Map<string, string>;
  control?: string;
}

export interface SkippedMedia {
  kind: string;
  reason: string;
}

export interface SdpSession {
  sessionControl?: string;
  media: SdpMedia[];
  skipped: SkippedMedia[];
}

export type MediaSupport<MimeType extends string> =
  | { ok: true; mimeType: MimeType }
  | { ok: false; reason: string };

// Far beyond any real DESCRIBE answer; the RTSP parser caps bodies at 1 MiB.
const MAX_SDP_CHARS = 1024 * 1024;

// RFC 3551 static payload types cameras use, which need no a=rtpmap.
const STATIC_PAYLOAD_TYPES: Record<
  number,
  { encoding: string; clockRate: number; channels?: number }
> = {
  0: { encoding: "PCMU", clockRate: 8000, channels: 1 },
  3: { encoding: "GSM", clockRate: 8000, channels: 1 },
  4: { encoding: "G723", clockRate: 8000, channels: 1 },
  8: { encoding: "PCMA", clockRate: 8000, channels: 1 },
  9: { encoding: "G722", clockRate: 8000, channels: 1 },
  10: { encoding: "L16", clockRate: 44100, channels: 2 },
  11: { encoding: "L16", clockRate: 44100, channels: 1 },
  14: { encoding: "MPA", clockRate: 90000 },
  18: { encoding: "G729", clockRate: 8000, channels: 1 },
  26: { encoding: "JPEG", clockRate: 90000 },
  32: { encoding: "MPV", clockRate: 90000 },
  33: { encoding: "MP2T", clockRate: 90000 },
  34: { encoding: "H263", clockRate: 90000 },
};

interface MediaSection {
  kind: string;
  /** Why the m= line itself is unusable, if it is. */
  problem?: string;
  formats: string[];
  attributes: string[];
}

export function parseSdp(input: string | Uint8Array): SdpSession {
  const text = typeof input === "string"
    ? input
    : new TextDecoder().decode(input);
  if (text.length > MAX_SDP_CHARS) {
    throw new RtspProtocolError(
      `SDP of ${text.length} characters is too large`,
    );
  }
  const session: SdpSession = { media: [], skipped: [] };
  const sections: MediaSection[] = [];
  let sawVersion = false;
  for (const rawLine of text.split(/\r\n|\r|\n/)) {
    const line = rawLine.trim();
    if (line[1] !== "=") continue;
    const value = line.slice(2).trim();
    switch (line[0]) {
      case "v":
        sawVersion = true;
        break;
      case "m":
        sections.push(parseMediaLine(value));
        break;
      case "a": {
        const current = sections.at(-1);
        if (current) current.attributes.push(value);
        else if (session.sessionControl === undefined) {
          const [name, attribute] = splitAttribute(value);
          if (name === "control" && attribute) {
            session.sessionControl = attribute;
          }
        }
        break;
      }
    }
  }
  if (!sawVersion && sections.length === 0) {
    throw new RtspProtocolError(
      `the DESCRIBE answer is not SDP: ${JSON.stringify(text.slice(0, 60))}`,
    );
  }
  if (sections.length === 0) {
    throw new RtspProtocolError("the camera's SDP describes no streams");
  }
  for (const section of sections) {
    const media = buildMedia(section);
    if (typeof media === "string") {
      session.skipped.push({ kind: section.kind, reason: media });
    } else session.media.push(media);
  }
  return session;
}

function parseMediaLine(value: string): MediaSection {
  const [kind = "", , proto = "", ...formats] = value.split(/\s+/);
  const lowerKind = kind.toLowerCase();
  // The kind ends up in skip reasons shown to users, so it is kept short.
  const section: MediaSection = {
    kind: lowerKind.slice(0, 32),
    formats,
    attributes: [],
  };
  if (formats.length === 0 || !/^[a-z0-9_-]{1,32}$/.test(lowerKind)) {
    section.problem = `malformed m= line ${JSON.stringify(value.slice(0, 80))}`;
  } else if (!/^RTP\/AVPF?(\/(TCP|UDP))?$/i.test(proto)) {
    section.problem = `transport ${
      JSON.stringify(proto.slice(0, 40))
    } is not plain RTP (RTP/AVP)`;
  }
  return section;
}

// Cameras list one format per stream; with several, the first is the one
// the camera prefers and most likely sends.
function buildMedia(section: MediaSection): SdpMedia | string {
  if (section.problem) return section.problem;
  const format = section.formats[0];
  const payloadType = Number(format);
  if (!/^\d{1,3}$/.test(format) || payloadType > 127) {
    return `invalid payload type ${JSON.stringify(format.slice(0, 20))}`;
  }
  let rtpmap: string | undefined;
  let fmtp: string | undefined;
  let control: string | undefined;
  for (const attribute of section.attributes) {
    const [name, value] = splitAttribute(attribute);
    if (name === "control") control ??= value || undefined;
    else if (name === "rtpmap" || name === "fmtp") {
      const match = /^(\d+)(?:\s+(.*))?$/.exec(value);
      if (Number(match?.[1]) !== payloadType) continue;
      if (name === "rtpmap") rtpmap ??= match![2] ?? "";
      else fmtp ??= match![2] ?? "";
    }
  }
  const codec = rtpmap === undefined
    ? STATIC_PAYLOAD_TYPES[payloadType]
    : parseRtpmap(rtpmap);
  if (codec === undefined) {
    return `payload type ${payloadType} has no a=rtpmap line`;
  }
  if (typeof codec === "string") return codec;
  const media: SdpMedia = {
    kind: section.kind,
    payloadType,
    ...codec,
    fmtp: parseFmtp(fmtp ?? ""),
  };
  if (control !== undefined) media.control = control;
  return media;
}

function parseRtpmap(
  value: string,
): { encoding: string; clockRate: number; channels?: number } | string {
  const match = /^([^\s/]+)\/(\d{1,7})(?:\/(\d{1,3}))?$/.exec(value.trim());
  const clockRate = Number(match?.[2]);
  const channels = match?.[3] === undefined ? undefined : Number(match[3]);
  if (!match || clockRate === 0 || channels === 0) {
    return `malformed a=rtpmap ${JSON.stringify(value.slice(0, 80))}`;
  }
  const upper = match[1].toUpperCase();
  // RFC 7587 registers Opus in lower case and WebRTC names it that way.
  const encoding = upper === "OPUS" ? "opus" : upper;
  return channels === undefined
    ? { encoding, clockRate }
    : { encoding, clockRate, channels };
}

function parseFmtp(value: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const part of value.split(";")) {
    const equals = part.indexOf("=");
    const name = (equals < 0 ? part : part.slice(0, equals)).trim()
      .toLowerCase();
    if (name && !params.has(name)) {
      params.set(name, equals < 0 ? "" : part.slice(equals + 1).trim());
    }
  }
  return params;
}

function splitAttribute(value: string): [string, string] {
  const colon = value.indexOf(":");
  if (colon < 0) return [value.toLowerCase(), ""];
  return [
    value.slice(0, colon).trim().toLowerCase(),
    value.slice(colon + 1).trim(),
  ];
}

/**
 * The URL to SETUP a stream (or to PLAY the session) given its control
 * attribute and the base: Content-Base, else Content-Location, else the
 * DESCRIBE URL. Relative controls are appended with a '/' the way ffmpeg,
 * live555 and gortsplib do it, not resolved per RFC 3986: cameras answer
 * rtsp://cam/Streaming/Channels/101 with "trackID=1" and mean
 * rtsp://cam/Streaming/Channels/101/trackID=1.
 */
export function resolveControlUrl(base: string, control: string): string {
  const trimmed = control.trim();
  let url: string;
  if (trimmed === "" || trimmed === "*") url = base;
  else if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(trimmed)) {
    if (!/^rtsps?:\/\//i.test(trimmed)) {
      throw new RtspProtocolError(
        `control URL ${JSON.stringify(trimmed.slice(0, 80))} is not rtsp://`,
      );
    }
    url = trimmed;
  } else if (trimmed.startsWith("/")) {
    const origin = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(base)?.[0];
    if (!origin) {
      throw new RtspProtocolError(
        `cannot resolve control ${
          JSON.stringify(trimmed.slice(0, 80))
        } against ${JSON.stringify(base.slice(0, 80))}`,
      );
    }
    url = origin + trimmed;
  } else {
    const joiner = base.endsWith("/") || trimmed.startsWith("?") ? "" : "/";
    url = base + joiner + trimmed;
  }
  // The result goes on a request line, where whitespace would split it.
  if (hasControlCharacter(url, false)) {
    throw new RtspProtocolError(
      `control URL ${
        JSON.stringify(url.slice(0, 80))
      } contains whitespace or control characters`,
    );
  }
  return url;
}

/**
 * H.264 parameter sets from sprop-parameter-sets (comma-separated base64).
 * Whitespace and empty entries are tolerated; an entry that is not base64
 * throws, and the caller can carry on and wait for in-band SPS/PPS.
 */
export function parseSpropParameterSets(value: string): Uint8Array[] {
  const sets: Uint8Array[] = [];
  value.split(",").forEach((entry, index) => {
    // atob ignores ASCII whitespace and tolerates missing padding.
    if (entry.trim() === "") return;
    let binary: string;
    try {
      binary = atob(entry);
    } catch {
      throw new RtspProtocolError(
        `sprop-parameter-sets entry ${index + 1} is not valid base64: ${
          JSON.stringify(entry.slice(0, 40))
        }`,
      );
    }
    sets.push(Uint8Array.from(binary, (char) => char.charCodeAt(0)));
  });
  return sets;
}

const AUDIO_NAMES: Record<string, string> = {
  "MPEG4-GENERIC": "AAC (MPEG4-GENERIC)",
  "MP4A-LATM": "AAC (MP4A-LATM)",
  "G726-16": "G.726",
  "G726-24": "G.726",
  "G726-32": "G.726",
  "G726-40": "G.726",
  "G722": "G.722",
  "L16": "Uncompressed (L16)",
};

export function describeAudioSupport(
  media: SdpMedia,
): MediaSupport<"audio/PCMU" | "audio/PCMA" | "audio/opus"> {
  if (media.kind !== "audio") {
    return { ok: false, reason: `not an audio stream (m=${media.kind})` };
  }
  const { encoding, clockRate } = media;
  const channels = media.channels ?? 1;
  if (encoding === "PCMU" || encoding === "PCMA") {
    if (clockRate === 8000 && channels === 1) {
      return { ok: true, mimeType: `audio/${encoding}` };
    }
    return {
      ok: false,
      reason:
        `${encoding} audio at ${clockRate} Hz with ${channels} channels cannot be played by browsers over WebRTC, which take only 8000 Hz mono; audio is skipped`,
    };
  }
  if (encoding === "opus") {
    if (clockRate === 48000) return { ok: true, mimeType: "audio/opus" };
    return {
      ok: false,
      reason:
        `Opus audio with a ${clockRate} Hz RTP clock is invalid (it must be 48000); audio is skipped`,
    };
  }
  return {
    ok: false,
    reason: `${
      AUDIO_NAMES[encoding] ?? encoding
    } audio cannot be played by browsers over WebRTC; audio is skipped (choose G.711 or Opus in the camera's audio settings to hear it)`,
  };
}

const VIDEO_NAMES: Record<string, string> = {
  "H265": "H.265",
  "JPEG": "MJPEG",
  "MP4V-ES": "MPEG-4 Part 2",
};

export function describeVideoSupport(
  media: SdpMedia,
): MediaSupport<"video/H264"> {
  if (media.kind !== "video") {
    return { ok: false, reason: `not a video stream (m=${media.kind})` };
  }
  if (media.encoding !== "H264") {
    return {
      ok: false,
      reason: `${
        VIDEO_NAMES[media.encoding] ?? media.encoding
      } video is not supported: set the camera's stream to H.264`,
    };
  }
  const mode = media.fmtp.get("packetization-mode") ?? "0";
  if (mode !== "0" && mode !== "1") {
    return {
      ok: false,
      reason:
        `H.264 with packetization-mode=${mode} is not supported by browsers: set the camera to its default H.264 packetization`,
    };
  }
  if (media.clockRate !== 90000) {
    return {
      ok: false,
      reason:
        `H.264 with a ${media.clockRate} Hz RTP clock is invalid (it must be 90000)`,
    };
  }
  return { ok: true, mimeType: "video/H264" };
}
