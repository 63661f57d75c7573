// The password, session cookies and the limit on wrong passwords, without a
// network: server/auth.ts.
import assert from "node:assert/strict";
import {
  Auth,
  authorizationFromUrl,
  cookieValue,
  FAILURE_WINDOW_SECONDS,
  failureKey,
  FAILURES_ALLOWED,
  passwordFromAuthorization,
  roleAllows,
  SESSION_SECONDS,
} from "../server/auth.ts";

const SECRET = new Uint8Array(32).fill(7);
const NODE_ID = "0123456789abcdef0123456789abcdef";
const NOW = 1_800_000_000;

const basic = (text: string) => `Basic ${btoa(text)}`;

Deno.test("a session token holds until it expires, for its role, passwords and secret only", () => {
  const auth = new Auth({ password: "right" }, SECRET, NODE_ID);
  const token = auth.issueToken(NOW, "participant");
  assert.equal(auth.tokenRole(token, NOW), "participant");
  assert.equal(
    auth.tokenRole(token, NOW + SESSION_SECONDS - 1),
    "participant",
  );
  assert.equal(auth.tokenRole(token, NOW + SESSION_SECONDS), undefined);
  assert.equal(
    auth.tokenRole(auth.issueToken(NOW, "operator"), NOW),
    "operator",
  );
  for (
    const other of [
      new Auth({ password: "other" }, SECRET, NODE_ID),
      new Auth({ password: "right", operatorPassword: "x" }, SECRET, NODE_ID),
      new Auth({ password: "right" }, new Uint8Array(32), NODE_ID),
    ]
  ) {
    assert.equal(other.tokenRole(token, NOW), undefined);
  }
  const [expires, role, mac] = token.split(".");
  // A later expiry, or the operator's letter, with the old signature fails.
  assert.equal(
    auth.tokenRole(`${Number(expires) + 100}.${role}.${mac}`, NOW),
    undefined,
  );
  assert.equal(auth.tokenRole(`${expires}.o.${mac}`, NOW), undefined);
  const flipped = mac[0] === "A" ? `B${mac.slice(1)}` : `A${mac.slice(1)}`;
  assert.equal(auth.tokenRole(`${expires}.${role}.${flipped}`, NOW), undefined);
  for (
    const garbage of [
      "",
      ".",
      "1.",
      `${expires}.${mac}`,
      `${expires}.x.${mac}`,
      "x".repeat(10_000),
      token + "x",
    ]
  ) {
    assert.equal(
      auth.tokenRole(garbage, NOW),
      undefined,
      JSON.stringify(garbage.slice(0, 20)),
    );
  }
});

Deno.test("which password gives which role", () => {
  const one = new Auth({ password: "pw" }, SECRET, NODE_ID);
  assert.equal(one.roleFor("pw"), "operator");
  assert.equal(one.roleFor("nope"), undefined);
  assert.ok(one.participantsNeedPassword);
  const two = new Auth(
    { password: "pw", operatorPassword: "op" },
    SECRET,
    NODE_ID,
  );
  assert.equal(two.roleFor("pw"), "participant");
  assert.equal(two.roleFor("op"), "operator");
  assert.equal(two.roleFor(""), undefined);
  const operatorOnly = new Auth({ operatorPassword: "op" }, SECRET, NODE_ID);
  assert.ok(!operatorOnly.participantsNeedPassword);
  assert.equal(operatorOnly.roleFor("op"), "operator");
  assert.equal(operatorOnly.roleFor(""), undefined);
  assert.throws(() => new Auth({}, SECRET, NODE_ID));
  assert.ok(roleAllows("operator", "operator"));
  assert.ok(roleAllows("operator", "participant"));
  assert.ok(roleAllows("participant", "participant"));
  assert.ok(!roleAllows("participant", "operator"));
  assert.ok(!roleAllows(undefined, "participant"));
});

Deno.test("the password is read from Basic (any user) and Bearer, and nothing else", () => {
  assert.equal(passwordFromAuthorization(basic("umbrella:pw")), "pw");
  assert.equal(passwordFromAuthorization(basic(":a:b:c")), "a:b:c");
  assert.equal(
    passwordFromAuthorization(
      `Basic ${
        btoa(String.fromCharCode(...new TextEncoder().encode("u:pässword")))
      }`,
    ),
    "pässword",
  );
  assert.equal(passwordFromAuthorization("bearer tok"), "tok");
  assert.equal(
    passwordFromAuthorization("Bearer  with spaces "),
    "with spaces",
  );
  for (
    const hostile of [
      "Basic",
      "Basic !!!",
      basic("no colon"),
      "Digest x",
      "Bearer ",
      "",
    ]
  ) {
    assert.equal(passwordFromAuthorization(hostile), undefined, hostile);
  }
});

Deno.test("credentials: a cookie, the password, a wrong one, or none", () => {
  const auth = new Auth(
    { password: "pw", operatorPassword: "op" },
    SECRET,
    NODE_ID,
  );
  const cookie = `${auth.cookieName}=${auth.issueToken(NOW, "participant")}`;
  const check = (headers: Record<string, string>) =>
    auth.credential(new Headers(headers), NOW);
  assert.deepEqual(check({}), { kind: "none" });
  assert.deepEqual(check({ cookie: `other=1; ${cookie}; x=y` }), {
    kind: "cookie",
    role: "participant",
  });
  assert.deepEqual(check({ authorization: basic("any:pw") }), {
    kind: "password",
    role: "participant",
  });
  assert.deepEqual(check({ authorization: "Bearer op" }), {
    kind: "password",
    role: "operator",
  });
  assert.deepEqual(check({ authorization: basic("any:nope") }), {
    kind: "wrong",
    why: "wrong password",
  });
  assert.equal(check({ authorization: "Negotiate abc" }).kind, "wrong");
  assert.deepEqual(
    auth.credential(new Headers({ cookie }), NOW + SESSION_SECONDS + 1),
    { kind: "wrong", why: "the sign-in has expired" },
  );
  // Another node's cookie on the same host is not this node's business.
  assert.deepEqual(check({ cookie: `umbrella_session_ffffffffffff=1.2` }), {
    kind: "none",
  });
});

Deno.test("cookies: parsed from hostile headers, set with the attributes that keep them private", () => {
  assert.equal(cookieValue("a=1; b=2", "b"), "2");
  assert.equal(cookieValue("a=1;b", "b"), undefined);
  assert.equal(cookieValue(";;=;==; b==x", "b"), "=x");
  assert.equal(cookieValue(null, "b"), undefined);
  const auth = new Auth({ password: "pw" }, SECRET, NODE_ID);
  const set = auth.sessionCookie(NOW, "/umbrella", "participant", true);
  assert.match(
    set,
    new RegExp(
      `^${auth.cookieName}=\\d+\\.p\\.[\\w-]{43}; Path=/umbrella; Max-Age=${SESSION_SECONDS}; HttpOnly; SameSite=Strict; Secure$`,
    ),
  );
  assert.equal(
    auth.clearedCookie("/", true),
    `${auth.cookieName}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict; Secure`,
  );
  // Browsers drop a Secure cookie sent over plain HTTP.
  assert.doesNotMatch(
    auth.sessionCookie(NOW, "/", "participant", false),
    /Secure/,
  );
});

Deno.test("wrong passwords: a few at once, then one address waits while others do not", () => {
  const auth = new Auth({ password: "pw" }, SECRET, NODE_ID);
  for (let i = 0; i < FAILURES_ALLOWED; i++) {
    assert.equal(auth.retryAfter("192.0.2.1", NOW + i), 0);
    auth.recordFailure("192.0.2.1", NOW + i);
  }
  const wait = auth.retryAfter("192.0.2.1", NOW + FAILURES_ALLOWED);
  assert.equal(wait, FAILURE_WINDOW_SECONDS - FAILURES_ALLOWED);
  assert.equal(auth.retryAfter("192.0.2.2", NOW + FAILURES_ALLOWED), 0);
  // Once the oldest failure leaves the window, one more try is allowed.
  assert.equal(auth.retryAfter("192.0.2.1", NOW + FAILURE_WINDOW_SECONDS), 0);
  // A flood from many addresses forgets the oldest instead of growing.
  for (let i = 0; i < 10_001; i++) auth.recordFailure(`10.0.${i}`, NOW + 1);
  assert.equal(auth.retryAfter("192.0.2.1", NOW + FAILURES_ALLOWED), 0);
});

Deno.test("credentials in a URL become a Basic header, percent-decoded", () => {
  assert.equal(
    authorizationFromUrl(new URL("wss://umbrella:p%40ss%3Aw@host/wsb")),
    basic("umbrella:p@ss:w"),
  );
  assert.equal(
    authorizationFromUrl(new URL("wss://:pw@host/wsb")),
    basic(":pw"),
  );
  assert.equal(authorizationFromUrl(new URL("wss://host/wsb")), undefined);
});

Deno.test("wrong passwords count per IPv4 address and per IPv6 /64", () => {
  assert.equal(failureKey("192.0.2.7"), "192.0.2.7");
  assert.equal(failureKey("::ffff:192.0.2.7"), "192.0.2.7");
  assert.equal(failureKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  assert.equal(
    failureKey("2001:DB8:1:2:bbbb:cccc:dddd:eeee"),
    "2001:db8:1:2::/64",
  );
  assert.equal(failureKey("2001:db8::1"), "2001:db8:0:0::/64");
  assert.equal(failureKey("::1"), "0:0:0:0::/64");
  assert.equal(failureKey("fe80::1:2:3:4"), "fe80:0:0:0::/64");
});
