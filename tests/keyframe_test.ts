import assert from "node:assert/strict";
import { h264NalTypesInPayload, isKeyframeStart } from "../media/keyframe.ts";
import { makePayload } from "./support/media_payload.ts";

const VP8 = "video/vp8";
const H264 = "video/h264";

const bytes = (...values: number[]) => Uint8Array.from(values);

/** A keyframe's VP8 payload header: frame tag (P bit 0, show_frame, first
 * partition size), start code, 640x480. */
const VP8_KEY_HEADER = [
  0x50,
  0x2f,
  0x00,
  0x9d,
  0x01,
  0x2a,
  0x80,
  0x02,
  0xe0,
  0x01,
];
/** An interframe's frame tag: P bit 1. */
const VP8_DELTA_HEADER = [0x31, 0x0c, 0x00, 0x5a, 0x3b, 0x11];

function nalTypes(payload: Uint8Array): number[] {
  const out: number[] = [];
  return out.slice(0, h264NalTypesInPayload(payload, out));
}

Deno.test("VP8: minimal descriptor, keyframe and interframe", () => {
  assert.equal(isKeyframeStart(VP8, bytes(0x10, ...VP8_KEY_HEADER)), true);
  assert.equal(isKeyframeStart(VP8, bytes(0x10, ...VP8_DELTA_HEADER)), false);
});

Deno.test("VP8: only the start of partition 0 can begin a keyframe", () => {
  assert.equal(
    isKeyframeStart(VP8, bytes(0x00, ...VP8_KEY_HEADER)),
    false,
    "S=0",
  );
  assert.equal(
    isKeyframeStart(VP8, bytes(0x11, ...VP8_KEY_HEADER)),
    false,
    "partition 1",
  );
  assert.equal(
    isKeyframeStart(VP8, bytes(0x17, ...VP8_KEY_HEADER)),
    false,
    "partition 7",
  );
  assert.equal(
    isKeyframeStart(VP8, bytes(0x30, ...VP8_KEY_HEADER)),
    true,
    "N bit is irrelevant",
  );
});

// In the variants below every skipped extension byte has its low bit set, so
// a parser that skipped one byte too few would read a "P=1" frame tag.
Deno.test("VP8: 7-bit picture id (Firefox)", () => {
  assert.equal(
    isKeyframeStart(VP8, bytes(0x90, 0x80, 0x1b, ...VP8_KEY_HEADER)),
    true,
  );
  assert.equal(
    isKeyframeStart(VP8, bytes(0x90, 0x80, 0x1b, ...VP8_DELTA_HEADER)),
    false,
  );
});

Deno.test("VP8: 15-bit picture id", () => {
  assert.equal(
    isKeyframeStart(VP8, bytes(0x90, 0x80, 0x81, 0x23, ...VP8_KEY_HEADER)),
    true,
  );
  assert.equal(
    isKeyframeStart(VP8, bytes(0x90, 0x80, 0xff, 0xff, ...VP8_DELTA_HEADER)),
    false,
  );
});

Deno.test("VP8: picture id, TL0PICIDX and TID (Chrome with temporal layers)", () => {
  const descriptor = [0x90, 0xe0, 0x9a, 0x33, 0x05, 0x21];
  assert.equal(
    isKeyframeStart(VP8, bytes(...descriptor, ...VP8_KEY_HEADER)),
    true,
  );
  assert.equal(
    isKeyframeStart(VP8, bytes(...descriptor, ...VP8_DELTA_HEADER)),
    false,
  );
});

Deno.test("VP8: TL0PICIDX, TID and KEYIDX without picture id", () => {
  assert.equal(
    isKeyframeStart(VP8, bytes(0x90, 0x40, 0x01, ...VP8_KEY_HEADER)),
    true,
    "L only",
  );
  assert.equal(
    isKeyframeStart(VP8, bytes(0x90, 0x20, 0x41, ...VP8_KEY_HEADER)),
    true,
    "T only",
  );
  assert.equal(
    isKeyframeStart(VP8, bytes(0x90, 0x10, 0x03, ...VP8_KEY_HEADER)),
    true,
    "K only",
  );
  assert.equal(
    isKeyframeStart(VP8, bytes(0x90, 0x30, 0x47, ...VP8_KEY_HEADER)),
    true,
    "T and K share a byte",
  );
  assert.equal(
    isKeyframeStart(
      VP8,
      bytes(0x90, 0xf0, 0x81, 0x01, 0x01, 0x47, ...VP8_KEY_HEADER),
    ),
    true,
    "all extensions, 15-bit picture id",
  );
  assert.equal(
    isKeyframeStart(VP8, bytes(0x90, 0x00, ...VP8_KEY_HEADER)),
    true,
    "X with no extensions",
  );
});

Deno.test("VP8: every truncation of a keyframe start is rejected", () => {
  const descriptor = [0x90, 0xf0, 0x81, 0x01, 0x01, 0x47];
  const full = bytes(...descriptor, ...VP8_KEY_HEADER);
  const shortest = descriptor.length + 3; // the whole frame tag
  for (let length = 0; length < full.length; length++) {
    assert.equal(
      isKeyframeStart(VP8, full.subarray(0, length)),
      length >= shortest,
      `length ${length}`,
    );
  }
});

Deno.test("VP8: the synthetic media used by the other tests is recognised", () => {
  assert.equal(
    isKeyframeStart(VP8, makePayload("vp8", 200, true, 1, 0, 0)),
    true,
  );
  assert.equal(
    isKeyframeStart(VP8, makePayload("vp8", 200, false, 1, 1, 0)),
    false,
  );
  assert.equal(
    isKeyframeStart(H264, makePayload("h264", 200, true, 1, 0, 0)),
    true,
  );
  assert.equal(
    isKeyframeStart(H264, makePayload("h264", 200, false, 1, 1, 0)),
    false,
  );
});

const SPS = [0x67, 0x42, 0xe0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8];
const PPS = [0x68, 0xce, 0x38, 0x80];
const IDR = [0x65, 0x88, 0x84, 0x00, 0x33];
const NON_IDR = [0x41, 0x9a, 0x02, 0x10];

/** A STAP-A (NAL type 24) aggregating the given units. */
function stapA(...units: number[][]): Uint8Array {
  const payload = [0x78];
  for (const unit of units) {
    payload.push(unit.length >> 8, unit.length & 0xff, ...unit);
  }
  return Uint8Array.from(payload);
}

Deno.test("H.264: single NAL units", () => {
  assert.equal(isKeyframeStart(H264, bytes(...IDR)), true);
  assert.equal(isKeyframeStart(H264, bytes(...SPS)), true);
  assert.equal(isKeyframeStart(H264, bytes(...PPS)), false);
  assert.equal(isKeyframeStart(H264, bytes(...NON_IDR)), false);
  assert.equal(isKeyframeStart(H264, bytes(0x06, 0x05, 0x01)), false, "SEI");
  assert.equal(isKeyframeStart(H264, bytes(0x25)), true, "IDR with NRI 1");
  assert.equal(
    isKeyframeStart(H264, bytes(0xe5, 0x88)),
    false,
    "forbidden bit set",
  );
  assert.deepEqual(nalTypes(bytes(...SPS)), [7]);
  assert.deepEqual(nalTypes(bytes(0x09, 0xf0)), [9]);
});

Deno.test("H.264: STAP-A", () => {
  assert.equal(isKeyframeStart(H264, stapA(SPS, PPS)), true);
  assert.deepEqual(nalTypes(stapA(SPS, PPS)), [7, 8]);
  assert.equal(isKeyframeStart(H264, stapA(PPS, IDR)), true);
  assert.deepEqual(nalTypes(stapA(PPS, IDR)), [8, 5]);
  assert.equal(isKeyframeStart(H264, stapA(PPS, NON_IDR)), false);
  assert.deepEqual(nalTypes(stapA(SPS, PPS, IDR)), [7, 8, 5]);
  const long = new Array(300).fill(0x11);
  long[0] = 0x65;
  assert.deepEqual(nalTypes(stapA(PPS, long)), [8, 5], "16-bit unit sizes");
});

Deno.test("H.264: malformed STAP-A is rejected whole", () => {
  const good = stapA(SPS, PPS);
  const endOfFirstUnit = 1 + 2 + SPS.length;
  for (let length = 0; length < good.length; length++) {
    const expected = length === endOfFirstUnit ? [7] : [];
    const truncated = good.subarray(0, length);
    assert.deepEqual(nalTypes(truncated), expected, `truncated to ${length}`);
    assert.equal(isKeyframeStart(H264, truncated), expected.length > 0);
  }
  assert.equal(
    isKeyframeStart(H264, bytes(0x78, 0x00, 0x00, 0x67)),
    false,
    "zero-size unit",
  );
  assert.equal(
    isKeyframeStart(H264, bytes(0x78, 0x00, 0x02, 0x67, 0x42, 0x00)),
    false,
    "trailing byte",
  );
  assert.equal(
    isKeyframeStart(H264, bytes(0x78, 0xff, 0xff, 0x67, 0x42)),
    false,
    "size past the end",
  );
  assert.equal(
    isKeyframeStart(H264, stapA([0xe7, 0x42], PPS)),
    false,
    "forbidden bit in a unit",
  );
  assert.equal(
    isKeyframeStart(H264, bytes(0xf8, ...stapA(SPS).subarray(1))),
    false,
    "forbidden bit on STAP-A",
  );
});

Deno.test("H.264: FU-A", () => {
  assert.equal(
    isKeyframeStart(H264, bytes(0x7c, 0x85, 0x88, 0x84)),
    true,
    "start of an IDR",
  );
  assert.equal(
    isKeyframeStart(H264, bytes(0x7c, 0x87, 0x42)),
    true,
    "start of an SPS",
  );
  assert.equal(
    isKeyframeStart(H264, bytes(0x7c, 0x05, 0x11)),
    false,
    "middle of an IDR",
  );
  assert.equal(
    isKeyframeStart(H264, bytes(0x7c, 0x45, 0x11)),
    false,
    "end of an IDR",
  );
  assert.equal(
    isKeyframeStart(H264, bytes(0x7c, 0x81, 0x9a)),
    false,
    "start of a non-IDR slice",
  );
  assert.equal(isKeyframeStart(H264, bytes(0x7c)), false, "no FU header");
  assert.deepEqual(nalTypes(bytes(0x5c, 0x85, 0x00)), [5]);
  assert.deepEqual(nalTypes(bytes(0x5c, 0x05, 0x00)), []);
});

Deno.test("H.264: modes WebRTC does not use and reserved types give nothing", () => {
  for (const type of [0, 25, 26, 27, 29, 30, 31]) {
    const payload = bytes(
      0x60 | type,
      0x80 | 5,
      0x00,
      0x02,
      0x65,
      0x00,
      0x00,
      0x02,
      0x65,
      0x00,
    );
    assert.equal(isKeyframeStart(H264, payload), false, `type ${type}`);
    assert.deepEqual(nalTypes(payload), [], `type ${type}`);
  }
});

Deno.test("isKeyframeStart: other codecs and empty payloads give false", () => {
  assert.equal(
    isKeyframeStart("video/vp9", bytes(0x10, ...VP8_KEY_HEADER)),
    false,
  );
  assert.equal(isKeyframeStart("audio/opus", bytes(...IDR)), false);
  assert.equal(isKeyframeStart(VP8, new Uint8Array(0)), false);
  assert.equal(isKeyframeStart(H264, new Uint8Array(0)), false);
  assert.deepEqual(nalTypes(new Uint8Array(0)), []);
});

/** Deterministic PRNG (mulberry32) so the fuzz runs repeat exactly. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("keyframe parsers never throw on random or damaged payloads", () => {
  const random = prng(0x5eed);
  const seeds = [
    bytes(0x90, 0xf0, 0x81, 0x01, 0x01, 0x47, ...VP8_KEY_HEADER),
    stapA(SPS, PPS, IDR),
    bytes(0x7c, 0x85, 0x88, 0x84),
  ];
  const out: number[] = [];
  let keyframes = 0;
  for (let i = 0; i < 30_000; i++) {
    let payload: Uint8Array;
    if (i % 2 === 0) {
      payload = new Uint8Array(Math.floor(random() * 48));
      for (let j = 0; j < payload.length; j++) {
        payload[j] = Math.floor(random() * 256);
      }
      // Bias towards the interesting header values.
      if (payload.length > 0 && random() < 0.5) {
        payload[0] = (payload[0] & 0xe0) | (random() < 0.5 ? 24 : 28);
      }
      if (payload.length > 0 && random() < 0.3) {
        payload[0] = (payload[0] & 0x6f) | 0x90;
      }
    } else {
      const seed = seeds[i % seeds.length];
      payload = seed.slice(0, Math.floor(random() * (seed.length + 1)));
      const flips = Math.floor(random() * 3);
      for (let f = 0; f < flips && payload.length > 0; f++) {
        payload[Math.floor(random() * payload.length)] ^= 1 <<
          Math.floor(random() * 8);
      }
    }
    for (const mime of [VP8, H264]) {
      const result = isKeyframeStart(mime, payload);
      assert.equal(typeof result, "boolean");
      if (result) keyframes++;
    }
    const count = h264NalTypesInPayload(payload, out);
    assert.ok(
      count >= 0 && count <= payload.length,
      `count ${count} for length ${payload.length}`,
    );
    for (let j = 0; j < count; j++) assert.ok(out[j] >= 0 && out[j] <= 31);
  }
  assert.ok(keyframes > 0, "the fuzzer reached the accepting paths");
});
