import assert from "node:assert/strict";
import { RetransmitLimiter } from "../media/retransmit_limiter.ts";

Deno.test("RetransmitLimiter resends a seq once per minIntervalMs", () => {
  const limiter = new RetransmitLimiter();
  assert.equal(limiter.allow(500, 1000), true);
  assert.equal(limiter.allow(500, 1001), false);
  assert.equal(limiter.allow(500, 1099.9), false);
  assert.equal(limiter.allow(501, 1050), true, "other seqs are unaffected");
  assert.equal(limiter.allow(500, 1100), true);
  assert.equal(limiter.allow(500, 1150), false);
  assert.deepEqual(
    [limiter.allowed, limiter.deduplicated, limiter.rateLimited],
    [3, 3, 0],
  );
});

Deno.test("RetransmitLimiter: seqs sharing a history slot never block each other", () => {
  const limiter = new RetransmitLimiter();
  assert.equal(limiter.allow(7, 0), true);
  assert.equal(limiter.allow(7 + 1024, 1), true);
  assert.equal(limiter.allow(7 + 2048, 2), true);
  assert.equal(limiter.allow(7 + 2048, 3), false);
  assert.equal(limiter.deduplicated, 1);
});

Deno.test("RetransmitLimiter: the same 16-bit seq a lap later is not a duplicate", () => {
  const limiter = new RetransmitLimiter();
  assert.equal(limiter.allow(65535, 0), true);
  assert.equal(
    limiter.allow(65535 + 65536, 10),
    false,
    "seqs are taken modulo 2^16",
  );
  assert.equal(limiter.allow(65535, 60_000), true);
});

Deno.test("RetransmitLimiter allows a burst, then refills at maxPerSecond", () => {
  const limiter = new RetransmitLimiter({ maxPerSecond: 200, burst: 50 });
  for (let seq = 0; seq < 50; seq++) assert.equal(limiter.allow(seq, 0), true);
  assert.equal(limiter.allow(50, 0), false);
  assert.equal(
    limiter.allow(50, 4),
    false,
    "4 ms at 200/s is less than one packet",
  );
  assert.equal(limiter.allow(50, 5), true);
  assert.equal(limiter.allow(51, 5), false);
  assert.deepEqual(
    [limiter.allowed, limiter.deduplicated, limiter.rateLimited],
    [51, 0, 3],
  );
});

Deno.test("RetransmitLimiter: the bucket never holds more than burst", () => {
  const limiter = new RetransmitLimiter({ maxPerSecond: 200, burst: 10 });
  let allowed = 0;
  for (let seq = 0; seq < 100; seq++) if (limiter.allow(seq, 60_000)) allowed++;
  assert.equal(allowed, 10);
});

Deno.test("RetransmitLimiter caps a sustained flood at maxPerSecond", () => {
  const limiter = new RetransmitLimiter({ maxPerSecond: 200, burst: 50 });
  let allowed = 0;
  // 1000 distinct NACKed seqs a second for 10 s.
  for (let i = 0; i < 10_000; i++) if (limiter.allow(i & 0xffff, i)) allowed++;
  assert.ok(
    allowed >= 50 + 200 * 10 - 2 && allowed <= 50 + 200 * 10,
    `allowed ${allowed}`,
  );
  assert.equal(limiter.allowed, allowed);
  assert.equal(limiter.rateLimited, 10_000 - allowed);
});

Deno.test("RetransmitLimiter: a rate-limited seq is not remembered as sent", () => {
  const limiter = new RetransmitLimiter({ maxPerSecond: 1000, burst: 1 });
  assert.equal(limiter.allow(1, 0), true);
  assert.equal(limiter.allow(2, 0), false);
  assert.equal(limiter.allow(2, 1), true, "not deduplicated on the retry");
  assert.deepEqual(
    [limiter.allowed, limiter.deduplicated, limiter.rateLimited],
    [2, 0, 1],
  );
});

Deno.test("RetransmitLimiter: a duplicate does not spend a token", () => {
  const limiter = new RetransmitLimiter({ maxPerSecond: 1, burst: 2 });
  assert.equal(limiter.allow(1, 0), true);
  for (let i = 0; i < 10; i++) assert.equal(limiter.allow(1, 1), false);
  assert.equal(limiter.allow(2, 1), true);
  assert.deepEqual(
    [limiter.allowed, limiter.deduplicated, limiter.rateLimited],
    [2, 10, 0],
  );
});

Deno.test("RetransmitLimiter: time going backwards adds no tokens", () => {
  const limiter = new RetransmitLimiter({ maxPerSecond: 1000, burst: 1 });
  assert.equal(limiter.allow(1, 1000), true);
  assert.equal(limiter.allow(2, 500), false);
  assert.equal(limiter.allow(3, 1000), false);
  assert.equal(limiter.allow(4, 1001), true);
});

Deno.test("RetransmitLimiter: minIntervalMs 0 only rate-limits", () => {
  const limiter = new RetransmitLimiter({ minIntervalMs: 0, burst: 3 });
  assert.equal(limiter.allow(9, 0), true);
  assert.equal(limiter.allow(9, 0), true);
  assert.equal(limiter.allow(9, 0), true);
  assert.equal(limiter.allow(9, 0), false);
  assert.deepEqual(
    [limiter.allowed, limiter.deduplicated, limiter.rateLimited],
    [3, 0, 1],
  );
});

Deno.test("RetransmitLimiter rejects bad options", () => {
  for (
    const options of [
      { minIntervalMs: -1 },
      { minIntervalMs: NaN },
      { minIntervalMs: Infinity },
      { maxPerSecond: 0 },
      { maxPerSecond: -5 },
      { maxPerSecond: Infinity },
      { burst: 0.5 },
      { burst: NaN },
    ]
  ) {
    assert.throws(
      () => new RetransmitLimiter(options),
      RangeError,
      JSON.stringify(options),
    );
  }
});
