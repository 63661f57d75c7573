import assert from "node:assert/strict";
import { seqDiff, seqNewer, SeqUnwrapper } from "../media/seq.ts";

Deno.test("seqDiff is the signed short-way distance", () => {
  assert.equal(seqDiff(5, 3), 2);
  assert.equal(seqDiff(3, 5), -2);
  assert.equal(seqDiff(7, 7), 0);
  assert.equal(seqDiff(0, 65535), 1);
  assert.equal(seqDiff(65535, 0), -1);
  assert.equal(seqDiff(10, 65530), 16);
  assert.equal(seqDiff(32767, 0), 32767);
  assert.equal(seqDiff(32768, 0), -32768);
  assert.equal(seqDiff(0, 32768), -32768);
  assert.equal(seqDiff(0, 32767), -32767);
});

Deno.test("seqDiff stays in range and adds back to a", () => {
  let x = 12345;
  for (let i = 0; i < 10000; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    const a = x & 0xffff;
    const b = x >>> 16;
    const d = seqDiff(a, b);
    assert.ok(d >= -32768 && d <= 32767);
    assert.equal((b + d) & 0xffff, a);
  }
});

Deno.test("seqNewer follows wrap-around", () => {
  assert.equal(seqNewer(1, 0), true);
  assert.equal(seqNewer(0, 1), false);
  assert.equal(seqNewer(0, 65535), true);
  assert.equal(seqNewer(65535, 0), false);
  assert.equal(seqNewer(42, 42), false);
  assert.equal(seqNewer(32767, 0), true);
  assert.equal(seqNewer(32768, 0), false);
});

Deno.test("SeqUnwrapper: first seq maps to itself, then counts across wraps", () => {
  const unwrapper = new SeqUnwrapper();
  assert.equal(unwrapper.unwrap(65534), 65534);
  assert.equal(unwrapper.unwrap(65535), 65535);
  assert.equal(unwrapper.unwrap(0), 65536);
  assert.equal(unwrapper.unwrap(1), 65537);
});

Deno.test("SeqUnwrapper: a late packet from before the wrap maps just below", () => {
  const unwrapper = new SeqUnwrapper();
  assert.equal(unwrapper.unwrap(65533), 65533);
  assert.equal(unwrapper.unwrap(0), 65536);
  assert.equal(unwrapper.unwrap(65534), 65534);
  assert.equal(unwrapper.unwrap(1), 65537);
  assert.equal(unwrapper.unwrap(65535), 65535);
  assert.equal(unwrapper.unwrap(1), 65537, "duplicate maps to the same number");
});

Deno.test("SeqUnwrapper: a packet older than the first maps below it", () => {
  const unwrapper = new SeqUnwrapper();
  assert.equal(unwrapper.unwrap(0), 0);
  assert.equal(unwrapper.unwrap(65535), -1);
  assert.equal(unwrapper.unwrap(1), 1);
});

Deno.test("SeqUnwrapper: many laps with large steps stay monotonic", () => {
  const unwrapper = new SeqUnwrapper();
  let expected = 1000;
  assert.equal(unwrapper.unwrap(expected), expected);
  for (let i = 0; i < 300_000; i++) {
    expected += 1 + (i % 30000);
    assert.equal(unwrapper.unwrap(expected & 0xffff), expected);
  }
  assert.ok(expected > 2 ** 32, "extended numbers go past 32 bits");
  assert.equal(unwrapper.unwrap((expected - 5) & 0xffff), expected - 5);
});

Deno.test("SeqUnwrapper: inputs are taken modulo 2^16", () => {
  const unwrapper = new SeqUnwrapper();
  assert.equal(unwrapper.unwrap(65536 + 7), 7);
  assert.equal(unwrapper.unwrap(8), 8);
});

Deno.test("SeqUnwrapper: a late packet does not move the point others are placed from", () => {
  const unwrapper = new SeqUnwrapper();
  assert.equal(unwrapper.unwrap(0), 0);
  assert.equal(unwrapper.unwrap(20000), 20000);
  assert.equal(unwrapper.unwrap(40000), 40000);
  assert.equal(unwrapper.unwrap(10000), 10000);
  assert.equal(unwrapper.unwrap(60000), 60000);
});
