// Camera URLs as users paste them from camera manuals, e.g.
// rtsp://admin:p%40ss@192.168.1.64:554/Streaming/Channels/101. Parsed by hand
// rather than with URL: the path must reach the camera exactly as typed
// (some cameras compare it byte for byte), and a password with an unencoded
// '/', '?' or '#' should give a hint instead of a silent misparse.
import { hasControlCharacter, RtspProtocolError } from "./message.ts";

export class RtspUrlError extends RtspProtocolError {
  override name = "RtspUrlError";
}

export interface RtspUrl {
  /** The URL without credentials: what goes on the request line. */
  url: string;
  scheme: "rtsp" | "rtsps";
  /** Host name or address; IPv6 without brackets. */
  host: string;
  port: number;
  /** Path and query, "/" when the URL has none. */
  path: string;
  username?: string;
  password?: string;
}

const DEFAULT_PORTS = { rtsp: 554, rtsps: 322 } as const;
const ENCODE_HINT =
  "; if the user name or password contains / ? # @ or %, write them as %2F %3F %23 %40 %25";

export function parseRtspUrl(input: string): RtspUrl {
  const text = input.trim();
  const schemeMatch = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text);
  const scheme = schemeMatch?.[1].toLowerCase();
  if (scheme !== "rtsp" && scheme !== "rtsps") {
    throw new RtspUrlError(
      schemeMatch
        ? `unsupported URL scheme "${scheme}:": camera URLs start with rtsp:// or rtsps://`
        : "not a camera URL: it must start with rtsp:// or rtsps://",
    );
  }
  const rest = text.slice(schemeMatch![0].length);
  const authorityEnd = rest.search(/[/?#]/);
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd);
  const tail = authorityEnd < 0 ? "" : rest.slice(authorityEnd);
  const path = tail.split("#")[0];
  if (path.includes("@")) {
    throw new RtspUrlError(`the URL path contains '@'${ENCODE_HINT}`);
  }
  if (hasControlCharacter(path, false)) {
    throw new RtspUrlError(
      "the URL path contains a space or control character; percent-encode it (space is %20)",
    );
  }
  const at = authority.lastIndexOf("@");
  const hostPort = authority.slice(at + 1);
  const { host, port, hostText } = parseHostPort(
    hostPort,
    DEFAULT_PORTS[scheme],
  );
  const result: RtspUrl = {
    url: `${scheme}://${hostText}${path}`,
    scheme,
    host,
    port,
    path: path === "" ? "/" : path,
  };
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    const colon = userinfo.indexOf(":");
    result.username = decodeCredential(
      colon < 0 ? userinfo : userinfo.slice(0, colon),
      "user name",
    );
    if (colon >= 0) {
      result.password = decodeCredential(userinfo.slice(colon + 1), "password");
    }
  }
  return result;
}

function parseHostPort(
  text: string,
  defaultPort: number,
): { host: string; port: number; hostText: string } {
  const match = /^(\[([^\]]*)\]|[^:]*)(?::(.*))?$/.exec(text)!;
  const host = match[2] ?? match[1];
  if (host === "") throw new RtspUrlError("the camera URL has no host");
  const validHost = match[2] === undefined
    ? /^[A-Za-z0-9._~-]+$/.test(host)
    : /^[0-9A-Fa-f:.]+$/.test(host) && host.includes(":");
  if (!validHost) {
    throw new RtspUrlError(
      `invalid host "${host}" in camera URL${ENCODE_HINT}`,
    );
  }
  const portText = match[3];
  if (portText === undefined || portText === "") {
    return { host, port: defaultPort, hostText: match[1] };
  }
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : 0;
  if (port < 1 || port > 65535) {
    throw new RtspUrlError(
      `invalid port "${portText}" in camera URL (1-65535)${ENCODE_HINT}`,
    );
  }
  return { host, port, hostText: `${match[1]}:${portText}` };
}

function decodeCredential(text: string, what: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(text);
  } catch {
    throw new RtspUrlError(
      `the ${what} in the camera URL has a '%' that is not followed by two hex digits: write % as %25`,
    );
  }
  // The user name is echoed in Digest headers, where a line break would
  // split the request.
  if (hasControlCharacter(decoded, true)) {
    throw new RtspUrlError(
      `the ${what} in the camera URL contains a control character`,
    );
  }
  return decoded;
}

/**
 * The URL with its password replaced by ***, for logs and the UI. Works on
 * any string, valid or not, and errs towards hiding too much: everything up
 * to the last '@' after "user:" is hidden.
 */
export function redactRtspUrl(input: string): string {
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(input)?.[0] ?? "";
  const rest = input.slice(scheme.length);
  return scheme + rest.replace(/^([^:@/]*:)[\s\S]*@/, "$1***@");
}
