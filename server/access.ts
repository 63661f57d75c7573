// Who may reach what over HTTP (docs/api.md, "Signing in"): the gate every
// request but health passes, and the sign-in endpoints. Without a password
// the gate lets everything through.
import { isPage, uiAsset } from "../ui/assets.ts";
import { type Auth, failureKey, type Role, roleAllows } from "./auth.ts";
import { crossSite, json, notJsonLike, readJsonBody } from "./http.ts";
import { log } from "./log.ts";

export interface AccessOptions {
  /** Where the session cookie applies: the HTTP prefix, or "/". */
  cookiePath: string;
  /** Behind a proxy (cloud mode): the client is the last X-Forwarded-For
   * address, not the connection's. */
  behindProxy: boolean;
}

const SIGN_IN_PATHS = new Set(["/api/login", "/api/logout", "/api/session"]);
const SIGN_IN_REQUIRED = "sign in first: this node needs a password";
/** A sign-in body is a password; anyone may send one, so it is kept small. */
const MAX_SIGN_IN_BYTES = 4096;
const OPERATOR_REQUIRED = "this needs the operator password";

/** What a path needs: running the node (the servers list, metrics), or
 * taking part (everything else). */
function roleNeeded(path: string): Role {
  return path === "/servers" || path === "/metrics" ||
      path === "/api/servers" || path.startsWith("/api/servers/")
    ? "operator"
    : "participant";
}
const nowSeconds = () => Date.now() / 1000;

/** What the gate has done since start, for /metrics. */
export interface AccessStats {
  signIns: Record<Role, number>;
  refused: {
    wrongPassword: number;
    tooManyAttempts: number;
    operatorOnly: number;
    crossSite: number;
  };
}

export class Access {
  readonly #auth: Auth | undefined;
  readonly #options: AccessOptions;
  readonly #stats: AccessStats = {
    signIns: { participant: 0, operator: 0 },
    refused: {
      wrongPassword: 0,
      tooManyAttempts: 0,
      operatorOnly: 0,
      crossSite: 0,
    },
  };

  constructor(auth: Auth | undefined, options: AccessOptions) {
    this.#auth = auth;
    this.#options = options;
  }

  stats(): AccessStats {
    return this.#stats;
  }

  /** Paths open to anyone: signing in, out, and asking whether one is. */
  static isSignInPath(path: string): boolean {
    return SIGN_IN_PATHS.has(path);
  }

  /** Why the request may not go on, or undefined when it may. `path` is
   * without the HTTP prefix. */
  refusal(
    request: Request,
    info: Deno.ServeHandlerInfo,
    path: string,
  ): Response | undefined {
    const auth = this.#auth;
    if (auth === undefined || openAsset(request, path)) return undefined;
    const needed = roleNeeded(path);
    // Without a participant password, taking part needs nothing at all.
    if (needed === "participant" && !auth.participantsNeedPassword) {
      return undefined;
    }
    const address = this.#clientAddress(request, info);
    const now = nowSeconds();
    const credential = auth.credential(request.headers, now);
    const guess = credential.kind === "password" ||
      credential.kind === "wrong" && credential.why === "wrong password";
    // An address that guessed wrong too often waits even with a right
    // password, or the difference would tell a guesser when it is right.
    const waiting = guess ? this.#waiting(auth, address, now) : undefined;
    if (waiting) return waiting;
    if (credential.kind === "password" || credential.kind === "cookie") {
      if (!roleAllows(credential.role, needed)) {
        this.#stats.refused.operatorOnly++;
        return request.method === "GET" && isPage(path)
          ? signInFirst(path)
          : json({ error: OPERATOR_REQUIRED }, 403);
      }
      // A cookie goes wherever the browser goes; a page on another site must
      // not open a WebSocket or change servers with it. SameSite=Strict
      // already keeps it from being sent; this holds for older browsers too.
      const origin = request.headers.get("origin");
      if (
        credential.kind === "cookie" &&
        (path === "/wsb" || request.method !== "GET") &&
        crossSite(origin, request.headers.get("host"))
      ) {
        this.#stats.refused.crossSite++;
        return json({ error: `requests from ${origin} are not accepted` }, 403);
      }
      return undefined;
    }
    if (guess) this.#wrongPassword(auth, address, now, path);
    if (request.method === "GET" && isPage(path)) return signInFirst(path);
    return json(
      {
        error: credential.kind === "wrong"
          ? `${credential.why}: this node needs its password`
          : needed === "operator" && auth.operatorPasswordSet
          ? `sign in first: ${OPERATOR_REQUIRED}`
          : SIGN_IN_REQUIRED,
      },
      401,
      { "www-authenticate": 'Bearer realm="Umbrella"' },
    );
  }

  /** Answers one of the sign-in paths (isSignInPath). */
  async signIn(
    request: Request,
    info: Deno.ServeHandlerInfo,
    path: string,
  ): Promise<Response> {
    const auth = this.#auth;
    if (path === "/api/session") {
      const cookie = auth?.credential(request.headers, nowSeconds());
      const signedIn = cookie?.kind === "cookie" ? cookie.role : undefined;
      return json({
        passwordRequired: auth?.participantsNeedPassword ?? false,
        operatorPasswordRequired: auth !== undefined,
        signedIn: signedIn !== undefined,
        // What this browser may do now.
        role: auth === undefined ? "operator" : signedIn ??
          (auth.participantsNeedPassword ? null : "participant"),
      });
    }
    if (request.method !== "POST") return json({ error: "use POST" }, 405);
    if (auth === undefined) return new Response(null, { status: 204 });
    if (path === "/api/logout") {
      return new Response(null, {
        status: 204,
        headers: {
          "set-cookie": auth.clearedCookie(
            this.#options.cookiePath,
            this.#overTls(request),
          ),
        },
      });
    }
    const address = this.#clientAddress(request, info);
    const now = nowSeconds();
    const waiting = this.#waiting(auth, address, now);
    if (waiting) return waiting;
    const hint = '{"password": "..."}';
    const body = await readJsonBody(request, MAX_SIGN_IN_BYTES, hint);
    if (!body.ok) return body.response;
    const password = (body.value as { password?: unknown } | null)?.password;
    if (typeof password !== "string") return notJsonLike(hint);
    const role = auth.roleFor(password);
    if (role === undefined) {
      this.#wrongPassword(auth, address, now, "/api/login");
      return json({ error: "wrong password" }, 401);
    }
    this.#stats.signIns[role]++;
    log.info("a browser signed in", { address, role });
    return new Response(null, {
      status: 204,
      headers: {
        "set-cookie": auth.sessionCookie(
          now,
          this.#options.cookiePath,
          role,
          this.#overTls(request),
        ),
      },
    });
  }

  /** 429 while the address must wait after too many wrong passwords. */
  #waiting(auth: Auth, address: string, now: number): Response | undefined {
    const wait = auth.retryAfter(address, now);
    if (wait === 0) return undefined;
    this.#stats.refused.tooManyAttempts++;
    return tooManyAttempts(wait);
  }

  #wrongPassword(auth: Auth, address: string, now: number, path: string) {
    this.#stats.refused.wrongPassword++;
    auth.recordFailure(address, now);
    log.warn("refused a wrong password", { address, path });
  }

  /** Who is asking, for counting wrong passwords (an IPv6 client by its
   * /64): behind the proxy, the address it appended last. */
  #clientAddress(request: Request, info: Deno.ServeHandlerInfo): string {
    const forwarded = this.#options.behindProxy
      ? request.headers.get("x-forwarded-for")?.split(",").at(-1)?.trim()
      : undefined;
    return failureKey(forwarded || (info.remoteAddr as Deno.NetAddr).hostname);
  }

  /** Whether the browser reached us over TLS: our own, or (in cloud mode
   * only, where a proxy sets it) the one X-Forwarded-Proto names. */
  #overTls(request: Request): boolean {
    if (new URL(request.url).protocol === "https:") return true;
    return this.#options.behindProxy &&
      request.headers.get("x-forwarded-proto")?.split(",")[0].trim() ===
        "https";
  }
}

/** The sign-in page and the scripts and icons every page loads. */
function openAsset(request: Request, path: string): boolean {
  return path === "/login" ||
    (request.method === "GET" && !isPage(path) && uiAsset(path) !== undefined);
}

/** Pages send the browser to sign in, and back (the link is relative, so it
 * stays under the HTTP prefix). */
function signInFirst(path: string): Response {
  return new Response(null, {
    status: 302,
    headers: { location: `login?next=${path.slice(1)}` },
  });
}

function tooManyAttempts(retryAfter: number): Response {
  return json(
    {
      error:
        `too many wrong passwords from this address; try again in ${retryAfter} s`,
      retryAfterSeconds: retryAfter,
    },
    429,
    { "retry-after": String(retryAfter) },
  );
}
