// Who may use this node. A password lets participants in (every page but
// the servers list, the API, the signalling WebSocket); an operator
// password, where set apart from it, is also needed for the servers list
// and metrics. A browser signs in once and holds a signed cookie naming
// what it may do; scripts, Prometheus and trunks from other nodes send a
// password with each request (HTTP Basic, any user name, or Bearer). A
// trunk is a participant that relays.
import {
  createHash,
  createHmac,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import { ConfigError, ensureDataDir } from "./config.ts";
import { errorMessage } from "./log.ts";

/** A browser stays signed in this long after signing in. */
export const SESSION_SECONDS = 30 * 24 * 3600;
/** Wrong passwords from one address: this many are answered at once... */
export const FAILURES_ALLOWED = 10;
/** ...within this window; more wait until the oldest leaves it. */
export const FAILURE_WINDOW_SECONDS = 300;
/** Addresses remembered for failures; the oldest go first beyond this, so a
 * flood from many addresses cannot grow memory. */
const FAILURE_ADDRESSES_KEPT = 10_000;

const SECRET_FILE = "session-secret";
const SECRET_BYTES = 32;

/** What a credential lets one do: take part (join calls, see the status),
 * or also run the node (its servers list and metrics). */
export type Role = "participant" | "operator";

export interface Passwords {
  /** Needed to take part; unset, anyone who reaches the node may. */
  password?: string;
  /** Needed to run the node; unset, the password is enough for that too. */
  operatorPassword?: string;
}

export type Credential =
  /** A signed session cookie that verifies. */
  | { kind: "cookie"; role: Role }
  /** A password sent with the request itself. */
  | { kind: "password"; role: Role }
  /** Something was sent, and it is wrong (or expired). */
  | { kind: "wrong"; why: string }
  | { kind: "none" };

const ROLE_LETTER: Record<Role, string> = { participant: "p", operator: "o" };

/** Whether `role` may do what `needed` allows. */
export function roleAllows(role: Role | undefined, needed: Role): boolean {
  return role === "operator" || (role === "participant" && needed === role);
}

export class Auth {
  readonly cookieName: string;
  readonly #participant: Buffer | undefined;
  readonly #operator: Buffer | undefined;
  readonly #key: Buffer;
  readonly #failures = new Map<string, number[]>();

  /**
   * @param secret random bytes kept in the data directory: with the
   * passwords, the key that signs cookies, so a restart keeps browsers
   * signed in and a new password signs every browser out.
   * @param nodeId names the cookie: cookies do not tell ports apart, and two
   * nodes on one host must not overwrite each other's.
   */
  constructor(passwords: Passwords, secret: Uint8Array, nodeId: string) {
    if (passwords.password === undefined && !passwords.operatorPassword) {
      throw new Error("Auth needs a password or an operator password");
    }
    this.#participant = passwords.password === undefined
      ? undefined
      : digest(passwords.password);
    this.#operator = passwords.operatorPassword === undefined
      ? undefined
      : digest(passwords.operatorPassword);
    this.#key = createHmac("sha256", secret).update(
      `${passwords.password ?? ""}\0${passwords.operatorPassword ?? ""}`,
    ).digest();
    this.cookieName = `umbrella_session_${nodeId.slice(0, 12)}`;
  }

  /** Whether taking part needs a password at all. */
  get participantsNeedPassword(): boolean {
    return this.#participant !== undefined;
  }

  /** Whether running the node needs a password of its own. */
  get operatorPasswordSet(): boolean {
    return this.#operator !== undefined;
  }

  /** What a password lets one do, or undefined for a wrong one. Both are
   * compared each time, in time independent of where they differ. */
  roleFor(password: string): Role | undefined {
    const given = digest(password);
    const operator = this.#operator !== undefined &&
      timingSafeEqual(given, this.#operator);
    const participant = this.#participant !== undefined &&
      timingSafeEqual(given, this.#participant);
    if (operator) return "operator";
    if (participant) {
      return this.#operator === undefined ? "operator" : "participant";
    }
    return undefined;
  }

  /** A session token for `role`, valid until the given time (seconds since
   * the epoch) plus SESSION_SECONDS. */
  issueToken(nowSeconds: number, role: Role): string {
    const expires = Math.floor(nowSeconds) + SESSION_SECONDS;
    const letter = ROLE_LETTER[role];
    return `${expires}.${letter}.${this.#sign(expires, letter)}`;
  }

  /** The role a token signs, or undefined if it is forged or expired. */
  tokenRole(token: string, nowSeconds: number): Role | undefined {
    const match = /^(\d{1,12})\.([po])\.([A-Za-z0-9_-]{43})$/.exec(token);
    if (!match) return undefined;
    const expires = Number(match[1]);
    const expected = Buffer.from(this.#sign(expires, match[2]));
    const given = Buffer.from(match[3]);
    if (!timingSafeEqual(expected, given) || expires <= nowSeconds) {
      return undefined;
    }
    return match[2] === "o" ? "operator" : "participant";
  }

  /** What the request carries: a cookie, a password, or neither. */
  credential(headers: Headers, nowSeconds: number): Credential {
    const authorization = headers.get("authorization");
    if (authorization !== null) {
      const password = passwordFromAuthorization(authorization);
      if (password === undefined) {
        return {
          kind: "wrong",
          why: "the Authorization header is neither Basic nor Bearer",
        };
      }
      const role = this.roleFor(password);
      return role
        ? { kind: "password", role }
        : { kind: "wrong", why: "wrong password" };
    }
    const token = cookieValue(headers.get("cookie"), this.cookieName);
    if (token === undefined) return { kind: "none" };
    const role = this.tokenRole(token, nowSeconds);
    return role
      ? { kind: "cookie", role }
      : { kind: "wrong", why: "the sign-in has expired" };
  }

  /** Set-Cookie for a browser that just signed in; `secure` when the
   * browser reached the node over TLS (its own or its proxy's), as a cookie
   * marked Secure is dropped on plain HTTP. */
  sessionCookie(
    nowSeconds: number,
    path: string,
    role: Role,
    secure: boolean,
  ): string {
    return this.#cookie(
      this.issueToken(nowSeconds, role),
      SESSION_SECONDS,
      path,
      secure,
    );
  }

  /** Set-Cookie that signs a browser out. */
  clearedCookie(path: string, secure: boolean): string {
    return this.#cookie("", 0, path, secure);
  }

  /** Seconds until this address may try a password again; 0: now. */
  retryAfter(address: string, nowSeconds: number): number {
    const times = this.#recentFailures(address, nowSeconds);
    if (times.length < FAILURES_ALLOWED) return 0;
    return Math.max(
      1,
      Math.ceil(
        times[times.length - FAILURES_ALLOWED] +
          FAILURE_WINDOW_SECONDS - nowSeconds,
      ),
    );
  }

  recordFailure(address: string, nowSeconds: number): void {
    const times = this.#recentFailures(address, nowSeconds);
    times.push(nowSeconds);
    // Re-inserted, so the map's order is oldest activity first.
    this.#failures.delete(address);
    this.#failures.set(address, times.slice(-FAILURES_ALLOWED));
    while (this.#failures.size > FAILURE_ADDRESSES_KEPT) {
      this.#failures.delete(this.#failures.keys().next().value!);
    }
  }

  #recentFailures(address: string, nowSeconds: number): number[] {
    const since = nowSeconds - FAILURE_WINDOW_SECONDS;
    return (this.#failures.get(address) ?? []).filter((t) => t > since);
  }

  #sign(expires: number, roleLetter: string): string {
    return createHmac("sha256", this.#key)
      .update(`session:${expires}:${roleLetter}`).digest("base64url");
  }

  #cookie(
    value: string,
    maxAge: number,
    path: string,
    secure: boolean,
  ): string {
    return `${this.cookieName}=${value}; Path=${path}; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${
      secure ? "; Secure" : ""
    }`;
  }
}

/** What wrong passwords are counted against: the address, or for IPv6
 * its /64, since one host commonly has a whole /64 to pick from. */
export function failureKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  if (!address.includes(":")) return address;
  const [head, tail = ""] = address.toLowerCase().split("::");
  const front = head === "" ? [] : head.split(":");
  const back = address.includes("::") && tail !== "" ? tail.split(":") : [];
  const groups = [
    ...front,
    ...Array(Math.max(0, 8 - front.length - back.length)).fill("0"),
    ...back,
  ];
  return `${
    groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":")
  }::/64`;
}

/** The password in `Basic base64(user:password)` (any user) or `Bearer
 * password`; undefined for anything else. */
export function passwordFromAuthorization(header: string): string | undefined {
  const match = /^\s*(Basic|Bearer)\s+(.*?)\s*$/i.exec(header);
  if (!match || match[2] === "") return undefined;
  // The whole rest, so that a password with spaces works as a Bearer token.
  if (match[1].toLowerCase() === "bearer") return match[2];
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(match[2])) return undefined;
  const decoded = Buffer.from(match[2], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : decoded.slice(colon + 1);
}

/** One cookie's value from a Cookie header, undefined if absent. */
export function cookieValue(
  header: string | null,
  name: string,
): string | undefined {
  if (header === null) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      return part.slice(eq + 1).trim();
    }
  }
  return undefined;
}

/** The Authorization header a client sends for the credentials written in a
 * URL (`wss://user:password@host/...`), or undefined when there are none. */
export function authorizationFromUrl(url: URL): string | undefined {
  if (url.username === "" && url.password === "") return undefined;
  const user = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  return `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}

/** Reads dataDir/session-secret, making it on first use. */
export async function loadSessionSecret(dataDir: string): Promise<Uint8Array> {
  const file = join(dataDir, SECRET_FILE);
  await ensureDataDir(dataDir);
  try {
    const stored = await Deno.readFile(file);
    if (stored.length === SECRET_BYTES) return stored;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new ConfigError(
        `cannot read ${JSON.stringify(file)} (${errorMessage(err)})`,
      );
    }
  }
  const secret = randomBytes(SECRET_BYTES);
  try {
    await Deno.writeFile(file, secret, { mode: 0o600 });
  } catch (err) {
    throw new ConfigError(
      `cannot write ${JSON.stringify(file)} (${errorMessage(err)})`,
    );
  }
  return secret;
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}
