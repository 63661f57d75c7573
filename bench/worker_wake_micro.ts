// Micro-benchmark of handing work to another thread the way a fan-out over
// several cores would: the main thread marks a slot in a SharedArrayBuffer
// and wakes a Worker waiting in Atomics.waitAsync, once per "frame burst"
// (a few ms apart, so the worker has gone back to sleep each time). Prints
// the wake-up latency (marked to running in the worker, p50/p99) and the CPU
// both threads spend per hand-off; asserts nothing.
//
//   deno run --allow-all bench/worker_wake_micro.ts (reads /proc)
import { cpuSecondsBetween, threadCpu } from "./proc.ts";

const HANDOFFS = 2000;
const GAP_MS = 2;

const WORKER = `
  const { control, stamps, latencies } = await new Promise((resolve) =>
    self.onmessage = (event) => resolve(event.data)
  );
  const seq = new Int32Array(control);
  const sent = new Float64Array(stamps);
  const took = new Float64Array(latencies);
  let seen = 0;
  while (true) {
    const wait = Atomics.waitAsync(seq, 0, seen);
    if (wait.async) await wait.value;
    seen = Atomics.load(seq, 0);
    if (seen < 0) break;
    took[seen - 1] = performance.timeOrigin + performance.now() - sent[0];
    Atomics.store(seq, 1, seen);
    Atomics.notify(seq, 1);
  }
  self.postMessage("done");
`;

const control = new SharedArrayBuffer(8);
const stamps = new SharedArrayBuffer(8);
const latencies = new SharedArrayBuffer(8 * HANDOFFS);
const seq = new Int32Array(control);
const sent = new Float64Array(stamps);
const worker = new Worker(
  `data:application/javascript,${encodeURIComponent(WORKER)}`,
  { type: "module" },
);
worker.postMessage({ control, stamps, latencies });
const done = new Promise((resolve) => worker.onmessage = resolve);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
await sleep(200);

const cpuBefore = threadCpu(Deno.pid);
const started = performance.now();
for (let i = 1; i <= HANDOFFS; i++) {
  sent[0] = performance.timeOrigin + performance.now();
  Atomics.store(seq, 0, i);
  Atomics.notify(seq, 0);
  const ack = Atomics.waitAsync(seq, 1, i - 1);
  if (ack.async) await ack.value;
  await sleep(GAP_MS);
}
const elapsed = (performance.now() - started) / 1000;
const cpu = cpuSecondsBetween(cpuBefore, threadCpu(Deno.pid));
Atomics.store(seq, 0, -1);
Atomics.notify(seq, 0);
await done;
worker.terminate();

const sorted = [...new Float64Array(latencies)].sort((a, b) => a - b);
const at = (q: number) => sorted[Math.floor(q * (sorted.length - 1))];
// The main thread's timer wake-ups (one per gap) are in the CPU figure too;
// the idle loop below measures them alone, to be taken off.
const idleBefore = threadCpu(Deno.pid);
const idleStarted = performance.now();
for (let i = 1; i <= HANDOFFS; i++) await sleep(GAP_MS);
const idleElapsed = (performance.now() - idleStarted) / 1000;
const idle = cpuSecondsBetween(idleBefore, threadCpu(Deno.pid));
console.log(
  `${HANDOFFS} hand-offs ${GAP_MS} ms apart: wake-up latency p50 ${
    (at(0.5) * 1000).toFixed(0)
  } µs, p99 ${(at(0.99) * 1000).toFixed(0)} µs; CPU ${
    (cpu / HANDOFFS * 1e6).toFixed(1)
  } µs per hand-off with the timer loop (${elapsed.toFixed(1)} s), ${
    (idle / HANDOFFS * 1e6).toFixed(1)
  } µs per timer wake-up alone (${idleElapsed.toFixed(1)} s): ${
    ((cpu - idle) / HANDOFFS * 1e6).toFixed(1)
  } µs per hand-off, both threads`,
);
