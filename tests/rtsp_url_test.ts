import assert from "node:assert/strict";
import { RtspProtocolError } from "../media/rtsp/message.ts";
import {
  parseRtspUrl,
  redactRtspUrl,
  RtspUrlError,
} from "../media/rtsp/url.ts";

Deno.test("a Hikvision URL with credentials and no port", () => {
  assert.deepEqual(
    parseRtspUrl("rtsp://admin:12345@192.168.1.64/Streaming/Channels/101"),
    {
      url: "rtsp://192.168.1.64/Streaming/Channels/101",
      scheme: "rtsp",
      host: "192.168.1.64",
      port: 554,
      path: "/Streaming/Channels/101",
      username: "admin",
      password: "12345",
    },
  );
});

Deno.test("the query stays in the path and url, the fragment is dropped", () => {
  const parsed = parseRtspUrl(
    "rtsp://cam.local:8554/cam/realmonitor?channel=1&subtype=0#frag",
  );
  assert.equal(
    parsed.url,
    "rtsp://cam.local:8554/cam/realmonitor?channel=1&subtype=0",
  );
  assert.equal(parsed.path, "/cam/realmonitor?channel=1&subtype=0");
  assert.equal(parsed.port, 8554);
  assert.equal(parsed.username, undefined);
  assert.equal(parsed.password, undefined);
});

Deno.test("percent-encoded @ : % in the password are decoded", () => {
  const parsed = parseRtspUrl("rtsp://admin:p%40ss%3Aw%25rd@10.0.0.2/live");
  assert.equal(parsed.password, "p@ss:w%rd");
  assert.equal(parsed.username, "admin");
  assert.equal(parsed.url, "rtsp://10.0.0.2/live");
});

Deno.test("an unencoded @ in the password: the last @ ends the credentials", () => {
  const parsed = parseRtspUrl("rtsp://admin:p@ss@10.0.0.2:554/live");
  assert.equal(parsed.password, "p@ss");
  assert.equal(parsed.host, "10.0.0.2");
});

Deno.test("an unencoded ':' in the password stays in the password", () => {
  assert.equal(parseRtspUrl("rtsp://u:a:b@h/").password, "a:b");
});

Deno.test("user name only, empty password, UTF-8 credentials", () => {
  const userOnly = parseRtspUrl("rtsp://viewer@cam/");
  assert.equal(userOnly.username, "viewer");
  assert.equal(userOnly.password, undefined);
  assert.equal(parseRtspUrl("rtsp://viewer:@cam/").password, "");
  assert.equal(
    parseRtspUrl("rtsp://j%C3%BCrgen:%E2%82%AC@cam/").username,
    "jürgen",
  );
  assert.equal(parseRtspUrl("rtsp://j%C3%BCrgen:%E2%82%AC@cam/").password, "€");
});

Deno.test("rtsps defaults to port 322; scheme is case-insensitive", () => {
  const parsed = parseRtspUrl("RTSPS://cam.example/stream");
  assert.equal(parsed.scheme, "rtsps");
  assert.equal(parsed.port, 322);
  assert.equal(parsed.url, "rtsps://cam.example/stream");
});

Deno.test("IPv6 hosts lose their brackets in host but keep them in url", () => {
  const parsed = parseRtspUrl("rtsp://[fe80::1]:8554/x");
  assert.equal(parsed.host, "fe80::1");
  assert.equal(parsed.port, 8554);
  assert.equal(parsed.url, "rtsp://[fe80::1]:8554/x");
  assert.equal(parseRtspUrl("rtsp://[::1]").port, 554);
});

Deno.test("no path gives '/', an empty port gives the default, spaces around are trimmed", () => {
  const parsed = parseRtspUrl("  rtsp://cam:  ");
  assert.equal(parsed.path, "/");
  assert.equal(parsed.port, 554);
  assert.equal(parsed.url, "rtsp://cam");
});

Deno.test("non-rtsp schemes are refused with a clear error", () => {
  for (const input of ["http://cam/", "rtmp://cam/live", "rtspu://cam/"]) {
    assert.throws(() => parseRtspUrl(input), (error: unknown) => {
      assert.ok(error instanceof RtspUrlError);
      assert.ok(error instanceof RtspProtocolError);
      assert.match(error.message, /rtsp:\/\//);
      return true;
    });
  }
  assert.throws(
    () => parseRtspUrl("192.168.1.64/live"),
    /must start with rtsp:\/\//,
  );
  assert.throws(() => parseRtspUrl(""), RtspUrlError);
});

Deno.test("a missing host is refused", () => {
  for (
    const input of [
      "rtsp://",
      "rtsp:///live",
      "rtsp://admin:pw@/live",
      "rtsp://:554/",
    ]
  ) {
    assert.throws(() => parseRtspUrl(input), /has no host/, input);
  }
});

Deno.test("bad ports are refused", () => {
  for (
    const input of [
      "rtsp://cam:0/",
      "rtsp://cam:65536/",
      "rtsp://cam:abc/",
      "rtsp://cam:554:1/",
      "rtsp://cam:-1/",
    ]
  ) {
    assert.throws(() => parseRtspUrl(input), (error: unknown) => {
      assert.ok(error instanceof RtspUrlError, input);
      assert.match(error.message, /invalid port/);
      return true;
    });
  }
});

Deno.test("unencoded / ? # in a password give a hint instead of a misparse", () => {
  // Authority ends at the first '/', so "pa" is read as a port.
  assert.throws(() => parseRtspUrl("rtsp://admin:pa/ss@cam/live"), /%2F/);
  assert.throws(
    () => parseRtspUrl("rtsp://admin:pa#ss@cam/live"),
    /invalid port.*%23/,
  );
  // Here the authority is valid ("admin:1234") but an '@' lands in the path.
  assert.throws(
    () => parseRtspUrl("rtsp://admin:1234/5@cam/live"),
    /path contains '@'/,
  );
});

Deno.test("a stray % in credentials is refused with the fix", () => {
  assert.throws(
    () => parseRtspUrl("rtsp://admin:50%off@cam/"),
    /password .* '%' .* %25/,
  );
  assert.throws(() => parseRtspUrl("rtsp://%zz:pw@cam/"), /user name/);
  assert.throws(
    () => parseRtspUrl("rtsp://admin%0D%0AX-Evil:%201:pw@cam/"),
    /user name .* control character/,
  );
  assert.equal(parseRtspUrl("rtsp://admin:a%09b@cam/").password, "a\tb");
});

Deno.test("hosts with spaces or odd characters and paths with whitespace are refused", () => {
  assert.throws(() => parseRtspUrl("rtsp://ca m/"), /invalid host/);
  assert.throws(() => parseRtspUrl("rtsp://[zz::1]/"), /invalid host/);
  assert.throws(() => parseRtspUrl("rtsp://[1.2.3.4]/"), /invalid host/);
  assert.throws(() => parseRtspUrl("rtsp://cam/my stream"), /%20/);
  assert.throws(
    () => parseRtspUrl("rtsp://cam/a\r\nInjected: 1"),
    RtspUrlError,
  );
});

Deno.test("redaction hides the password and keeps everything else", () => {
  assert.equal(
    redactRtspUrl(
      "rtsp://admin:secret@192.168.1.64:554/Streaming/Channels/101",
    ),
    "rtsp://admin:***@192.168.1.64:554/Streaming/Channels/101",
  );
  assert.equal(
    redactRtspUrl("rtsp://admin:p@ss@cam/"),
    "rtsp://admin:***@cam/",
  );
  assert.equal(redactRtspUrl("rtsp://cam:554/live"), "rtsp://cam:554/live");
  assert.equal(
    redactRtspUrl("rtsp://viewer@cam:554/x"),
    "rtsp://viewer@cam:554/x",
  );
});

Deno.test("redaction works on URLs that do not parse, erring towards hiding", () => {
  for (
    const input of [
      "rtsp://admin:pa/ss@cam/live",
      "rtsp://admin:pa#ss@cam",
      "http://admin:secret@cam/",
      "admin:secret@cam",
      "rtsp://admin:se\ncret@cam",
    ]
  ) {
    const redacted = redactRtspUrl(input);
    assert.ok(!/secret|pa\/ss|pa#ss/.test(redacted), `${input} -> ${redacted}`);
    assert.match(redacted, /admin:\*\*\*@cam/);
  }
});
