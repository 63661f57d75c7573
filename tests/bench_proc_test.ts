import assert from "node:assert/strict";
import { cpuSeconds, cpuSecondsBetween, threadCpu } from "../bench/proc.ts";

Deno.test("a process's CPU time is read per thread in nanoseconds and agrees with its clock ticks", () => {
  const start = threadCpu(Deno.pid);
  const ticksStart = cpuSeconds(Deno.pid);
  const wallStart = performance.now();
  // Busy until the ticks say 0.2 s of CPU (bounded, on a crowded machine).
  while (
    cpuSeconds(Deno.pid) - ticksStart < 0.2 &&
    performance.now() - wallStart < 5000
  );
  const end = threadCpu(Deno.pid);
  const ticks = cpuSeconds(Deno.pid) - ticksStart;
  const used = cpuSecondsBetween(start, end);
  assert.ok(start.size >= 1 && end.has(Deno.pid), "the main thread is read");
  assert.ok(ticks >= 0.2, `only ${ticks} s of CPU in 5 s`);
  // Both count the same time: ticks to within a couple of 10 ms ticks.
  assert.ok(
    Math.abs(used - ticks) < 0.03,
    `${used} s by schedstat, ${ticks} s by ticks`,
  );
  // Sub-tick precision: a reading is not a multiple of 10 ms.
  const first = [...end.values()].reduce((sum, v) => sum + v, 0);
  assert.notEqual(first % 10_000_000, 0);
});

Deno.test("a thread that appears between readings counts from zero; one that ended counts nothing", () => {
  const start = new Map([[1, 5e9], [2, 1e9]]);
  const end = new Map([[1, 5.5e9], [3, 0.25e9]]);
  assert.equal(cpuSecondsBetween(start, end), 0.75);
});
