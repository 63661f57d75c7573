// A peer that leaves while its connection is still gathering ICE candidates
// (gone within moments of joining, a trunk dropped mid-setup) must give back
// every socket: with a port range, a leaked one holds a port for good.
import assert from "node:assert/strict";
import { runLeakScenario } from "./support/leak_scenarios.ts";

Deno.test("peers closed while gathering ICE leave no socket bound", async () => {
  const { ports } = await runLeakScenario("ice-closed-while-gathering") as {
    ports: number[];
  };
  assert.deepEqual(ports, [], "ports of the range still bound");
});
