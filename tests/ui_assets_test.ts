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
  formatDuration,
  formatPercent,
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
import { MediaKind, type TrackInfo } from "../proto/messages.ts";

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
  assert.equal(stateTone("retrying"), "neutral");
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
