import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { GenericNack, RtcpHeader } from "werift";
import {
  NackGenerator,
  packGenericNack,
  unpackGenericNack,
} from "../media/nack_generator.ts";
import { seqDiff } from "../media/seq.ts";

/** Feeds seqs one per ms from startMs, taking NACKs after each packet like the
 * track does; returns every seq NACKed, in order. */
function feed(generator: NackGenerator, seqs: number[], startMs = 0): number[] {
  const out: number[] = [];
  const nacks: number[] = [];
  let nowMs = startMs;
  for (const seq of seqs) {
    generator.onPacket(seq & 0xffff, nowMs);
    const count = generator.takeNacks(nowMs, out);
    for (let i = 0; i < count; i++) nacks.push(out[i]);
    nowMs++;
  }
  return nacks;
}

function range(from: number, to: number): number[] {
  const seqs: number[] = [];
  for (let seq = from; seq <= to; seq++) seqs.push(seq);
  return seqs;
}

Deno.test("NackGenerator: an unbroken stream NACKs nothing", () => {
  const generator = new NackGenerator();
  assert.deepEqual(feed(generator, range(100, 2000)), []);
  assert.equal(generator.nacked, 0);
  assert.equal(generator.recovered, 0);
});

Deno.test("NackGenerator holds a hole until two later packets, then NACKs it once", () => {
  const generator = new NackGenerator();
  const out: number[] = [];
  generator.onPacket(100, 0);
  generator.onPacket(101, 0);
  generator.onPacket(103, 0);
  assert.equal(
    generator.takeNacks(0, out),
    0,
    "one packet past the hole could be reordering",
  );
  generator.onPacket(104, 0);
  assert.equal(generator.takeNacks(0, out), 1);
  assert.equal(out[0], 102);
  for (let seq = 105; seq < 400; seq++) {
    generator.onPacket(seq, seq);
    assert.equal(generator.takeNacks(seq, out), 0, "never NACKed twice");
  }
  assert.equal(generator.nacked, 1);
  assert.equal(generator.recovered, 0);
});

Deno.test("NackGenerator NACKs a hole once it is 5 ms old, however few packets came", () => {
  const generator = new NackGenerator();
  const out: number[] = [];
  generator.onPacket(100, 1000);
  generator.onPacket(102, 1000);
  assert.equal(generator.takeNacks(1004.9, out), 0);
  assert.equal(generator.takeNacks(1005, out), 1);
  assert.equal(out[0], 101);
  assert.equal(generator.takeNacks(2000, out), 0);
});

Deno.test("NackGenerator: a packet reordered within the hold is never NACKed", () => {
  const generator = new NackGenerator();
  assert.deepEqual(
    feed(generator, [100, 102, 101, 103, 105, 104, 106, 107]),
    [],
  );
  assert.equal(generator.nacked, 0);
  assert.equal(generator.recovered, 0);
});

Deno.test("NackGenerator: a burst loss is NACKed oldest first", () => {
  const generator = new NackGenerator();
  const out: number[] = [];
  generator.onPacket(100, 0);
  generator.onPacket(110, 0);
  assert.equal(generator.takeNacks(0, out), 8);
  assert.deepEqual(out.slice(0, 8), range(101, 108));
  generator.onPacket(111, 1);
  assert.equal(generator.takeNacks(1, out), 1);
  assert.equal(out[0], 109);
  assert.equal(generator.nacked, 9);
});

Deno.test("NackGenerator counts NACKed packets that arrive as recovered, once", () => {
  const generator = new NackGenerator();
  assert.deepEqual(feed(generator, [10, 13, 14, 15]), [11, 12]);
  feed(generator, [12, 12, 11, 16]);
  assert.equal(generator.nacked, 2);
  assert.equal(generator.recovered, 2);
});

Deno.test("NackGenerator: a hole filled before its NACK is dropped from the list", () => {
  const generator = new NackGenerator();
  const out: number[] = [];
  generator.onPacket(1, 0);
  generator.onPacket(5, 0); // 2, 3 due; 4 held
  generator.onPacket(4, 0);
  generator.onPacket(2, 0);
  assert.equal(generator.takeNacks(0, out), 1);
  assert.equal(out[0], 3);
  assert.equal(generator.takeNacks(100, out), 0);
  assert.equal(generator.recovered, 0);
});

Deno.test("NackGenerator handles the 16-bit wrap", () => {
  const generator = new NackGenerator();
  assert.deepEqual(feed(generator, [65533, 65534, 1, 2, 3]), [65535, 0]);
  feed(generator, [0, 65535, 4]);
  assert.equal(generator.recovered, 2);
});

Deno.test("NackGenerator over many laps NACKs every lost packet exactly once", () => {
  const generator = new NackGenerator();
  const sent: number[] = [];
  const lost: number[] = [];
  for (let extended = 1000; extended < 1000 + 4 * 65536; extended++) {
    if (extended % 97 === 0 || extended % 1009 === 3) {
      lost.push(extended & 0xffff);
    } else sent.push(extended & 0xffff);
  }
  assert.deepEqual(feed(generator, sent), lost);
  assert.equal(generator.nacked, lost.length);
});

Deno.test("NackGenerator: the largest repairable gap is NACKed, one more is a restart", () => {
  const generator = new NackGenerator({ maxGap: 256 });
  assert.equal(generator.onPacket(0, 0), false);
  assert.equal(generator.onPacket(257, 0), false);
  const out: number[] = [];
  assert.equal(generator.takeNacks(10, out), 256);
  assert.deepEqual(out.slice(0, 256), range(1, 256));

  const restarting = new NackGenerator({ maxGap: 256 });
  restarting.onPacket(0, 0);
  assert.equal(
    restarting.onPacket(258, 0),
    false,
    "one packet is not yet a restart",
  );
  assert.equal(
    restarting.onPacket(259, 1),
    true,
    "a second one continuing it is",
  );
  assert.equal(
    restarting.takeNacks(100, out),
    0,
    "nothing NACKed across a restart",
  );
  assert.deepEqual(
    feed(restarting, [260, 262, 263, 264], 200),
    [261],
    "NACKs resume after it",
  );
});

Deno.test("NackGenerator: a backward jump beyond the window is a restart too", () => {
  const generator = new NackGenerator();
  feed(generator, range(40000, 40100));
  assert.equal(generator.onPacket(10, 200), false);
  assert.equal(generator.onPacket(12, 201), true);
  assert.deepEqual(feed(generator, [13, 15, 16, 17], 300), [14]);
  assert.equal(generator.nacked, 1);
});

Deno.test("NackGenerator: a single stray packet neither restarts nor disturbs the stream", () => {
  const generator = new NackGenerator();
  const out: number[] = [];
  feed(generator, range(1000, 1100));
  for (const stray of [30000, 1100 - 600, 1100 + 20000]) {
    assert.equal(generator.onPacket(stray, 0), false);
    assert.equal(generator.takeNacks(1000, out), 0);
  }
  // The stream goes on; far beyond where a stray would have moved an
  // unwrapper, it is still seen as an unbroken stream.
  assert.deepEqual(feed(generator, range(1101, 1101 + 70000), 2000), []);
  assert.equal(generator.nacked, 0);
});

Deno.test("NackGenerator ignores packets older than the window", () => {
  const generator = new NackGenerator({ window: 64, maxGap: 32 });
  assert.deepEqual(feed(generator, [0, 2, 3, 4]), [1]);
  feed(generator, range(5, 200));
  assert.equal(generator.onPacket(1, 300), false, "too late to count");
  assert.equal(generator.recovered, 0);
  assert.deepEqual(feed(generator, [201, 202]), []);
});

Deno.test("NackGenerator gives up on holes that fall out of the window unNACKed", () => {
  const generator = new NackGenerator({ window: 16, maxGap: 8 });
  const out: number[] = [];
  generator.onPacket(0, 0);
  generator.onPacket(5, 0);
  for (let seq = 6; seq <= 40; seq++) generator.onPacket(seq, 0);
  assert.equal(generator.takeNacks(1000, out), 0);
  assert.equal(generator.nacked, 0);
  generator.onPacket(42, 1000);
  generator.onPacket(43, 1000);
  assert.equal(generator.takeNacks(1000, out), 1);
  assert.equal(out[0], 41);
});

Deno.test("NackGenerator: reorderPackets 1 and reorderMs 0 NACK at once", () => {
  const generator = new NackGenerator({ reorderPackets: 1, reorderMs: 0 });
  const out: number[] = [];
  generator.onPacket(7, 0);
  generator.onPacket(9, 0);
  assert.equal(generator.takeNacks(0, out), 1);
  assert.equal(out[0], 8);
});

Deno.test("NackGenerator rejects bad options", () => {
  for (
    const options of [
      { window: 100 },
      { window: 1 },
      { window: 65536 },
      { window: 64, maxGap: 64 },
      { maxGap: -1 },
      { maxGap: 1.5 },
      { reorderPackets: 0 },
      { reorderMs: -1 },
      { reorderMs: NaN },
    ]
  ) {
    assert.throws(
      () => new NackGenerator(options),
      RangeError,
      JSON.stringify(options),
    );
  }
});

/** Deterministic PRNG (mulberry32) so randomised tests repeat exactly. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("NackGenerator under random loss, reordering and duplicates", () => {
  for (let seed = 1; seed <= 20; seed++) {
    const random = prng(seed);
    const generator = new NackGenerator();
    // Arrival order of extended seqs: some lost, some delayed by a few places,
    // some duplicated; starting near the wrap so every run crosses it.
    const first = 65536 - 500 + Math.floor(random() * 1000);
    const arrivals: number[] = [];
    const delayed: { extended: number; due: number }[] = [];
    const neverArrives = new Set<number>();
    for (let extended = first; extended < first + 3000; extended++) {
      const roll = random();
      if (roll < 0.04) neverArrives.add(extended);
      else if (roll < 0.07) {
        delayed.push({
          extended,
          due: arrivals.length + 1 + Math.floor(random() * 4),
        });
      } else arrivals.push(extended);
      if (roll > 0.99) arrivals.push(extended - 3);
      for (let i = delayed.length - 1; i >= 0; i--) {
        if (delayed[i].due <= arrivals.length) {
          arrivals.push(delayed.splice(i, 1)[0].extended);
        }
      }
    }
    for (const late of delayed) arrivals.push(late.extended);
    for (let extended = first + 3000; extended < first + 3010; extended++) {
      arrivals.push(extended);
    }

    const received = new Set<number>();
    const nacked = new Set<number>();
    let recoveredExpected = 0;
    let newest = arrivals[0];
    const out: number[] = [];
    let nowMs = 0;
    for (const extended of arrivals) {
      if (nacked.has(extended) && !received.has(extended)) recoveredExpected++;
      received.add(extended);
      newest = Math.max(newest, extended);
      generator.onPacket(extended & 0xffff, nowMs);
      const count = generator.takeNacks(nowMs, out);
      for (let i = 0; i < count; i++) {
        const nackedExtended = newest + seqDiff(out[i], newest & 0xffff);
        assert.ok(
          !nacked.has(nackedExtended),
          `seed ${seed}: ${nackedExtended} NACKed twice`,
        );
        assert.ok(
          !received.has(nackedExtended),
          `seed ${seed}: ${nackedExtended} NACKed after arriving`,
        );
        assert.ok(
          nackedExtended > first && nackedExtended < newest,
          `seed ${seed}: ${nackedExtended} never sent`,
        );
        nacked.add(nackedExtended);
      }
      nowMs += 0.5;
    }
    for (const extended of neverArrives) {
      if (extended > first) {
        assert.ok(
          nacked.has(extended),
          `seed ${seed}: lost ${extended} not NACKed`,
        );
      }
    }
    assert.equal(generator.nacked, nacked.size);
    assert.equal(generator.recovered, recoveredExpected);
  }
});

Deno.test("packGenericNack follows RFC 4585: PID plus BLP bit i for PID+i+1", () => {
  const pids: number[] = [];
  const blps: number[] = [];
  assert.equal(packGenericNack([1000, 1001, 1003], 3, pids, blps), 1);
  assert.deepEqual([pids[0], blps[0]], [1000, 0b101]);

  assert.equal(packGenericNack(range(500, 516), 17, pids, blps), 1);
  assert.deepEqual([pids[0], blps[0]], [500, 0xffff]);

  assert.equal(packGenericNack(range(500, 517), 18, pids, blps), 2);
  assert.deepEqual([pids[0], blps[0], pids[1], blps[1]], [500, 0xffff, 517, 0]);

  assert.equal(packGenericNack([10, 100, 116], 3, pids, blps), 2);
  assert.deepEqual([pids[0], blps[0], pids[1], blps[1]], [10, 0, 100, 0x8000]);
});

Deno.test("packGenericNack: wrap-around, duplicates, unsorted input, count", () => {
  const pids: number[] = [];
  const blps: number[] = [];
  assert.equal(packGenericNack([65534, 65535, 0, 1], 4, pids, blps), 1);
  assert.deepEqual([pids[0], blps[0]], [65534, 0b111]);

  assert.equal(packGenericNack([5, 5, 6, 6], 4, pids, blps), 1);
  assert.deepEqual([pids[0], blps[0]], [5, 0b1]);

  assert.equal(packGenericNack([20, 3, 4], 3, pids, blps), 2);
  assert.deepEqual([pids[0], blps[0], pids[1], blps[1]], [20, 0, 3, 0b1]);

  assert.equal(
    packGenericNack(Uint16Array.of(7, 8, 9, 40), 2, pids, blps),
    1,
    "only count entries",
  );
  assert.deepEqual([pids[0], blps[0]], [7, 0b1]);
  assert.equal(packGenericNack([], 0, pids, blps), 0);
});

Deno.test("unpackGenericNack lists PID then each BLP bit", () => {
  const out: number[] = [];
  assert.equal(unpackGenericNack(1000, 0b101, out), 3);
  assert.deepEqual(out.slice(0, 3), [1000, 1001, 1003]);
  assert.equal(unpackGenericNack(65535, 0x8001, out), 3);
  assert.deepEqual(out.slice(0, 3), [65535, 0, 15]);
  assert.equal(unpackGenericNack(7, 0, out), 1);
  assert.equal(out[0], 7);
  assert.equal(unpackGenericNack(0, 0xffff, out), 17);
  assert.deepEqual(out.slice(0, 17), range(0, 16));
});

Deno.test("Generic NACK pairs round-trip, and werift reads them back the same", () => {
  const random = prng(99);
  const pids: number[] = [];
  const blps: number[] = [];
  const unpacked: number[] = [];
  for (let trial = 0; trial < 200; trial++) {
    const seqs: number[] = [];
    let seq = Math.floor(random() * 65536);
    const length = 1 + Math.floor(random() * 60);
    for (let i = 0; i < length; i++) {
      seqs.push(seq);
      seq = (seq + 1 + Math.floor(random() * (random() < 0.8 ? 3 : 40))) &
        0xffff;
    }
    const pairs = packGenericNack(seqs, seqs.length, pids, blps);
    const decoded: number[] = [];
    const fci = new Uint8Array(8 + pairs * 4);
    const view = new DataView(fci.buffer);
    for (let i = 0; i < pairs; i++) {
      const count = unpackGenericNack(pids[i], blps[i], unpacked);
      for (let j = 0; j < count; j++) decoded.push(unpacked[j]);
      view.setUint16(8 + i * 4, pids[i]);
      view.setUint16(10 + i * 4, blps[i]);
    }
    assert.deepEqual(decoded, seqs);
    const parsed = GenericNack.deSerialize(Buffer.from(fci), new RtcpHeader());
    assert.deepEqual(parsed.lost.map((lost: number) => lost & 0xffff), seqs);
  }
});
