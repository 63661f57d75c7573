import assert from "node:assert/strict";
import { type CachedPacket, PacketCache } from "../media/packet_cache.ts";

function packet(tag: number): CachedPacket {
  return {
    payload: Uint8Array.of(tag & 0xff),
    timestamp: tag * 90,
    marker: false,
    payloadType: 96,
  };
}

Deno.test("PacketCache returns the very object put, without copying", () => {
  const cache = new PacketCache();
  const stored = packet(1);
  cache.put(1000, stored);
  assert.equal(cache.get(1000), stored);
  assert.equal(cache.get(1000)!.payload, stored.payload);
});

Deno.test("PacketCache: empty, never received and neighbouring seqs are undefined", () => {
  const cache = new PacketCache(16);
  assert.equal(cache.get(0), undefined);
  cache.put(5, packet(5));
  assert.equal(cache.get(4), undefined);
  assert.equal(cache.get(6), undefined);
  assert.equal(cache.get(5 + 16), undefined, "same slot, different seq");
});

Deno.test("PacketCache keeps exactly the last capacity packets", () => {
  const cache = new PacketCache(8);
  for (let seq = 0; seq <= 8; seq++) cache.put(seq, packet(seq));
  assert.equal(cache.get(0), undefined);
  for (let seq = 1; seq <= 8; seq++) {
    assert.equal(cache.get(seq)!.timestamp, seq * 90);
  }
});

Deno.test("PacketCache works across the 16-bit wrap", () => {
  const cache = new PacketCache(16);
  for (let i = 0; i < 12; i++) cache.put((65530 + i) & 0xffff, packet(i));
  for (let i = 0; i < 12; i++) {
    assert.equal(cache.get((65530 + i) & 0xffff)!.timestamp, i * 90);
  }
});

Deno.test("PacketCache: a late packet within the window is stored, a reordered one too", () => {
  const cache = new PacketCache(16);
  cache.put(100, packet(100));
  cache.put(102, packet(102));
  cache.put(101, packet(101));
  assert.equal(cache.get(101)!.timestamp, 101 * 90);
  assert.equal(cache.get(102)!.timestamp, 102 * 90);
});

Deno.test("PacketCache empties slots of skipped seqs, so no stale packet survives a lap", () => {
  const cache = new PacketCache(4);
  cache.put(0, packet(0));
  // Every packet landing in slot 0 is lost for a whole lap of 65536.
  for (let seq = 1; seq <= 65537; seq += 4) {
    cache.put(seq & 0xffff, packet(seq));
  }
  assert.equal(cache.get(0), undefined);
  assert.equal(cache.get(1)!.timestamp, 65537 * 90);
});

Deno.test("PacketCache releases packets whose seqs were skipped", () => {
  const cache = new PacketCache(8);
  for (let seq = 0; seq < 8; seq++) cache.put(seq, packet(seq));
  cache.put(10, packet(10)); // 8 and 9 lost: their slots held 0 and 1
  assert.equal(cache.get(0), undefined);
  assert.equal(cache.get(1), undefined);
  assert.equal(cache.get(2), undefined, "overwritten by 10");
  for (let seq = 3; seq < 8; seq++) {
    assert.equal(cache.get(seq)!.timestamp, seq * 90);
  }
  assert.equal(cache.get(10)!.timestamp, 10 * 90);
  cache.put(8, packet(8)); // late after all
  assert.equal(cache.get(8)!.timestamp, 8 * 90);
});

Deno.test("PacketCache: a jump beyond the window in either direction starts afresh", () => {
  const forward = new PacketCache(16);
  for (let seq = 0; seq < 16; seq++) forward.put(seq, packet(seq));
  forward.put(5000, packet(5000));
  for (let seq = 0; seq < 16; seq++) assert.equal(forward.get(seq), undefined);
  assert.equal(forward.get(5000)!.timestamp, 5000 * 90);

  const backward = new PacketCache(16);
  for (let seq = 5000; seq < 5016; seq++) backward.put(seq, packet(seq));
  backward.put(100, packet(100));
  assert.equal(backward.get(5015), undefined);
  assert.equal(backward.get(100)!.timestamp, 100 * 90);
  backward.put(101, packet(101));
  assert.equal(backward.get(100)!.timestamp, 100 * 90);
  assert.equal(backward.get(101)!.timestamp, 101 * 90);
});

Deno.test("PacketCache.clear forgets everything and accepts a new stream", () => {
  const cache = new PacketCache(16);
  for (let seq = 0; seq < 10; seq++) cache.put(seq, packet(seq));
  cache.clear();
  for (let seq = 0; seq < 10; seq++) assert.equal(cache.get(seq), undefined);
  cache.put(3, packet(33));
  assert.equal(cache.get(3)!.timestamp, 33 * 90);
});

Deno.test("PacketCache: seqs are taken modulo 2^16", () => {
  const cache = new PacketCache(16);
  cache.put(65536 + 3, packet(3));
  assert.equal(cache.get(3)!.timestamp, 3 * 90);
});

Deno.test("PacketCache rejects a capacity that is not a power of two", () => {
  for (const bad of [0, -4, 3, 1000, 1.5, 65536, NaN]) {
    assert.throws(() => new PacketCache(bad), RangeError);
  }
  assert.equal(new PacketCache().capacity, 1024);
  assert.equal(new PacketCache(1).capacity, 1);
});
