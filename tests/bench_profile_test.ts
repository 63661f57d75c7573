// The bench's summaries of V8 profiles (bench/profile.ts), on made-up ones.
import assert from "node:assert/strict";
import { summariseAllocations } from "../bench/profile.ts";

const frame = (functionName: string, url: string, lineNumber: number) => ({
  functionName,
  url,
  lineNumber,
});

Deno.test("allocations add up per call site and caller, largest first, per second", () => {
  const werift =
    "file:///repo/node_modules/.deno/werift@0.25.2/node_modules/werift/lib/index.mjs";
  const leaf = (name: string, line: number, bytes: number) => ({
    callFrame: frame(name, werift, line),
    selfSize: bytes,
    children: [],
  });
  const profile = {
    head: {
      callFrame: frame("(root)", "", 0),
      selfSize: 0,
      children: [
        {
          callFrame: frame(
            "receive",
            "file:///repo/media/fast_rtp_receive.ts",
            58,
          ),
          selfSize: 1000,
          children: [leaf("getBit", 85, 6000), leaf("serialize", 10, 500)],
        },
        {
          callFrame: frame("sendStun", werift, 300),
          selfSize: 0,
          // The same helper from another caller is another entry.
          children: [leaf("getBit", 85, 2000), leaf("", 7, 500)],
        },
      ],
    },
  };
  const summary = summariseAllocations("umbrella", profile, 2, 3);
  assert.equal(summary.process, "umbrella");
  assert.equal(summary.bytesPerSecond, 5000);
  assert.deepEqual(summary.top, [
    {
      function: "getBit",
      location: "werift/lib/index.mjs:86",
      calledFrom: "receive media/fast_rtp_receive.ts:59",
      bytesPerSecond: 3000,
      percent: 60,
    },
    {
      function: "getBit",
      location: "werift/lib/index.mjs:86",
      calledFrom: "sendStun werift/lib/index.mjs:301",
      bytesPerSecond: 1000,
      percent: 20,
    },
    {
      function: "receive",
      location: "media/fast_rtp_receive.ts:59",
      calledFrom: "(root) (native)",
      bytesPerSecond: 500,
      percent: 10,
    },
  ]);
});
