// `deno task bench`: measures Umbrella (and optionally Janus) forwarding real
// WebRTC media on loopback, with the load generated in separate processes.
// Results go to bench/results/ as JSON and SVG. See docs/performance.md.
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { REALISTIC_MEDIA } from "./media_source.ts";
import {
  namespaceAddress,
  namespaceUnavailable,
  rerunInNamespace,
} from "./netns.ts";
import { renderText, writeResults } from "./report.ts";
import { runBench, SWEEP_NAMES, type SweepName } from "./suite.ts";

const USAGE = `Usage: deno task bench [options]

  --quick              a short run: fewer, smaller points and 3 s windows
  --only=LIST          sweeps to run, comma-separated: ${SWEEP_NAMES.join(",")}
                       (default: all)
  --compare-janus      also run the fan-out against Janus VideoRoom (Debian
                       package janus) and report the ratio
  --profile            profile each Umbrella's CPU (V8 inspector on
                       127.0.0.1) over every point's windows and list the
                       functions with the most self time at the heaviest
                       point
  --alloc-profile      sample what each Umbrella allocates (V8's sampling
                       heap profiler, garbage included) over every point's
                       windows and list the call sites that allocate the
                       most at the heaviest point
  --subscribers=LIST   fan-out points, e.g. 1,8,32 (subscribers per publisher)
  --participants=LIST  meeting points, e.g. 2,4,6
  --burst=N            subscribers joining at once in the join burst
                       (default 100)
  --workers=N          load-generator processes (default 3)
  --window=SECONDS     length of one measurement window (default 2)
  --windows=N          windows per point; the median one is reported
                       (default 3, quick 1)
  --settle=SECONDS     wait after joins before measuring (default 1)
  --warmup=SECONDS     how long each sweep's first point runs before it is
                       measured, in place of --settle, so that a JIT-compiled
                       SFU is measured warm (default 10, quick 2; 0: none)
  --capture=SECONDS    loopback capture per point for the SFU's own added
                       latency (needs tcpdump and root; default 1, 0: none)
  --budget=SECONDS     time for all sweeps together (default 570)
  --out=DIR            where results go (default bench/results): the standard
                       run (--compare-janus and no other option but --out)
                       writes latest.json and latest.svg, any other run
                       custom.json and custom.svg, replacing the last ones
  -h, --help           show this help`;

const FULL = {
  subscribers: [1, 2, 4, 8, 16, 24, 32, 48, 64, 80, 96, 128, 160, 200],
  participants: [2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16],
  window: 2,
  windows: 3,
  settle: 1,
  warmup: 10,
  burst: 100,
};
const QUICK = {
  subscribers: [1, 4, 16],
  participants: [2, 4],
  window: 2,
  windows: 1,
  settle: 1,
  warmup: 2,
  burst: 30,
};

class UsageError extends Error {}

function positiveList(value: string, flag: string): number[] {
  const list = value.split(",").map((v) => Number(v.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new UsageError(
      `--${flag}: expected positive integers, got "${value}"`,
    );
  }
  return [...new Set(list)].sort((a, b) => a - b);
}

function positive(value: string, flag: string): number {
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) {
    throw new UsageError(
      `--${flag}: expected a positive number, got "${value}"`,
    );
  }
  return number;
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean" },
      only: { type: "string" },
      "compare-janus": { type: "boolean" },
      profile: { type: "boolean" },
      "alloc-profile": { type: "boolean" },
      subscribers: { type: "string" },
      participants: { type: "string" },
      burst: { type: "string" },
      workers: { type: "string" },
      window: { type: "string" },
      windows: { type: "string" },
      settle: { type: "string" },
      warmup: { type: "string" },
      budget: { type: "string" },
      capture: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const plan = values.quick ? QUICK : FULL;
  const only = (values.only?.split(",").map((s) => s.trim()) ??
    SWEEP_NAMES) as SweepName[];
  const unknown = only.filter((name) => !SWEEP_NAMES.includes(name));
  if (unknown.length > 0) {
    throw new UsageError(
      `--only: unknown sweep ${unknown.join(", ")} (choose from ${
        SWEEP_NAMES.join(", ")
      })`,
    );
  }
  let janusUnavailable: string | undefined;
  const janusMediaAddress = namespaceAddress();
  if (values["compare-janus"] && !janusMediaAddress) {
    janusUnavailable = await namespaceUnavailable();
    if (!janusUnavailable) {
      return await rerunInNamespace(fileURLToPath(import.meta.url), args);
    }
    console.error(`bench: Janus is left out: ${janusUnavailable}`);
  }
  const window = values.window
    ? positive(values.window, "window")
    : plan.window;
  const result = await runBench({
    only,
    compareJanus: values["compare-janus"] ?? false,
    janusMediaAddress,
    janusUnavailable,
    cpuProfile: values.profile ?? false,
    allocationProfile: values["alloc-profile"] ?? false,
    workers: values.workers
      ? Math.round(positive(values.workers, "workers"))
      : 3,
    windowSeconds: window,
    windowsPerPoint: values.windows
      ? Math.round(positive(values.windows, "windows"))
      : plan.windows,
    settleSeconds: values.settle
      ? positive(values.settle, "settle")
      : plan.settle,
    warmupSeconds: values.warmup === "0"
      ? 0
      : values.warmup
      ? positive(values.warmup, "warmup")
      : plan.warmup,
    subscriberCounts: values.subscribers
      ? positiveList(values.subscribers, "subscribers")
      : plan.subscribers,
    participantCounts: values.participants
      ? positiveList(values.participants, "participants")
      : plan.participants,
    burstSize: values.burst
      ? Math.round(positive(values.burst, "burst"))
      : plan.burst,
    budgetSeconds: values.budget ? positive(values.budget, "budget") : 570,
    captureSeconds: values.capture === "0"
      ? 0
      : values.capture
      ? positive(values.capture, "capture")
      : 1,
    media: REALISTIC_MEDIA,
    log: (line) => console.log(line),
  });
  const dir = values.out ??
    fileURLToPath(new URL("./results", import.meta.url));
  const standard = values["compare-janus"] &&
    Object.keys(values).every((key) =>
      key === "compare-janus" || key === "out"
    );
  const files = await writeResults(
    result,
    dir,
    standard ? "latest" : "custom",
  );
  console.log(`\n${renderText(result)}`);
  console.log(`results: ${files.json}\nchart:   ${files.svg}`);
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    if (
      error instanceof UsageError ||
      (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")
    ) {
      console.error(`bench: ${(error as Error).message}\n\n${USAGE}`);
      Deno.exit(2);
    }
    throw error;
  }
}
