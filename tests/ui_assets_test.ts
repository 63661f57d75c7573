// The web UI as served (ui/assets.ts), the committed bundle, and the pure
// logic behind the pages (ui/format.ts, ui/session.ts grouping).
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { inflateSync } from "node:zlib";
import { BUNDLE_VERSION, uiAsset } from "../ui/assets.ts";
import { crc32 } from "../ui/icon.ts";
import {
  codecName,
  formatBitrate,
  formatBytes,
  formatDuration,
  formatPercent,
  fromOtherSite,
  initials,
  mediaErrorMessage,
  pageName,
  reconnectDelaySeconds,
  signallingUrl,
  sparklinePoints,
  stateTone,
  tileLabel,
} from "../ui/format.ts";
import { groupParticipants, isOwnTrack } from "../ui/session.ts";
import { nextPage, roleOpens } from "../ui/login_page.ts";
import { trunkUrlWithPassword } from "../ui/status_page.ts";
import {
  addressKind,
  cameraTrackText,
  checkServerForm,
  idleText,
  normalizeFingerprint,
  plural,
  remoteStateLabel,
  secondsLeft,
  sentence,
  type ServerForm,
  trafficText,
} from "../ui/remotes.ts";
import { MediaKind, type TrackInfo, TrackSource } from "../proto/messages.ts";

const repo = new URL("../", import.meta.url);
const PAGES = ["/sfu", "/status", "/servers"];

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

Deno.test("ui/dist/app.js is exactly what `deno task build:ui` builds from the sources", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("deno.json", repo)),
  );
  const command: string[] = config.tasks["build:ui"].split(/\s+/);
  const output = command.indexOf("-o") + 1;
  assert.equal(command[0], "deno");
  assert.equal(command[output], "ui/dist/app.js");
  const dir = await Deno.makeTempDir({ prefix: "umbrella-ui-" });
  try {
    command[output] = `${dir}/app.js`;
    const result = await new Deno.Command(Deno.execPath(), {
      args: command.slice(1),
      cwd: fileURLToPath(repo),
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(result.success, new TextDecoder().decode(result.stderr));
    const fresh = await Deno.readFile(`${dir}/app.js`);
    const committed = await Deno.readFile(new URL("ui/dist/app.js", repo));
    assert.ok(
      sameBytes(fresh, committed),
      "ui/dist/app.js is out of date: run `deno task build:ui` and commit it",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

for (const page of PAGES) {
  Deno.test(`${page} is the HTML shell, with only relative URLs`, () => {
    const asset = uiAsset(page);
    assert.ok(asset);
    assert.equal(asset.contentType, "text/html; charset=utf-8");
    assert.equal(asset.cacheControl, "no-cache");
    const html = asset.body as string;
    const urls = [...html.matchAll(/\b(?:src|href)="([^"]*)"/g)]
      .map((match) => match[1]).sort();
    assert.deepEqual(urls, [
      `app.js?v=${BUNDLE_VERSION}`,
      "apple-touch-icon.png",
      "favicon.svg",
      "manifest.webmanifest",
    ]);
    for (const url of urls) {
      const { pathname } = new URL(url, "https://host/prefix/");
      assert.ok(
        uiAsset(pathname.slice("/prefix".length)),
        `${url} is served`,
      );
    }
    assert.doesNotMatch(html, /url\(\s*["']?\//);
    assert.match(html, /<meta name="viewport" content="width=device-width/);
    assert.match(html, /<meta name="theme-color" content="#[0-9a-f]{6}">/);
  });
}

Deno.test("the bundle is served as JavaScript and asks for no absolute paths", async () => {
  const asset = uiAsset("/app.js");
  assert.ok(asset);
  assert.equal(asset.contentType, "text/javascript; charset=utf-8");
  assert.match(asset.cacheControl, /immutable/);
  assert.equal(
    asset.body,
    await Deno.readTextFile(new URL("ui/dist/app.js", repo)),
  );
  assert.doesNotMatch(
    asset.body as string,
    /["'`]\/(?:api|wsb|sfu|status|servers|app\.js)\b/,
  );
});

Deno.test("the manifest is JSON with a relative start_url and served icons", () => {
  const asset = uiAsset("/manifest.webmanifest");
  assert.ok(asset);
  assert.equal(asset.contentType, "application/manifest+json");
  const manifest = JSON.parse(asset.body as string);
  assert.equal(manifest.name, "Umbrella");
  assert.equal(manifest.start_url, "sfu");
  assert.equal(manifest.display, "standalone");
  assert.ok(manifest.icons.length >= 2);
  for (const icon of manifest.icons) {
    assert.doesNotMatch(icon.src, /^\/|:\/\//);
    assert.equal(uiAsset(`/${icon.src}`)?.contentType, icon.type);
  }
});

Deno.test("paths outside the UI are not served", () => {
  for (
    const path of [
      "/",
      "",
      "/sfu/",
      "/SFU",
      "/nope",
      "/app.js/x",
      "/dist/app.js",
      "/../deno.json",
      "/constructor",
      "/__proto__",
      "/api/status",
      "/wsb",
    ]
  ) {
    assert.equal(uiAsset(path), undefined, path);
  }
});

Deno.test("the favicon is an SVG", () => {
  const asset = uiAsset("/favicon.svg");
  assert.ok(asset);
  assert.equal(asset.contentType, "image/svg+xml");
  assert.match(
    asset.body as string,
    /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" viewBox="0 0 64 64">/,
  );
  assert.match(asset.body as string, /<\/svg>\n$/);
});

/** Checks the PNG structure and returns its size and RGBA pixels. */
function decodePng(png: Uint8Array) {
  assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10]);
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const chunks: Array<{ type: string; data: Uint8Array }> = [];
  for (let at = 8; at < png.length;) {
    const length = view.getUint32(at);
    const type = new TextDecoder().decode(png.subarray(at + 4, at + 8));
    const data = png.subarray(at + 8, at + 8 + length);
    assert.equal(
      view.getUint32(at + 8 + length),
      crc32(png.subarray(at + 4, at + 8 + length)),
      `${type} CRC`,
    );
    chunks.push({ type, data });
    at += 12 + length;
  }
  assert.deepEqual(chunks.map((c) => c.type), ["IHDR", "IDAT", "IEND"]);
  const header = new DataView(chunks[0].data.buffer, chunks[0].data.byteOffset);
  const size = header.getUint32(0);
  assert.equal(header.getUint32(4), size);
  assert.deepEqual([...chunks[0].data.subarray(8)], [8, 6, 0, 0, 0]);
  const raw = inflateSync(chunks[1].data);
  assert.equal(raw.length, (size * 4 + 1) * size);
  const pixel = (x: number, y: number) => {
    const at = y * (size * 4 + 1) + 1 + x * 4;
    return [...raw.subarray(at, at + 4)];
  };
  return { size, pixel };
}

Deno.test("the PNG icons are valid and show the umbrella", () => {
  for (
    const [path, size, cornerAlpha] of [
      ["/icon-192.png", 192, 0],
      ["/icon-512.png", 512, 0],
      ["/apple-touch-icon.png", 180, 255],
    ] as const
  ) {
    const asset = uiAsset(path);
    assert.ok(asset);
    assert.equal(asset.contentType, "image/png");
    const png = decodePng(asset.body as Uint8Array);
    assert.equal(png.size, size);
    const at = (gridX: number, gridY: number) =>
      png.pixel(
        Math.floor((gridX * size) / 64),
        Math.floor((gridY * size) / 64),
      );
    assert.equal(at(0, 0)[3], cornerAlpha, `${path} corner`);
    assert.deepEqual(at(32, 20), [255, 255, 255, 255], `${path} canopy`);
    assert.deepEqual(at(12, 52), [0x25, 0x63, 0xeb, 255], `${path} background`);
    assert.deepEqual(uiAsset(path)?.body, asset.body);
  }
});

Deno.test("pageName and signallingUrl keep the HTTP prefix", () => {
  assert.equal(pageName("/umbrella/sfu"), "sfu");
  assert.equal(pageName("/status"), "status");
  assert.equal(pageName("/umbrella/"), "");
  assert.equal(
    signallingUrl("https://example.org/umbrella/sfu?x=1#y"),
    "wss://example.org/umbrella/wsb",
  );
  assert.equal(
    signallingUrl("http://127.0.0.1:8081/sfu"),
    "ws://127.0.0.1:8081/wsb",
  );
});

Deno.test("after signing in a browser goes back only to a page of this UI", () => {
  assert.equal(nextPage("?next=status"), "status");
  assert.equal(nextPage(""), "sfu");
  for (
    const hostile of [
      "?next=https://evil.example/",
      "?next=//evil.example",
      "?next=login",
      "?next=..%2Fapi",
      "?next=Status",
    ]
  ) {
    assert.equal(nextPage(hostile), "sfu", hostile);
  }
});

Deno.test("the sign-in page knows which pages a role opens", () => {
  assert.ok(roleOpens("operator", "servers"));
  assert.ok(roleOpens("operator", "sfu"));
  assert.ok(roleOpens("participant", "sfu"));
  assert.ok(roleOpens("participant", "status"));
  assert.ok(!roleOpens("participant", "servers"));
  assert.ok(!roleOpens(null, "sfu"));
});

Deno.test("the Status page shows where a trunk's password goes", () => {
  assert.equal(
    trunkUrlWithPassword("wss://example.org/umbrella/wsb"),
    "wss://umbrella:PASSWORD@example.org/umbrella/wsb",
  );
  assert.equal(
    trunkUrlWithPassword("ws://10.0.0.5:8081/wsb"),
    "ws://umbrella:PASSWORD@10.0.0.5:8081/wsb",
  );
});

Deno.test("reconnect backoff doubles from 1 s up to 10 s", () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 30].map(reconnectDelaySeconds),
    [1, 2, 4, 8, 10, 10, 10],
  );
});

Deno.test("numbers are formatted for people", () => {
  assert.equal(formatDuration(0), "0 s");
  assert.equal(formatDuration(59.9), "59 s");
  assert.equal(formatDuration(125), "2 min 5 s");
  assert.equal(formatDuration(3725), "1 h 2 min");
  assert.equal(formatDuration(90000), "1 d 1 h");
  assert.equal(formatDuration(-5), "0 s");
  assert.equal(formatBitrate(0), "0 bit/s");
  assert.equal(formatBitrate(999), "999 bit/s");
  assert.equal(formatBitrate(32000), "32 kbit/s");
  assert.equal(formatBitrate(1_250_000), "1.25 Mbit/s");
  assert.equal(formatPercent(0.0213), "2.1 %");
  assert.equal(codecName("video/H264"), "H.264");
  assert.equal(codecName("video/VP8"), "VP8");
  assert.equal(codecName("audio/opus"), "Opus");
  assert.equal(codecName(""), "unknown codec");
});

Deno.test("initials, tile labels and state tones", () => {
  assert.equal(initials("Ada Lovelace"), "AL");
  assert.equal(initials("  grace  brewster hopper "), "GB");
  assert.equal(initials("Ådne"), "Å");
  assert.equal(initials("   "), "?");
  assert.equal(tileLabel("Ada", "home"), "Ada (home)");
  assert.equal(tileLabel("Ada", ""), "Ada");
  assert.equal(stateTone("connected"), "good");
  assert.equal(stateTone("failed"), "bad");
  assert.equal(stateTone("retrying"), "bad");
});

Deno.test("sparkline points scale to the largest value, newest on the right", () => {
  assert.equal(sparklinePoints([], 100, 20), "");
  assert.equal(sparklinePoints([5], 100, 20), "100,0");
  assert.equal(sparklinePoints([0, 50, 100], 100, 20), "0,20 50,10 100,0");
  assert.equal(sparklinePoints([0, 0], 10, 20), "0,20 10,20");
});

Deno.test("each camera or microphone failure gets its own advice", () => {
  const texts = [
    "NotAllowedError",
    "NotFoundError",
    "NotReadableError",
    "TypeError",
  ].map((name) => mediaErrorMessage({ name, message: "detail" }));
  assert.equal(new Set(texts).size, texts.length);
  assert.match(texts[0], /blocked/);
  assert.match(texts[1], /No camera or microphone/);
  for (const text of texts) assert.match(text, /Watch only/);
  assert.match(texts[3], /\(detail\)/);
});

Deno.test("our own tracks are recognised in announcements", () => {
  assert.ok(isOwnTrack({ id: "p1:abc", participantId: "p1" }, "p1"));
  assert.ok(isOwnTrack({ id: "p1:abc" }, "p1"));
  assert.ok(!isOwnTrack({ id: "p12:abc", participantId: "p12" }, "p1"));
  assert.ok(!isOwnTrack({ id: "cam:1", participantId: "cam" }, "p1"));
});

Deno.test("announced tracks group into participants with their media and problems", () => {
  const tracks: TrackInfo[] = [
    {
      id: "a:1",
      kind: MediaKind.Audio,
      participantId: "a",
      participantName: "Ada",
      site: "home",
    },
    { id: "cam:v", kind: MediaKind.Video, participantId: "cam", label: "Door" },
    {
      id: "a:2",
      kind: MediaKind.Video,
      participantId: "a",
      participantName: "Ada",
      site: "home",
    },
  ];
  const participants = groupParticipants(
    tracks,
    new Map([["a:2", "video of a"], ["cam:v", "video of cam"]]),
    new Map([["a:2", "cannot decode"]]),
  );
  assert.deepEqual(
    participants.map(({ id, name, site, media, problem, announced }) => ({
      id,
      name,
      site,
      media,
      problem,
      tracks: announced.map((t) => t.id),
    })),
    [
      {
        id: "a",
        name: "Ada",
        site: "home",
        media: ["video of a"],
        problem: "cannot decode",
        tracks: ["a:1", "a:2"],
      },
      {
        id: "cam",
        name: "Door",
        site: "",
        media: ["video of cam"],
        problem: null,
        tracks: ["cam:v"],
      },
    ],
  );
});

Deno.test("camera tracks make a camera participant", () => {
  const [camera, person] = groupParticipants(
    [
      {
        id: "camera-1-video",
        kind: MediaKind.Video,
        participantId: "camera-1",
        participantName: "Door",
        site: "home",
        source: TrackSource.Camera,
      },
      {
        id: "b:1",
        kind: MediaKind.Video,
        participantId: "b",
        participantName: "Bob",
        site: "cloud",
        source: TrackSource.Participant,
      },
    ],
    new Map(),
    new Map(),
  );
  assert.deepEqual(
    [camera.name, camera.site, camera.camera],
    ["Door", "home", true],
  );
  assert.equal(person.camera, false);
});

Deno.test("a participant from another site is told apart", () => {
  assert.ok(fromOtherSite("cloud", "home"));
  assert.ok(!fromOtherSite("home", "home"));
  assert.ok(!fromOtherSite("", "home"));
  // Before the server's Hello our own site is unknown: mark nobody.
  assert.ok(!fromOtherSite("cloud", ""));
});

Deno.test("state tones: green flowing, amber on the way, red failed, grey at rest", () => {
  assert.deepEqual(
    [
      "connected",
      "streaming",
      "new",
      "connecting",
      "retrying",
      "failed",
      "disconnected",
      "idle",
      "stopped",
      "something new",
    ].map(stateTone),
    [
      "good",
      "good",
      "warn",
      "warn",
      "bad",
      "bad",
      "bad",
      "neutral",
      "neutral",
      "neutral",
    ],
  );
});

Deno.test("byte counts use decimal units with sensible precision", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(999), "999 B");
  assert.equal(formatBytes(999.7), "1.0 kB");
  assert.equal(formatBytes(1000), "1.0 kB");
  assert.equal(formatBytes(1234), "1.2 kB");
  assert.equal(formatBytes(123_456), "123 kB");
  assert.equal(formatBytes(999_600), "1.0 MB");
  assert.equal(formatBytes(5_432_100_000), "5.4 GB");
  assert.equal(formatBytes(2e15), "2000 TB");
  assert.equal(formatBytes(-5), "0 B");
});

Deno.test("remote states read as words, with the retry countdown", () => {
  assert.equal(remoteStateLabel("connected", null), "connected");
  assert.equal(remoteStateLabel("streaming", null), "streaming");
  assert.equal(remoteStateLabel("idle", null), "idle");
  assert.equal(remoteStateLabel("retrying", 8), "retrying in 8 s");
  assert.equal(remoteStateLabel("retrying", 75), "retrying in 1 min 15 s");
  assert.equal(remoteStateLabel("retrying", 0), "retrying now");
  assert.equal(remoteStateLabel("retrying", null), "retrying");
  // The countdown goes on between polls and stops at zero.
  assert.equal(secondsLeft(8, 10_000, 10_000), 8);
  assert.equal(secondsLeft(8, 10_000, 12_500), 6);
  assert.equal(secondsLeft(8, 10_000, 30_000), 0);
  assert.equal(secondsLeft(8, 10_000, 9_000), 8);
  assert.equal(secondsLeft(null, 10_000, 12_000), null);
});

Deno.test("traffic, camera tracks and idle times are worded for people", () => {
  assert.equal(plural(1, "track"), "1 track");
  assert.equal(plural(0, "track"), "0 tracks");
  assert.equal(trafficText(1, 0), "1 track, 0 B");
  assert.equal(trafficText(3, 1_500_000), "3 tracks, 1.5 MB");
  assert.equal(
    cameraTrackText({ kind: "video", mimeType: "video/H264", subscribers: 2 }),
    "H.264 video, 2 watching",
  );
  assert.equal(
    cameraTrackText({ kind: "audio", mimeType: "audio/PCMU", subscribers: 0 }),
    "PCMU audio, 0 watching",
  );
  assert.equal(idleText(0), "always on");
  assert.equal(idleText(30), "stops 30 s after the last viewer leaves");
  assert.equal(sentence("connection refused"), "Connection refused.");
  assert.equal(sentence(" 401: wrong password. "), "401: wrong password.");
  assert.equal(sentence(""), "");
});

Deno.test("the add form picks its fields from the address scheme", () => {
  assert.equal(addressKind("wss://host:8081/wsb"), "trunk");
  assert.equal(addressKind(" WS://host/wsb"), "trunk");
  assert.equal(addressKind("rtsp://cam/stream"), "camera");
  assert.equal(addressKind("rtsps://cam/stream"), "camera");
  assert.equal(addressKind("https://host/sfu"), null);
  assert.equal(addressKind("wss"), null);
  assert.equal(addressKind(""), null);
});

Deno.test("pasted fingerprints are brought to the AB:CD:… form", () => {
  const pairs = Array.from(
    { length: 32 },
    (_, i) => i.toString(16).padStart(2, "0"),
  );
  const canonical = pairs.join(":").toUpperCase();
  assert.equal(normalizeFingerprint(canonical.toLowerCase()), canonical);
  assert.equal(normalizeFingerprint(` ${canonical}\n`), canonical);
  assert.equal(normalizeFingerprint(pairs.join("")), canonical);
  assert.equal(
    normalizeFingerprint(`sha256 Fingerprint=${canonical}`),
    canonical,
  );
  assert.equal(normalizeFingerprint(""), "");
  assert.equal(normalizeFingerprint("zz"), "ZZ");
});

function form(fields: Partial<ServerForm>): ServerForm {
  return {
    url: "",
    fingerprint: "",
    name: "",
    transport: "tcp",
    idleSeconds: "",
    ...fields,
  };
}

Deno.test("the add form refuses what the server would, next to the right field", () => {
  const refused = (
    fields: Partial<ServerForm>,
    field: keyof ServerForm,
    problem: RegExp,
  ) => {
    const checked = checkServerForm(form(fields));
    assert.ok(!checked.ok, JSON.stringify(fields));
    assert.equal(checked.field, field);
    assert.match(checked.problem, problem);
  };
  refused({}, "url", /Enter the address/);
  refused({ url: "   " }, "url", /Enter the address/);
  refused({ url: "host:8081" }, "url", /not supported/);
  refused({ url: "192.168.1.2" }, "url", /not a complete address/);
  // A page address is turned into the trunk address to use instead.
  refused(
    { url: "https://192.168.1.2:8081/sfu" },
    "url",
    /use wss:\/\/192\.168\.1\.2:8081\/wsb$/,
  );
  refused(
    { url: "https://example.org/umbrella/status" },
    "url",
    /use wss:\/\/example\.org\/umbrella\/wsb$/,
  );
  refused(
    { url: "http://127.0.0.1:8081/" },
    "url",
    /use ws:\/\/127\.0\.0\.1:8081\/wsb$/,
  );
  refused({ url: "ftp://host/x" }, "url", /ftp:\/\/ are not supported/);
  refused(
    { url: "wss://host:8081/sfu" },
    "url",
    /ends in \/wsb, for example wss:\/\/host:8081\/wsb$/,
  );
  refused(
    { url: "wss://host/wsb", fingerprint: "AB:CD" },
    "fingerprint",
    /32 pairs of hex digits/,
  );
  refused(
    { url: "rtsp://cam/1", name: "x".repeat(65) },
    "name",
    /at most 64 characters/,
  );
  for (const idleSeconds of ["-1", "1.5", "abc", "86401", "1e3"]) {
    refused(
      { url: "rtsp://cam/1", idleSeconds },
      "idleSeconds",
      /whole number/,
    );
  }
});

Deno.test("the add form sends only the fields that apply to the address", () => {
  const fingerprint = Array(32).fill("ab").join(":");
  assert.deepEqual(
    checkServerForm(
      form({
        url: " wss://host:8081/wsb ",
        // Camera fields left over from an earlier address are not sent.
        name: "Door",
        idleSeconds: "5",
      }),
    ),
    { ok: true, body: { url: "wss://host:8081/wsb" } },
  );
  assert.deepEqual(
    checkServerForm(form({ url: "wss://host/wsb", fingerprint })),
    {
      ok: true,
      body: { url: "wss://host/wsb", fingerprint: fingerprint.toUpperCase() },
    },
  );
  assert.deepEqual(
    checkServerForm(
      form({ url: "rtsp://u:p@cam/1", fingerprint: "left over" }),
    ),
    { ok: true, body: { url: "rtsp://u:p@cam/1", transport: "tcp" } },
  );
  assert.deepEqual(
    checkServerForm(
      form({
        url: "rtsp://cam/1",
        name: "  Front door ",
        transport: "udp",
        idleSeconds: "0",
      }),
    ),
    {
      ok: true,
      body: {
        url: "rtsp://cam/1",
        transport: "udp",
        name: "Front door",
        idleSeconds: 0,
      },
    },
  );
});
