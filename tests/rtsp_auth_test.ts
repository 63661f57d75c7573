import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  type AuthChallenge,
  authorizationHeader,
  chooseChallenge,
  type DigestChallenge,
  parseWwwAuthenticate,
} from "../media/rtsp/auth.ts";
import { RtspProtocolError } from "../media/rtsp/message.ts";

/** The parameters of an Authorization header, unquoted. */
function fields(header: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (
    const match of header.matchAll(/(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)
  ) {
    out[match[1]] = match[2] !== undefined
      ? match[2].replace(/\\(.)/g, "$1")
      : match[3];
  }
  return out;
}

const md5 = (text: string) => createHash("md5").update(text).digest("hex");

// RFC 2617 §3.5.
const RFC2617_CHALLENGE =
  'Digest realm="testrealm@host.com", qop="auth,auth-int", ' +
  'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"';

Deno.test("RFC 2617 §3.5: the Mufasa example, field by field", () => {
  const challenge = chooseChallenge([RFC2617_CHALLENGE]);
  assert.deepEqual(challenge, {
    scheme: "digest",
    realm: "testrealm@host.com",
    nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
    opaque: "5ccc069c403ebaf9f0171e9517f40e41",
    algorithm: "MD5",
    algorithmGiven: false,
    qop: "auth",
    stale: false,
  });
  const header = authorizationHeader(challenge, {
    username: "Mufasa",
    password: "Circle Of Life",
    method: "GET",
    uri: "/dir/index.html",
    nc: 1,
    cnonce: "0a4f113b",
  });
  assert.equal(
    header,
    'Digest username="Mufasa", realm="testrealm@host.com", ' +
      'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", ' +
      'qop=auth, nc=00000001, cnonce="0a4f113b", ' +
      'response="6629fae49393a05397450978507c4ef1", ' +
      'opaque="5ccc069c403ebaf9f0171e9517f40e41"',
  );
});

// RFC 7616 §3.9.1: the server offers SHA-256 and MD5 in two headers.
const RFC7616 = {
  realm: "http-auth@example.org",
  nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
  opaque: "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
  cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
};
const rfc7616Challenge = (algorithm: string) =>
  `Digest\n realm="${RFC7616.realm}",\n qop="auth, auth-int",\n algorithm=${algorithm},\n ` +
  `nonce="${RFC7616.nonce}",\n opaque="${RFC7616.opaque}"`;
const RFC7616_REQUEST = {
  username: "Mufasa",
  password: "Circle of Life",
  method: "GET",
  uri: "/dir/index.html",
  nc: 1,
  cnonce: RFC7616.cnonce,
};

Deno.test("RFC 7616 §3.9.1: SHA-256 is chosen over MD5 and answers the example", () => {
  const challenge = chooseChallenge([
    rfc7616Challenge("SHA-256"),
    rfc7616Challenge("MD5"),
  ]);
  assert.equal(challenge.scheme, "digest");
  assert.equal((challenge as DigestChallenge).algorithm, "SHA-256");
  const got = fields(authorizationHeader(challenge, RFC7616_REQUEST));
  assert.deepEqual(got, {
    username: "Mufasa",
    realm: RFC7616.realm,
    nonce: RFC7616.nonce,
    uri: "/dir/index.html",
    algorithm: "SHA-256",
    qop: "auth",
    nc: "00000001",
    cnonce: RFC7616.cnonce,
    response:
      "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
    opaque: RFC7616.opaque,
  });
  // Offered the other way round, SHA-256 still wins.
  const reversed = chooseChallenge([
    rfc7616Challenge("MD5"),
    rfc7616Challenge("SHA-256"),
  ]);
  assert.equal((reversed as DigestChallenge).algorithm, "SHA-256");
});

Deno.test("RFC 7616 §3.9.1: the MD5 answer", () => {
  const challenge = chooseChallenge([rfc7616Challenge("MD5")]);
  const got = fields(authorizationHeader(challenge, RFC7616_REQUEST));
  assert.equal(got.response, "8ca523f5e9506fed4657c9700eebdbec");
  assert.equal(got.algorithm, "MD5");
});

Deno.test("Digest without qop (RFC 2069 style, common on older cameras)", () => {
  const challenge = chooseChallenge([
    'Digest realm="IP Camera(21388)", nonce="4e5441794f44673d"',
  ]);
  assert.equal((challenge as DigestChallenge).qop, undefined);
  const header = authorizationHeader(challenge, {
    username: "admin",
    password: "12345",
    method: "DESCRIBE",
    uri: "rtsp://192.168.1.64:554/Streaming/Channels/101",
  });
  const ha1 = md5("admin:IP Camera(21388):12345");
  const ha2 = md5("DESCRIBE:rtsp://192.168.1.64:554/Streaming/Channels/101");
  assert.equal(
    header,
    'Digest username="admin", realm="IP Camera(21388)", nonce="4e5441794f44673d", ' +
      'uri="rtsp://192.168.1.64:554/Streaming/Channels/101", ' +
      `response="${md5(`${ha1}:4e5441794f44673d:${ha2}`)}"`,
  );
});

Deno.test("MD5-sess folds the nonces into HA1 and sends cnonce", () => {
  const challenge = chooseChallenge([
    'Digest realm="r", nonce="N", algorithm=MD5-sess, qop=auth',
  ]);
  const got = fields(authorizationHeader(challenge, {
    username: "u",
    password: "p",
    method: "PLAY",
    uri: "rtsp://cam/",
    nc: 2,
    cnonce: "C",
  }));
  const ha1 = md5(`${md5("u:r:p")}:N:C`);
  assert.equal(
    got.response,
    md5(`${ha1}:N:00000002:C:auth:${md5("PLAY:rtsp://cam/")}`),
  );
  assert.equal(got.algorithm, "MD5-sess");
  assert.equal(got.nc, "00000002");
});

Deno.test("SHA-256-sess and auth-int with the empty RTSP body", () => {
  const challenge = chooseChallenge([
    'Digest realm="r", nonce="N", algorithm=sha-256-SESS, qop="auth-int"',
  ]);
  assert.equal((challenge as DigestChallenge).algorithm, "SHA-256-sess");
  assert.equal((challenge as DigestChallenge).qop, "auth-int");
  const sha = (text: string) => createHash("sha256").update(text).digest("hex");
  const got = fields(authorizationHeader(challenge, {
    username: "u",
    password: "p",
    method: "SETUP",
    uri: "rtsp://cam/track1",
    nc: 0x1f,
    cnonce: "C",
  }));
  const ha1 = sha(`${sha("u:r:p")}:N:C`);
  const ha2 = sha(`SETUP:rtsp://cam/track1:${sha("")}`);
  assert.equal(got.response, sha(`${ha1}:N:0000001f:C:auth-int:${ha2}`));
  assert.equal(got.qop, "auth-int");
});

Deno.test("a missing cnonce is generated at random", () => {
  const challenge = chooseChallenge(['Digest realm="r", nonce="N", qop=auth']);
  const request = { username: "u", password: "p", method: "OPTIONS", uri: "*" };
  const first = fields(authorizationHeader(challenge, request)).cnonce;
  const second = fields(authorizationHeader(challenge, request)).cnonce;
  assert.match(first, /^[0-9a-f]{32}$/);
  assert.notEqual(first, second);
});

Deno.test("Basic: RFC 7617 example and UTF-8 credentials", () => {
  const challenge = chooseChallenge(['Basic realm="WallyWorld"']);
  assert.deepEqual(challenge, { scheme: "basic", realm: "WallyWorld" });
  const request = { method: "DESCRIBE", uri: "rtsp://cam/" };
  assert.equal(
    authorizationHeader(challenge, {
      ...request,
      username: "Aladdin",
      password: "open sesame",
    }),
    "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
  );
  // RFC 7617 §2.1: test / 123£ in UTF-8.
  assert.equal(
    authorizationHeader(challenge, {
      ...request,
      username: "test",
      password: "123\u00a3",
    }),
    "Basic dGVzdDoxMjPCow==",
  );
  assert.throws(
    () =>
      authorizationHeader(challenge, {
        ...request,
        username: "a:b",
        password: "x",
      }),
    RtspProtocolError,
  );
});

Deno.test("Digest is preferred over Basic whatever the order and header layout", () => {
  const digest = 'Digest realm="IP Camera", nonce="abc"';
  const basic = 'Basic realm="IP Camera"';
  for (
    const values of [
      [basic, digest],
      [digest, basic],
      [`${basic}, ${digest}`],
      [`${digest}, ${basic}`],
      [`${basic},${digest.replace(", ", ",")}`],
    ]
  ) {
    assert.equal(chooseChallenge(values).scheme, "digest", values.join(" | "));
  }
  assert.equal(chooseChallenge([basic]).scheme, "basic");
});

Deno.test("several comma-joined challenges are all parsed, in order", () => {
  const challenges = parseWwwAuthenticate([
    'Basic realm="a", Digest realm="b", nonce="n1", algorithm=SHA-256, Digest realm="c", nonce="n2"',
    'Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag==, Bearer realm="x", error="invalid_token"',
  ]);
  assert.deepEqual(
    challenges.map((challenge) => [challenge.scheme, challenge.realm]),
    [
      ["basic", "a"],
      ["digest", "b"],
      ["digest", "c"],
    ],
  );
});

Deno.test("quoting, escapes, whitespace and case quirks of real cameras", () => {
  const [challenge] = parseWwwAuthenticate([
    'DIGEST  Realm = "Login to \\"cam\\", door" , NONCE="a,b=c" ,Algorithm="md5", QOP=auth, stale=TRUE, opaque=xyz',
  ]) as DigestChallenge[];
  assert.deepEqual(challenge, {
    scheme: "digest",
    realm: 'Login to "cam", door',
    nonce: "a,b=c",
    opaque: "xyz",
    algorithm: "MD5",
    algorithmGiven: true,
    qop: "auth",
    stale: true,
  });
  // The realm is echoed back quoted and escaped.
  const got = fields(authorizationHeader(challenge, {
    username: 'we"ird\\',
    password: "p",
    method: "OPTIONS",
    uri: "*",
    cnonce: "c",
  }));
  assert.equal(got.realm, 'Login to "cam", door');
  assert.equal(got.username, 'we"ird\\');
  assert.equal(
    got.response,
    md5(
      `${md5('we"ird\\:Login to "cam", door:p')}:a,b=c:00000001:c:auth:${
        md5("OPTIONS:*")
      }`,
    ),
  );
});

Deno.test("challenges that cannot be answered are skipped, with reasons when none is left", () => {
  assert.deepEqual(
    parseWwwAuthenticate([
      'Digest realm="r"',
      'Digest realm="r", nonce="n", algorithm=SHA-512-256',
      'Digest realm="r", nonce="n", qop="auth-conf"',
      "NTLM",
    ]),
    [],
  );
  assert.throws(
    () =>
      chooseChallenge([
        'Digest realm="r", nonce="n", algorithm=SHA-512-256',
        "NTLM",
      ]),
    (error: unknown) => {
      assert.ok(error instanceof RtspProtocolError);
      assert.match(
        error.message,
        /SHA-512-256 is not supported; the ntlm scheme is not supported/,
      );
      return true;
    },
  );
  assert.throws(
    () => chooseChallenge([]),
    /sent no WWW-Authenticate challenge/,
  );
  assert.throws(
    () => chooseChallenge(["", " , ,"]),
    /sent no WWW-Authenticate challenge/,
  );
  // A usable one among unusable ones is still found.
  assert.equal(
    chooseChallenge(['Digest realm="r"', 'Basic realm="r"']).scheme,
    "basic",
  );
});

Deno.test("hostile and truncated headers give RtspProtocolError or nothing, never a crash", () => {
  assert.throws(
    () => parseWwwAuthenticate(['Digest realm="unterminated, nonce=x']),
    /unterminated quoted string/,
  );
  assert.throws(
    () => chooseChallenge(['Digest realm="r", nonce="abc']),
    RtspProtocolError,
  );
  assert.deepEqual(parseWwwAuthenticate(['realm="no scheme", nonce="x"']), []);
  assert.deepEqual(
    parseWwwAuthenticate(["=====", '"""', "Digest ====", "@@@ ;;;"]),
    [],
  );
  // A trailing backslash inside a quote is not an escape of the end.
  assert.throws(
    () => parseWwwAuthenticate(['Basic realm="x\\']),
    /unterminated/,
  );
  const huge = `Digest realm="${"r".repeat(100_000)}", nonce="n"`;
  assert.equal(parseWwwAuthenticate([huge])[0].realm.length, 100_000);
  // Random printable noise only ever yields RtspProtocolError.
  let state = 99;
  for (let round = 0; round < 300; round++) {
    let text = "";
    for (let i = 0; i < 60; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      text += ' ,="\\=aDigestBasic'[state % 18];
    }
    try {
      parseWwwAuthenticate([text]);
    } catch (error) {
      assert.ok(error instanceof RtspProtocolError, String(error));
    }
  }
});

Deno.test("an invalid nonce count is refused", () => {
  const challenge: AuthChallenge = chooseChallenge([
    'Digest realm="r", nonce="n", qop=auth',
  ]);
  const request = { username: "u", password: "p", method: "PLAY", uri: "*" };
  for (const nc of [0, -1, 1.5, 2 ** 32]) {
    assert.throws(
      () => authorizationHeader(challenge, { ...request, nc }),
      /nonce count/,
    );
  }
  assert.equal(
    fields(authorizationHeader(challenge, { ...request, nc: 0xffffffff })).nc,
    "ffffffff",
  );
});
