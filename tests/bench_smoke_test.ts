// Keeps `deno task bench` working: runs the real harness (SFU processes, load
// generators, all three sweeps) end to end with tiny points and one-second
// windows, writing into a temporary directory, and checks that the report has
// every figure with sane, nonzero counts. It asserts nothing about speed.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { compareWithJanus } from "../bench/suite.ts";
import type { BenchResult } from "../bench/suite.ts";
import { renderSvg, renderText } from "../bench/report.ts";

const RUN = fileURLToPath(new URL("../bench/run.ts", import.meta.url));
const CONFIG = fileURLToPath(new URL("../deno.json", import.meta.url));
const RUN_TIMEOUT_MS = 150_000;
/** Every process the bench starts inherits this, so leftovers can be found. */
const TAG_VARIABLE = "UMBRELLA_BENCH_SMOKE_TAG";

/** Pids of live processes whose environment carries the tag. */
function taggedProcesses(tag: string): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid) || pid === Deno.pid) continue;
    try {
      const environ = Deno.readTextFileSync(`/proc/${pid}/environ`);
      if (environ.includes(`${TAG_VARIABLE}=${tag}`)) pids.push(pid);
    } catch { /* gone meanwhile, or not ours to read */ }
  }
  return pids;
}

async function runBench(out: string, tag: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      CONFIG,
      "--allow-all",
      RUN,
      "--subscribers=1,2",
      "--participants=2",
      "--burst=3",
      "--workers=2",
      "--window=1",
      "--windows=1",
      "--settle=0.5",
      "--warmup=0.5",
      `--out=${out}`,
    ],
    env: { [TAG_VARIABLE]: tag, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    for (const pid of taggedProcesses(tag)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* already gone */ }
    }
  }, RUN_TIMEOUT_MS);
  try {
    const output = await child.output();
    const decoder = new TextDecoder();
    return {
      code: output.code,
      log: decoder.decode(output.stdout) + decoder.decode(output.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("deno task bench runs end to end and reports every figure", async () => {
  const out = await Deno.makeTempDir({ prefix: "umbrella-bench-smoke-" });
  const tag = crypto.randomUUID();
  try {
    const { code, log } = await runBench(out, tag);
    assert.equal(code, 0, log);
    assert.deepEqual(taggedProcesses(tag), [], "processes left behind");

    const files = [...Deno.readDirSync(out)].map((e) => e.name).sort();
    // Not the standard run's latest.*, which a smoke run must never replace.
    assert.deepEqual(files, ["custom.json", "custom.svg"]);
    const [jsonName, svgName] = files;
    const result: BenchResult = JSON.parse(
      await Deno.readTextFile(`${out}/${jsonName}`),
    );

    assert.equal(result.benchmark, "umbrella");
    assert.ok(result.machine.cores > 0);
    assert.ok(result.machine.cpuModel.length > 0);
    assert.equal(result.versions.deno, Deno.version.deno);
    assert.match(result.versions.werift, /^\d+\.\d+\.\d+$/);
    assert.match(result.versions.umbrellaSource, /^[0-9a-f]{12}$/);
    assert.ok(result.media.videoPacketsPerSecond > 150);
    assert.equal(result.generators.processes, 2);
    assert.ok(result.generators.srtp.length > 0);
    assert.ok(Array.isArray(result.umbrellaStartupWarnings));

    const sweeps = new Map(result.sweeps.map((s) => [s.sweep, s]));
    assert.deepEqual([...sweeps.keys()].sort(), ["fanout", "meeting", "trunk"]);
    for (const sweep of result.sweeps) {
      assert.equal(sweep.status, "measured", `${sweep.sweep}: ${sweep.reason}`);
      assert.ok(sweep.points.length >= 1, `${sweep.sweep} has no point`);
      for (const point of sweep.points) {
        const where = `${sweep.sweep} x=${point.x}`;
        assert.ok(point.forwardedPacketsPerSecond > 0, where);
        assert.ok(point.forwardedMbitPerSecond > 0, where);
        assert.ok(point.receivedPacketsPerSecond > 0, where);
        assert.ok(point.publishedPacketsPerSecond > 0, where);
        assert.ok(point.sfuCpuCores > 0, where);
        assert.ok(point.sfuCpuMicrosPerPacket > 0, where);
        assert.ok(point.sfuCpuMicrosPerDeliveredPacket > 0, where);
        assert.ok(point.sfuCpuMillisPerMbit > 0, where);
        assert.ok(point.lossPercent >= 0 && point.lossPercent <= 100, where);
        assert.equal(point.packetsShedPerSecond, 0, `${where}: nothing shed`);
        assert.ok(point.latencyP50Ms !== null && point.latencyP50Ms > 0, where);
        assert.ok(point.latencyP99Ms! >= point.latencyP50Ms, where);
        if (sweep.sweep === "meeting") {
          assert.equal(point.probeLatencyP50Ms, null, where);
        } else {
          assert.ok(point.probeLatencyP50Ms! > 0, `${where}: probe latency`);
          assert.ok(point.probeLatencyP99Ms! >= point.probeLatencyP50Ms!);
        }
        // The SFU's own added latency, timed on the wire: every captured
        // subscriber stream matched to its publisher's.
        const wire = point.sfuLatency;
        assert.ok(
          wire,
          `${where}: no capture (${result.settings.captureUnavailable})`,
        );
        assert.equal(wire.error, null, where);
        assert.ok(
          wire.packets > 0 && wire.p50Ms! > 0,
          `${where}: ${JSON.stringify(wire)}`,
        );
        assert.ok(wire.p99Ms! >= wire.p50Ms!, where);
        assert.equal(wire.unmatchedStreams, 0, where);
        assert.equal(wire.subscribers, wire.medianBySubscriberMs.length, where);
        assert.ok(point.sfuRssBytes > 0, where);
        assert.ok(point.joinToFirstMediaMedianMs! > 0, where);
        assert.equal(point.corruptStreams, 0, where);
        assert.equal(point.stalledStreams, 0, where);
        assert.equal(point.windows, 1, where);
      }
    }
    assert.equal(result.joinBursts.length, 1);
    const [burst] = result.joinBursts;
    assert.equal(burst.sfu, "umbrella");
    assert.equal(burst.subscribers, 3);
    assert.equal(burst.allConnected, true, burst.reason ?? "");
    assert.ok(burst.secondsToAllMedia! > 0);
    assert.ok(burst.joinToFirstMediaMaxMs! >= burst.joinToFirstMediaMedianMs!);
    assert.ok(burst.joinToFirstMediaMedianMs! > 0);
    assert.ok(burst.sfuCpuCores > 0);

    const fanout = sweeps.get("fanout")!.points;
    assert.deepEqual(fanout.map((p) => p.x), [1, 2]);
    assert.equal(fanout[0].peers, 2, "a publisher and one subscriber");
    assert.ok(fanout[1].memoryPerAddedPeerBytes !== null);
    assert.equal(sweeps.get("meeting")!.points[0].peers, 2);
    for (const point of sweeps.get("trunk")!.points) {
      // One publisher's audio and video cross the link once, whatever K.
      assert.equal(point.trunk?.streams, 2);
      assert.ok(point.trunk.packetsPerSecond > 0);
      assert.ok(point.trunk.bytesPerSecondPerTrack.video > 0);
      assert.ok(point.trunk.bytesPerSecondPerTrack.audio > 0);
      assert.ok(point.trunk.crossingsPerPublishedPacket! > 0);
      assert.deepEqual(Object.keys(point.sfuCpuCoresByProcess).sort(), [
        "umbrella-A",
        "umbrella-B",
      ]);
    }

    const svg = await Deno.readTextFile(`${out}/${svgName}`);
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    for (const row of ["(a) one publisher", "(b) meeting", "(c) publisher"]) {
      assert.ok(svg.includes(row), `chart lacks row ${row}`);
    }
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("the report pairs Umbrella and Janus points by subscriber count", () => {
  const point = (x: number, micros: number, cores: number) => ({
    x,
    sfuCpuMicrosPerDeliveredPacket: micros,
    sfuCpuCores: cores,
  });
  const sweep = (sfu: "umbrella" | "janus", points: object[]) => ({
    sweep: "fanout" as const,
    sfu,
    status: "measured" as const,
    reason: "reached the largest configured point",
    points: points as BenchResult["sweeps"][number]["points"],
  });
  const umbrella = sweep("umbrella", [point(1, 90, 0.05), point(8, 30, 0.3)]);
  const janus = sweep("janus", [point(8, 20, 0.2), point(16, 19, 0.4)]);
  const rows = compareWithJanus(umbrella, janus);
  assert.deepEqual(
    rows.map((r) => [r.subscribers, r.cpuPerPacketRatio, r.cpuRatio]),
    [[8, 1.5, 1.5]],
  );
});

Deno.test("the chart and summary say why a sweep has no points", () => {
  const result = {
    startedAt: "2026-01-01T00:00:00.000Z",
    durationSeconds: 1,
    machine: {
      cpuModel: "test <cpu>",
      cores: 2,
      memoryGiB: 1,
      kernel: "6",
      loadAverage: [0, 0, 0],
    },
    versions: {
      umbrella: "0",
      umbrellaSource: "0",
      deno: "2",
      v8: "1",
      werift: "0",
      janus: null,
    },
    settings: { windowSeconds: 1, windowsPerPoint: 1 },
    generators: {
      processes: 1,
      srtp: "test",
      srtpFallback: null,
      udpFallback: null,
    },
    umbrellaStartupWarnings: [],
    media: { videoPayloadMbitPerSecond: 1.5, audioPacketsPerSecond: 50 },
    sweeps: [{
      sweep: "trunk",
      sfu: "umbrella",
      status: "not available",
      reason: "no trunk & no luck",
      points: [],
    }],
    joinBursts: [],
    janusComparison: { unavailable: "janus is not installed" },
  } as unknown as BenchResult;
  const svg = renderSvg(result);
  assert.ok(svg.includes("not available: no trunk &amp; no luck"));
  assert.ok(svg.includes("test &lt;cpu&gt;"));
  const text = renderText(result);
  assert.ok(
    text.includes("trunk on umbrella: not available; no trunk & no luck"),
  );
  assert.ok(
    text.includes("Janus comparison unavailable: janus is not installed"),
  );
});
