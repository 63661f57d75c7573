import assert from "node:assert/strict";
import {
  type InterleavedFrame,
  MAX_BODY_BYTES,
  MAX_HEADER_BYTES,
  parsePublicHeader,
  parseRtpInfo,
  parseSessionHeader,
  parseTransportHeader,
  RtspProtocolError,
  type RtspRequest,
  type RtspResponse,
  type RtspStreamItem,
  RtspStreamParser,
  serializeRequest,
} from "../media/rtsp/message.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string) => encoder.encode(text);

function frame(channel: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  out.set([0x24, channel, payload.length >> 8, payload.length & 0xff]);
  out.set(payload, 4);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function drain(parser: RtspStreamParser): RtspStreamItem[] {
  const items: RtspStreamItem[] = [];
  for (let item = parser.next(); item; item = parser.next()) items.push(item);
  return items;
}

function parseAll(...chunks: Uint8Array[]): RtspStreamItem[] {
  const parser = new RtspStreamParser();
  const items: RtspStreamItem[] = [];
  for (const chunk of chunks) {
    parser.push(chunk);
    items.push(...drain(parser));
  }
  return items;
}

/** Comparable plain data for an item (headers as name -> all values). */
function plain(item: RtspStreamItem, headerNames: string[] = []): unknown {
  if (item.kind === "frame") {
    return { kind: "frame", channel: item.channel, payload: [...item.payload] };
  }
  const { headers, body, ...rest } = item;
  return {
    ...rest,
    headers: Object.fromEntries(
      headerNames.map((name) => [name, headers.getAll(name)]),
    ),
    body: decoder.decode(body),
  };
}

// A deterministic PRNG so the chunking tests are reproducible.
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

function expectProtocolError(run: () => unknown, pattern: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof RtspProtocolError, String(error));
    assert.match(error.message, pattern);
    return true;
  });
}

// --- serialisation ---------------------------------------------------------

Deno.test("serializeRequest writes the request line, CSeq, headers and blank line", () => {
  const request = serializeRequest({
    method: "SETUP",
    url: "rtsp://127.0.0.1:8554/cam/stream=0",
    cseq: 3,
    headers: {
      Transport: "RTP/AVP/TCP;unicast;interleaved=0-1",
      "User-Agent": "Umbrella",
    },
  });
  assert.equal(
    decoder.decode(request),
    "SETUP rtsp://127.0.0.1:8554/cam/stream=0 RTSP/1.0\r\n" +
      "CSeq: 3\r\n" +
      "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n" +
      "User-Agent: Umbrella\r\n\r\n",
  );
  assert.equal(
    decoder.decode(serializeRequest({ method: "OPTIONS", url: "*", cseq: 0 })),
    "OPTIONS * RTSP/1.0\r\nCSeq: 0\r\n\r\n",
  );
});

Deno.test("serializeRequest refuses anything that would break the framing", () => {
  const base = { method: "DESCRIBE", url: "rtsp://cam/x", cseq: 1 };
  // A session id or nonce echoed from a hostile camera must not inject headers.
  expectProtocolError(
    () =>
      serializeRequest({ ...base, headers: { Session: "abc\r\nX-Evil: 1" } }),
    /control character/,
  );
  expectProtocolError(
    () => serializeRequest({ ...base, headers: { Authorization: "a\nb" } }),
    /control character/,
  );
  expectProtocolError(
    () => serializeRequest({ ...base, headers: { "Bad Name": "x" } }),
    /header name/,
  );
  expectProtocolError(
    () => serializeRequest({ ...base, headers: { cseq: "9" } }),
    /header name/,
  );
  expectProtocolError(
    () => serializeRequest({ ...base, url: "rtsp://cam/a b" }),
    /request URL/,
  );
  expectProtocolError(
    () => serializeRequest({ ...base, url: "" }),
    /request URL/,
  );
  expectProtocolError(
    () => serializeRequest({ ...base, method: "GET /" }),
    /method/,
  );
  expectProtocolError(() => serializeRequest({ ...base, cseq: -1 }), /CSeq/);
  expectProtocolError(() => serializeRequest({ ...base, cseq: 1.5 }), /CSeq/);
  // A tab is legal inside a header value.
  assert.match(
    decoder.decode(serializeRequest({ ...base, headers: { Accept: "a\tb" } })),
    /Accept: a\tb\r\n/,
  );
});

// --- responses -------------------------------------------------------------

const DESCRIBE_REPLY = "RTSP/1.0 200 OK\r\n" +
  "CSeq: 2\r\n" +
  "Content-Type: application/sdp\r\n" +
  "Content-Base: rtsp://127.0.0.1:8554/cam/\r\n" +
  "Server: GStreamer RTSP server\r\n" +
  "Content-Length: 10\r\n" +
  "\r\n" +
  "v=0\r\ns=x\r\n";

Deno.test("a response with a Content-Length body", () => {
  const [item] = parseAll(bytes(DESCRIBE_REPLY));
  assert.equal(item.kind, "response");
  const response = item as RtspResponse;
  assert.equal(response.statusCode, 200);
  assert.equal(response.reason, "OK");
  assert.equal(response.headers.get("cseq"), "2");
  assert.equal(
    response.headers.get("Content-Base"),
    "rtsp://127.0.0.1:8554/cam/",
  );
  assert.equal(response.headers.get("CONTENT-TYPE"), "application/sdp");
  assert.equal(response.headers.has("session"), false);
  assert.equal(decoder.decode(response.body), "v=0\r\ns=x\r\n");
});

Deno.test("the same stream gives the same items however it is chunked", () => {
  const stream = concat(
    bytes(DESCRIBE_REPLY),
    frame(0, Uint8Array.from({ length: 1400 }, (_, i) => i & 0xff)),
    frame(1, bytes("rtcp")),
    bytes(
      'RTSP/1.0 401 Unauthorized\r\nCSeq: 3\r\nWWW-Authenticate: Basic realm="cam"\r\n\r\n',
    ),
    frame(2, new Uint8Array(0)),
    bytes(
      "GET_PARAMETER rtsp://cam/ RTSP/1.0\r\nCSeq: 7\r\nContent-Length: 3\r\n\r\nabc",
    ),
    frame(3, Uint8Array.from({ length: 300 }, (_, i) => 255 - (i & 0xff))),
  );
  const names = ["cseq", "www-authenticate", "content-length"];
  const expected = parseAll(stream).map((item) => plain(item, names));
  assert.equal(expected.length, 7);
  // Every split point, one byte at a time, and random chunk sizes.
  assert.deepEqual(
    parseAll(...Array.from(stream, (byte) => Uint8Array.of(byte))).map((item) =>
      plain(item, names)
    ),
    expected,
  );
  const next = random(42);
  for (let round = 0; round < 50; round++) {
    const chunks: Uint8Array[] = [];
    for (let offset = 0; offset < stream.length;) {
      const size = 1 + Math.floor(next() * 200);
      chunks.push(stream.slice(offset, offset + size));
      offset += size;
    }
    assert.deepEqual(
      parseAll(...chunks).map((item) => plain(item, names)),
      expected,
    );
  }
});

Deno.test("repeated headers keep every value; get returns the first", () => {
  const [item] = parseAll(bytes(
    "RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\n" +
      'WWW-Authenticate: Digest realm="IP Camera", nonce="abc", stale="FALSE"\r\n' +
      'WWW-Authenticate: Basic realm="IP Camera"\r\n\r\n',
  ));
  const response = item as RtspResponse;
  assert.equal(response.statusCode, 401);
  assert.equal(response.reason, "Unauthorized");
  assert.deepEqual(response.headers.getAll("WWW-Authenticate"), [
    'Digest realm="IP Camera", nonce="abc", stale="FALSE"',
    'Basic realm="IP Camera"',
  ]);
  assert.equal(
    response.headers.get("www-authenticate"),
    'Digest realm="IP Camera", nonce="abc", stale="FALSE"',
  );
  assert.deepEqual(response.headers.getAll("x-missing"), []);
  assert.equal(response.body.length, 0);
});

Deno.test("bare LF line endings, folded headers, empty reason and stray CRLFs are tolerated", () => {
  const items = parseAll(bytes(
    "\r\n\r\nRTSP/1.0 200\nCSeq: 4\nPublic: OPTIONS,\n  DESCRIBE,\n\tPLAY\nX-Empty:\n\n\r\n" +
      "RTSP/1.0 454 Session Not Found\r\nCSeq: 5\r\n\r\n",
  ));
  assert.equal(items.length, 2);
  const first = items[0] as RtspResponse;
  assert.equal(first.statusCode, 200);
  assert.equal(first.reason, "");
  assert.equal(first.headers.get("public"), "OPTIONS, DESCRIBE, PLAY");
  assert.equal(first.headers.get("x-empty"), "");
  const second = items[1] as RtspResponse;
  assert.equal(second.statusCode, 454);
  assert.equal(second.reason, "Session Not Found");
});

Deno.test("requests from the camera are parsed so they can be answered or ignored", () => {
  const sdp = "v=0\r\n";
  const items = parseAll(bytes(
    `ANNOUNCE rtsp://10.0.0.2/live RTSP/1.0\r\nCSeq: 10\r\nContent-Type: application/sdp\r\nContent-Length: ${sdp.length}\r\n\r\n${sdp}` +
      "OPTIONS * RTSP/1.0\r\nCSeq: 11\r\n\r\n",
  ));
  assert.deepEqual(items.map((item) => plain(item, ["cseq"])), [
    {
      kind: "request",
      method: "ANNOUNCE",
      uri: "rtsp://10.0.0.2/live",
      headers: { cseq: ["10"] },
      body: sdp,
    },
    {
      kind: "request",
      method: "OPTIONS",
      uri: "*",
      headers: { cseq: ["11"] },
      body: "",
    },
  ]);
  assert.equal((items[1] as RtspRequest).headers.get("cseq"), "11");
});

// --- interleaved frames ----------------------------------------------------

Deno.test("frames whole in one chunk are zero-copy subarrays of it", () => {
  const chunk = concat(frame(0, bytes("first")), frame(1, bytes("second!")));
  const items = parseAll(chunk) as InterleavedFrame[];
  assert.deepEqual(
    items.map((
      item,
    ) => [item.kind, item.channel, decoder.decode(item.payload)]),
    [
      ["frame", 0, "first"],
      ["frame", 1, "second!"],
    ],
  );
  for (const item of items) assert.equal(item.payload.buffer, chunk.buffer);
  assert.equal(items[1].payload.byteOffset, 9 + 4);
});

Deno.test("a frame split across chunks waits for the rest, then is copied out whole", () => {
  const payload = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff);
  const whole = frame(4, payload);
  const parser = new RtspStreamParser();
  parser.push(whole.slice(0, 2));
  assert.equal(parser.next(), null);
  parser.push(whole.slice(2, 500));
  assert.equal(parser.next(), null);
  parser.push(whole.slice(500));
  const item = parser.next() as InterleavedFrame;
  assert.equal(item.channel, 4);
  assert.deepEqual(item.payload, payload);
  assert.equal(parser.next(), null);
});

Deno.test("the largest frame the format allows (65535 bytes) and an empty one", () => {
  const payload = new Uint8Array(65535).fill(0xab);
  const items = parseAll(
    concat(frame(255, payload), frame(0, new Uint8Array(0))),
  ) as InterleavedFrame[];
  assert.equal(items.length, 2);
  assert.equal(items[0].channel, 255);
  assert.equal(items[0].payload.length, 65535);
  assert.ok(items[0].payload.every((byte) => byte === 0xab));
  assert.equal(items[1].payload.length, 0);
});

Deno.test("media interleaved right after a response header, inside one chunk", () => {
  const rtp = Uint8Array.of(
    0x80,
    0x60,
    0x00,
    0x01,
    0,
    0,
    0,
    0,
    0x12,
    0x34,
    0x56,
    0x78,
    0x65,
  );
  const items = parseAll(concat(
    bytes(
      "RTSP/1.0 200 OK\r\nCSeq: 5\r\nSession: 0gesVqSDS8TK+1QO\r\nRTP-Info: url=rtsp://c/s=0;seq=1;rtptime=0\r\n\r\n",
    ),
    frame(0, rtp),
    frame(0, rtp),
  ));
  assert.deepEqual(items.map((item) => item.kind), [
    "response",
    "frame",
    "frame",
  ]);
  assert.deepEqual((items[2] as InterleavedFrame).payload, rtp);
});

// --- truncated input -------------------------------------------------------

Deno.test("truncated input yields null, never an error, at every cut point", () => {
  const stream = bytes(DESCRIBE_REPLY);
  for (let cut = 0; cut < stream.length; cut++) {
    const parser = new RtspStreamParser();
    parser.push(stream.subarray(0, cut));
    assert.equal(parser.next(), null, `cut at ${cut}`);
    parser.push(stream.subarray(cut));
    assert.equal(parser.next()?.kind, "response", `cut at ${cut}`);
    assert.equal(parser.next(), null);
  }
});

// --- hostile and broken input ----------------------------------------------

Deno.test("binary garbage where a message or '$' should be fails at once", () => {
  // Raw RTP without '$' framing: the stream has lost sync.
  expectProtocolError(
    () => parseAll(Uint8Array.of(0x80, 0x60, 0x12)),
    /byte 0x80/,
  );
  expectProtocolError(() => parseAll(Uint8Array.of(0x00)), /byte 0x00/);
  expectProtocolError(() => parseAll(bytes('{"json": true}')), /byte 0x7b/);
});

Deno.test("a text line that is not a status or request line fails at its end", () => {
  expectProtocolError(
    () => parseAll(bytes("HTTP/1.1 200 OK\r\n")),
    /not an RTSP status or request line: "HTTP\/1.1 200 OK"/,
  );
  expectProtocolError(
    () => parseAll(bytes("hello world\n")),
    /not an RTSP status/,
  );
  expectProtocolError(
    () => parseAll(bytes("RTSP/1.0 2000 OK\r\n")),
    /not an RTSP status/,
  );
  expectProtocolError(
    () => parseAll(bytes("PLAY rtsp://x RTSP/1.0 extra\r\n")),
    /not an RTSP status/,
  );
});

Deno.test("control bytes and malformed lines inside a header block fail", () => {
  expectProtocolError(
    () => parseAll(bytes("RTSP/1.0 200 OK\r\nCSeq: 1\x00\r\n\r\n")),
    /control byte 0x0/,
  );
  expectProtocolError(
    () => parseAll(bytes("RTSP/1.0 200 OK\r\nno colon here\r\n\r\n")),
    /malformed RTSP header line/,
  );
  expectProtocolError(
    () => parseAll(bytes("RTSP/1.0 200 OK\r\n: empty name\r\n\r\n")),
    /malformed RTSP header line/,
  );
  expectProtocolError(
    () => parseAll(bytes("RTSP/1.0 200 OK\r\n folded first\r\n\r\n")),
    /continuation/,
  );
});

Deno.test("a header block over 16 KiB fails, even when it never ends", () => {
  const parser = new RtspStreamParser();
  parser.push(bytes("RTSP/1.0 200 OK\r\n"));
  const line = bytes(`X-Padding: ${"a".repeat(1000)}\r\n`);
  let error: unknown;
  for (let i = 0; i < 20 && error === undefined; i++) {
    parser.push(line);
    try {
      assert.equal(parser.next(), null);
    } catch (caught) {
      error = caught;
    }
  }
  assert.ok(error instanceof RtspProtocolError);
  assert.match(error.message, /exceeds 16384 bytes/);
  // Exactly at the limit is still fine.
  const head = "RTSP/1.0 200 OK\r\nX: ";
  const exact = head + "b".repeat(MAX_HEADER_BYTES - head.length - 4) +
    "\r\n\r\n";
  assert.equal(bytes(exact).length, MAX_HEADER_BYTES);
  assert.equal(parseAll(bytes(exact)).length, 1);
  expectProtocolError(
    () => parseAll(bytes(exact.replace("X: ", "X: b"))),
    /exceeds/,
  );
});

Deno.test("Content-Length over 1 MiB, malformed or conflicting fails", () => {
  const reply = (lengths: string[]) =>
    bytes(
      `RTSP/1.0 200 OK\r\n${
        lengths.map((value) => `Content-Length: ${value}\r\n`).join("")
      }\r\n`,
    );
  expectProtocolError(
    () => parseAll(reply([String(MAX_BODY_BYTES + 1)])),
    /exceeds the 1048576 byte limit/,
  );
  expectProtocolError(
    () => parseAll(reply(["99999999999999999999999"])),
    /exceeds/,
  );
  expectProtocolError(() => parseAll(reply(["-1"])), /invalid Content-Length/);
  expectProtocolError(
    () => parseAll(reply(["12abc"])),
    /invalid Content-Length/,
  );
  expectProtocolError(
    () => parseAll(reply(["10", "20"])),
    /invalid Content-Length "10, 20"/,
  );
  // Identical duplicates are harmless.
  const parser = new RtspStreamParser();
  parser.push(reply(["3", "3"]));
  assert.equal(parser.next(), null);
  parser.push(bytes("xyz"));
  assert.equal(decoder.decode((parser.next() as RtspResponse).body), "xyz");
  // A body of exactly 1 MiB is accepted.
  const big = new RtspStreamParser();
  big.push(reply([String(MAX_BODY_BYTES)]));
  big.push(new Uint8Array(MAX_BODY_BYTES));
  assert.equal((big.next() as RtspResponse).body.length, MAX_BODY_BYTES);
});

Deno.test("after a protocol error every call throws the same error", () => {
  const parser = new RtspStreamParser();
  parser.push(concat(frame(0, bytes("ok")), Uint8Array.of(0xff)));
  assert.equal(parser.next()?.kind, "frame");
  let first: unknown;
  try {
    parser.next();
  } catch (error) {
    first = error;
  }
  assert.ok(first instanceof RtspProtocolError);
  assert.throws(() => parser.next(), (error: unknown) => error === first);
  assert.throws(
    () => parser.push(bytes("RTSP/1.0 200 OK\r\n\r\n")),
    (error: unknown) => error === first,
  );
});

Deno.test("random garbage only ever produces RtspProtocolError", () => {
  const next = random(7);
  for (let round = 0; round < 300; round++) {
    const parser = new RtspStreamParser();
    const prefix = bytes(["RTSP/1.0 200 OK\r\n", "$", "PLAY ", ""][round % 4]);
    const noise = Uint8Array.from(
      { length: 1 + Math.floor(next() * 400) },
      () => Math.floor(next() * 256),
    );
    try {
      parser.push(concat(prefix, noise));
      drain(parser);
    } catch (error) {
      assert.ok(error instanceof RtspProtocolError, String(error));
    }
  }
});

// --- header helpers --------------------------------------------------------

Deno.test("parseSessionHeader: id, timeout, default, clamping", () => {
  assert.deepEqual(parseSessionHeader("12345678;timeout=60"), {
    id: "12345678",
    timeoutSec: 60,
  });
  assert.deepEqual(parseSessionHeader("0gesVqSDS8TK+1QO"), {
    id: "0gesVqSDS8TK+1QO",
    timeoutSec: 60,
  });
  assert.deepEqual(parseSessionHeader(" 6E2A7B1C ; Timeout = 30 "), {
    id: "6E2A7B1C",
    timeoutSec: 30,
  });
  // Nonsense timeouts fall back to the RFC default rather than a 0 s timer.
  assert.equal(parseSessionHeader("abc;timeout=0").timeoutSec, 60);
  assert.equal(parseSessionHeader("abc;timeout=-5").timeoutSec, 60);
  assert.equal(parseSessionHeader("abc;timeout=soon").timeoutSec, 60);
  assert.equal(parseSessionHeader("abc;timeout=99999999999").timeoutSec, 3600);
  expectProtocolError(() => parseSessionHeader(""), /invalid Session/);
  expectProtocolError(
    () => parseSessionHeader(";timeout=60"),
    /invalid Session/,
  );
  expectProtocolError(
    () => parseSessionHeader("has space;timeout=60"),
    /invalid Session/,
  );
});

Deno.test("parseTransportHeader: interleaved TCP as GStreamer answers it", () => {
  assert.deepEqual(
    parseTransportHeader(
      'RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=79EFBCE3;mode="PLAY"',
    ),
    {
      protocol: "RTP/AVP/TCP",
      lowerTransport: "TCP",
      multicast: false,
      interleaved: [0, 1],
      ssrc: 0x79efbce3,
      mode: "PLAY",
    },
  );
});

Deno.test("parseTransportHeader: UDP ports, single numbers, multicast, case", () => {
  assert.deepEqual(
    parseTransportHeader(
      "rtp/avp;unicast;client_port=5000-5001;server_port=6970-6971;ssrc=1a2b;mode=play",
    ),
    {
      protocol: "RTP/AVP",
      lowerTransport: "UDP",
      multicast: false,
      clientPort: [5000, 5001],
      serverPort: [6970, 6971],
      ssrc: 0x1a2b,
      mode: "PLAY",
    },
  );
  const single = parseTransportHeader("RTP/AVP/TCP;interleaved=4");
  assert.deepEqual(single.interleaved, [4, 5]);
  assert.equal(
    parseTransportHeader(
      "RTP/AVP;multicast;destination=232.0.0.1;port=5000-5001",
    ).multicast,
    true,
  );
  // Only the first of several offered transports is read.
  assert.equal(
    parseTransportHeader("RTP/AVP/TCP;interleaved=0-1,RTP/AVP;client_port=1-2")
      .lowerTransport,
    "TCP",
  );
});

Deno.test("parseTransportHeader: bad channels and ports throw, a bad ssrc is left out", () => {
  expectProtocolError(
    () => parseTransportHeader("RTP/AVP/TCP;interleaved=256-257"),
    /invalid interleaved/,
  );
  expectProtocolError(
    () => parseTransportHeader("RTP/AVP/TCP;interleaved=255"),
    /invalid interleaved/,
  );
  expectProtocolError(
    () => parseTransportHeader("RTP/AVP/TCP;interleaved=a-b"),
    /invalid interleaved/,
  );
  expectProtocolError(
    () => parseTransportHeader("RTP/AVP;client_port=70000-70001"),
    /invalid client_port/,
  );
  expectProtocolError(
    () => parseTransportHeader("RTP/AVP;server_port="),
    /invalid server_port/,
  );
  expectProtocolError(
    () => parseTransportHeader("RTP/AVP/SCTP;unicast"),
    /unknown lower transport/,
  );
  expectProtocolError(() => parseTransportHeader(""), /invalid Transport/);
  expectProtocolError(
    () => parseTransportHeader("garbage"),
    /invalid Transport/,
  );
  expectProtocolError(
    () => parseTransportHeader("RTP//TCP"),
    /invalid Transport/,
  );
  const transport = parseTransportHeader(
    "RTP/AVP/TCP;interleaved=0-1;ssrc=123456789ABC",
  );
  assert.equal(transport.ssrc, undefined);
  assert.deepEqual(transport.interleaved, [0, 1]);
});

Deno.test("parsePublicHeader gives upper-case method names", () => {
  assert.deepEqual(
    parsePublicHeader(
      "OPTIONS, DESCRIBE, setup,TEARDOWN, PLAY,, GET_PARAMETER ",
    ),
    new Set([
      "OPTIONS",
      "DESCRIBE",
      "SETUP",
      "TEARDOWN",
      "PLAY",
      "GET_PARAMETER",
    ]),
  );
  assert.deepEqual(parsePublicHeader(""), new Set());
});

Deno.test("parseRtpInfo: entries, URLs containing ';' and ',', missing and bad values", () => {
  assert.deepEqual(
    parseRtpInfo(
      "url=rtsp://127.0.0.1:8554/cam/stream=0;seq=8567;rtptime=541363170, url=rtsp://127.0.0.1:8554/cam/stream=1;seq=20392;rtptime=2896172596",
    ),
    [
      {
        url: "rtsp://127.0.0.1:8554/cam/stream=0",
        seq: 8567,
        rtptime: 541363170,
      },
      {
        url: "rtsp://127.0.0.1:8554/cam/stream=1",
        seq: 20392,
        rtptime: 2896172596,
      },
    ],
  );
  assert.deepEqual(
    parseRtpInfo(
      'url=rtsp://cam/live;jsessionid=1,2/trackID=1;seq=1,url="rtsp://cam/a";rtptime=5',
    ),
    [{ url: "rtsp://cam/live;jsessionid=1,2/trackID=1", seq: 1 }, {
      url: "rtsp://cam/a",
      rtptime: 5,
    }],
  );
  assert.deepEqual(parseRtpInfo("url=rtsp://cam/x;seq=70000;rtptime=-1"), [{
    url: "rtsp://cam/x",
  }]);
  assert.deepEqual(parseRtpInfo("url=rtsp://cam/x;seq=;rtptime=4294967296"), [{
    url: "rtsp://cam/x",
  }]);
  assert.deepEqual(parseRtpInfo("seq=1;rtptime=2"), []);
  assert.deepEqual(parseRtpInfo(""), []);
});
