// Camera authentication: WWW-Authenticate challenges (RFC 7235 syntax) and
// the Authorization answers for Basic (RFC 7617) and Digest (RFC 2617 and
// RFC 7616). Cameras offer several challenges at once, in separate headers or
// comma-joined in one, and the strongest one we can answer is used.
import { createHash } from "node:crypto";
import { RtspProtocolError } from "./message.ts";

export type DigestAlgorithm = "MD5" | "MD5-sess" | "SHA-256" | "SHA-256-sess";

export interface BasicChallenge {
  scheme: "basic";
  realm: string;
}

export interface DigestChallenge {
  scheme: "digest";
  realm: string;
  nonce: string;
  opaque?: string;
  algorithm: DigestAlgorithm;
  /** Whether the camera named the algorithm; only then is it echoed back. */
  algorithmGiven: boolean;
  /** The protection chosen from the offered qop list; absent for RFC 2069. */
  qop?: "auth" | "auth-int";
  /** The nonce merely expired: retry with the new one, the password is fine. */
  stale: boolean;
}

export type AuthChallenge = BasicChallenge | DigestChallenge;

export interface AuthCredentials {
  username: string;
  password: string;
  method: string;
  /** Exactly the request-URI on the request line. */
  uri: string;
  /** Times this nonce has been used, this request included; default 1. */
  nc?: number;
  /** Client nonce; random when absent. */
  cnonce?: string;
}

interface RawChallenge {
  scheme: string;
  params: Map<string, string>;
}

const ALGORITHMS: Record<string, DigestAlgorithm> = {
  "md5": "MD5",
  "md5-sess": "MD5-sess",
  "sha-256": "SHA-256",
  "sha-256-sess": "SHA-256-sess",
};

/** Every challenge we can answer, in the order the camera offered them. */
export function parseWwwAuthenticate(
  values: readonly string[],
): AuthChallenge[] {
  return values.flatMap(parseChallengeList).map(interpret).filter(
    (item): item is AuthChallenge => typeof item !== "string",
  );
}

/**
 * The strongest challenge we can answer: Digest over Basic, SHA-256 over
 * MD5, the camera's order otherwise. Throws with the reason when none fits.
 */
export function chooseChallenge(values: readonly string[]): AuthChallenge {
  const interpreted = values.flatMap(parseChallengeList).map(interpret);
  let best: AuthChallenge | undefined;
  for (const item of interpreted) {
    if (typeof item === "string") continue;
    if (!best || strength(item) > strength(best)) best = item;
  }
  if (best) return best;
  const reasons = interpreted.filter((item) => typeof item === "string");
  throw new RtspProtocolError(
    reasons.length > 0
      ? `the camera asks for authentication we cannot do: ${reasons.join("; ")}`
      : "the camera asks for authentication but sent no WWW-Authenticate challenge",
  );
}

function strength(challenge: AuthChallenge): number {
  if (challenge.scheme === "basic") return 0;
  return challenge.algorithm.startsWith("SHA-256") ? 2 : 1;
}

/** A usable challenge, or a plain-words reason why it is not. */
function interpret(raw: RawChallenge): AuthChallenge | string {
  const realm = raw.params.get("realm") ?? "";
  if (raw.scheme === "basic") return { scheme: "basic", realm };
  if (raw.scheme !== "digest") {
    return `the ${raw.scheme} scheme is not supported`;
  }
  const nonce = raw.params.get("nonce");
  if (!nonce) return "a Digest challenge without a nonce";
  const algorithmText = raw.params.get("algorithm");
  const algorithm = ALGORITHMS[(algorithmText ?? "MD5").toLowerCase()];
  if (!algorithm) {
    return `Digest algorithm ${algorithmText} is not supported`;
  }
  const challenge: DigestChallenge = {
    scheme: "digest",
    realm,
    nonce,
    algorithm,
    algorithmGiven: algorithmText !== undefined,
    stale: raw.params.get("stale")?.toLowerCase() === "true",
  };
  const opaque = raw.params.get("opaque");
  if (opaque !== undefined) challenge.opaque = opaque;
  const qopText = raw.params.get("qop");
  if (qopText !== undefined) {
    const offered = qopText.split(",").map((qop) => qop.trim().toLowerCase());
    // RTSP requests carry no body, so auth-int costs nothing extra, but
    // auth is what cameras test against.
    const qop = offered.includes("auth")
      ? "auth"
      : offered.includes("auth-int")
      ? "auth-int"
      : undefined;
    if (!qop) return `Digest qop "${qopText}" is not supported`;
    challenge.qop = qop;
  }
  return challenge;
}

const TCHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;

/**
 * Splits one header value into challenges. A token followed by '=' is a
 * parameter of the current challenge; any other token starts a new one.
 */
function parseChallengeList(value: string): RawChallenge[] {
  const challenges: RawChallenge[] = [];
  let current: RawChallenge | undefined;
  let pos = 0;
  const skip = (pattern: RegExp) => {
    while (pos < value.length && pattern.test(value[pos])) pos++;
  };
  while (pos < value.length) {
    skip(/[\s,]/);
    if (pos >= value.length) break;
    const start = pos;
    skip(TCHAR);
    if (pos === start) {
      // Not ours to understand (e.g. a token68 of another scheme): skip it.
      skip(/[^,]/);
      continue;
    }
    const token = value.slice(start, pos);
    skip(/[ \t]/);
    if (value[pos] !== "=") {
      current = { scheme: token.toLowerCase(), params: new Map() };
      challenges.push(current);
      continue;
    }
    pos++;
    if (value[pos] === "=" || !current) {
      // token68 padding, or a parameter with no scheme before it.
      skip(/[^,]/);
      continue;
    }
    skip(/[ \t]/);
    let parameter: string;
    if (value[pos] === '"') {
      const quoted = readQuoted(value, pos);
      parameter = quoted.text;
      pos = quoted.end;
    } else {
      const valueStart = pos;
      skip(/[^,\s]/);
      parameter = value.slice(valueStart, pos);
    }
    const name = token.toLowerCase();
    if (!current.params.has(name)) current.params.set(name, parameter);
  }
  return challenges;
}

function readQuoted(
  value: string,
  open: number,
): { text: string; end: number } {
  let text = "";
  for (let pos = open + 1; pos < value.length; pos++) {
    const char = value[pos];
    if (char === '"') return { text, end: pos + 1 };
    if (char === "\\" && pos + 1 < value.length) pos++;
    text += value[pos];
  }
  throw new RtspProtocolError(
    `malformed WWW-Authenticate header: unterminated quoted string in ${
      JSON.stringify(value.slice(0, 80))
    }`,
  );
}

/** The Authorization header value answering the challenge. */
export function authorizationHeader(
  challenge: AuthChallenge,
  credentials: AuthCredentials,
): string {
  const { username, password } = credentials;
  if (challenge.scheme === "basic") {
    if (username.includes(":")) {
      throw new RtspProtocolError(
        "a user name containing ':' cannot be sent with Basic authentication",
      );
    }
    const bytes = new TextEncoder().encode(`${username}:${password}`);
    return `Basic ${
      btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""))
    }`;
  }
  const { realm, nonce, algorithm, qop } = challenge;
  const nc = credentials.nc ?? 1;
  if (!Number.isInteger(nc) || nc < 1 || nc > 0xffffffff) {
    throw new RtspProtocolError(`invalid Digest nonce count ${nc}`);
  }
  const ncText = nc.toString(16).padStart(8, "0");
  const cnonce = credentials.cnonce ?? randomHex(16);
  const session = algorithm.endsWith("-sess");
  const hash = hasher(algorithm.startsWith("SHA-256") ? "sha256" : "md5");
  let ha1 = hash(`${username}:${realm}:${password}`);
  if (session) ha1 = hash(`${ha1}:${nonce}:${cnonce}`);
  const ha2 = qop === "auth-int"
    ? hash(`${credentials.method}:${credentials.uri}:${hash("")}`)
    : hash(`${credentials.method}:${credentials.uri}`);
  const response = qop
    ? hash(`${ha1}:${nonce}:${ncText}:${cnonce}:${qop}:${ha2}`)
    : hash(`${ha1}:${nonce}:${ha2}`);
  const fields = [
    `username=${quoted(username)}`,
    `realm=${quoted(realm)}`,
    `nonce=${quoted(nonce)}`,
    `uri=${quoted(credentials.uri)}`,
  ];
  if (challenge.algorithmGiven) fields.push(`algorithm=${algorithm}`);
  if (qop) fields.push(`qop=${qop}`, `nc=${ncText}`);
  if (qop || session) fields.push(`cnonce=${quoted(cnonce)}`);
  fields.push(`response=${quoted(response)}`);
  if (challenge.opaque !== undefined) {
    fields.push(`opaque=${quoted(challenge.opaque)}`);
  }
  return `Digest ${fields.join(", ")}`;
}

function hasher(name: "md5" | "sha256"): (text: string) => string {
  return (text) => createHash(name).update(text, "utf8").digest("hex");
}

function quoted(text: string): string {
  return `"${text.replace(/["\\]/g, "\\$&")}"`;
}

function randomHex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}
