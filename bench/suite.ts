// The whole benchmark: starts the SFUs and the load generators, runs the
// chosen sweeps within a time budget, and gathers everything a report needs.
import { fileURLToPath } from "node:url";
import { VERSION } from "../server/version.ts";
import { type MediaProfile, videoPacketsPerSecond } from "./media_source.ts";
import type { SfuUnderTest } from "./measure.ts";
import { initClockTicks, type MachineInfo, machineInfo } from "./proc.ts";
import { type JanusProcess, janusVersion, startJanus } from "./janus.ts";
import { captureUnavailable } from "./capture.ts";
import {
  fanoutSweep,
  type FanoutTarget,
  idleRss,
  janusFanout,
  joinBurst,
  type JoinBurstResult,
  meetingSweep,
  type SweepResult,
  type SweepSettings,
  umbrellaFanout,
} from "./sweeps.ts";
import { startUmbrella, type UmbrellaProcess } from "./umbrella_process.ts";
import { WorkerPool } from "./worker_pool.ts";
import type { GeneratorInfo } from "./worker_protocol.ts";

export type SweepName = "fanout" | "meeting" | "trunk" | "joins";
export const SWEEP_NAMES: SweepName[] = ["fanout", "meeting", "trunk", "joins"];

export interface BenchOptions {
  only: SweepName[];
  compareJanus: boolean;
  /** Where Janus gathers ICE: set inside the bench's private namespace. */
  janusMediaAddress?: string;
  /** Why Janus cannot be compared here, when that is known up front. */
  janusUnavailable?: string;
  /** Profile each Umbrella's CPU over every point's windows. */
  cpuProfile: boolean;
  allocationProfile: boolean;
  workers: number;
  windowSeconds: number;
  /** Windows measured per point; the point reports the median one. */
  windowsPerPoint: number;
  settleSeconds: number;
  warmupSeconds: number;
  subscriberCounts: number[];
  participantCounts: number[];
  /** Subscribers that join at once in the join burst. */
  burstSize: number;
  /** Wall-clock budget for all sweeps together. */
  budgetSeconds: number;
  /** Loopback capture per point for the SFU's added latency; 0 for none. */
  captureSeconds: number;
  media: MediaProfile;
  log: (line: string) => void;
}

/** The figures compared at one load, each as [Umbrella, Janus]; the full
 * points are in the two fan-out sweeps. */
export interface ComparisonRow {
  subscribers: number;
  sfuCpuMicrosPerDeliveredPacket: [number, number];
  sfuCpuCores: [number, number];
  lossPercent: [number, number];
  latencyP50Ms: [number | null, number | null];
  latencyP99Ms: [number | null, number | null];
  /** The idle latency probe's (see Point). */
  probeLatencyP50Ms: [number | null, number | null];
  probeLatencyP99Ms: [number | null, number | null];
  /** The SFU's own, timed on the wire (see Point.sfuLatency). */
  sfuLatencyP50Ms: [number | null, number | null];
  sfuLatencyP99Ms: [number | null, number | null];
  memoryPerPeerBytes: [number, number];
  joinToFirstMediaMedianMs: [number | null, number | null];
  /** Umbrella's CPU per packet delivered to a subscriber over Janus's
   * (below 1: Umbrella is cheaper). */
  cpuPerPacketRatio: number | null;
  /** Umbrella's CPU over Janus's at the same load. */
  cpuRatio: number | null;
}

export interface BenchResult {
  benchmark: "umbrella";
  formatVersion: 1;
  startedAt: string;
  durationSeconds: number;
  machine: MachineInfo;
  versions: {
    umbrella: string;
    /** See sourceHash. */
    umbrellaSource: string;
    deno: string;
    v8: string;
    werift: string;
    janus: string | null;
  };
  settings: Omit<BenchOptions, "log" | "media"> & {
    /** Why captures could not be made, if they could not. */
    captureUnavailable: string | null;
  };
  generators: GeneratorInfo & { processes: number };
  /** Warnings the first Umbrella logged at start (e.g. a slow fallback). */
  umbrellaStartupWarnings: string[];
  media: MediaProfile & {
    videoPacketsPerSecond: number;
    videoPayloadMbitPerSecond: number;
  };
  sweeps: SweepResult[];
  joinBursts: JoinBurstResult[];
  janusComparison: ComparisonRow[] | { unavailable: string } | null;
}

/** Share of the remaining budget each sweep gets when it starts. */
const BUDGET_WEIGHTS = {
  fanout: 3,
  janus: 3,
  meeting: 3,
  trunk: 3,
  joins: 1,
};
const TRUNK_LINK_TIMEOUT_MS = 10_000;

/** A short hash of the SFU's source (main.ts, server/, media/, proto/), so a
 * result names the exact code it measured even between version bumps. */
async function sourceHash(): Promise<string> {
  const root = fileURLToPath(new URL("../", import.meta.url));
  const files: string[] = [`${root}main.ts`];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile && /\.(ts|proto)$/.test(entry.name)) {
        files.push(path);
      }
    }
  };
  for (const dir of ["server", "media", "proto"]) await walk(`${root}${dir}`);
  files.sort();
  const encoder = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const file of files) {
    parts.push(encoder.encode(`${file.slice(root.length)}\0`));
    parts.push(await Deno.readFile(file));
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return [...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

async function weriftVersion(): Promise<string> {
  const config = JSON.parse(
    await Deno.readTextFile(
      fileURLToPath(new URL("../deno.json", import.meta.url)),
    ),
  );
  return String(config.imports?.werift ?? "unknown").replace(
    /^npm:werift@/,
    "",
  );
}

const ratio = (a: number, b: number) =>
  b > 0 ? Math.round(a / b * 100) / 100 : null;

export function compareWithJanus(
  umbrella: SweepResult,
  janus: SweepResult,
): ComparisonRow[] {
  return umbrella.points.flatMap((u) => {
    const j = janus.points.find((p) => p.x === u.x);
    return j
      ? [{
        subscribers: u.x,
        sfuCpuMicrosPerDeliveredPacket: [
          u.sfuCpuMicrosPerDeliveredPacket,
          j.sfuCpuMicrosPerDeliveredPacket,
        ],
        sfuCpuCores: [u.sfuCpuCores, j.sfuCpuCores],
        lossPercent: [u.lossPercent, j.lossPercent],
        latencyP50Ms: [u.latencyP50Ms, j.latencyP50Ms],
        latencyP99Ms: [u.latencyP99Ms, j.latencyP99Ms],
        probeLatencyP50Ms: [u.probeLatencyP50Ms, j.probeLatencyP50Ms],
        probeLatencyP99Ms: [u.probeLatencyP99Ms, j.probeLatencyP99Ms],
        sfuLatencyP50Ms: [
          u.sfuLatency?.p50Ms ?? null,
          j.sfuLatency?.p50Ms ?? null,
        ],
        sfuLatencyP99Ms: [
          u.sfuLatency?.p99Ms ?? null,
          j.sfuLatency?.p99Ms ?? null,
        ],
        memoryPerPeerBytes: [u.memoryPerPeerBytes, j.memoryPerPeerBytes],
        joinToFirstMediaMedianMs: [
          u.joinToFirstMediaMedianMs,
          j.joinToFirstMediaMedianMs,
        ],
        cpuPerPacketRatio: ratio(
          u.sfuCpuMicrosPerDeliveredPacket,
          j.sfuCpuMicrosPerDeliveredPacket,
        ),
        cpuRatio: ratio(u.sfuCpuCores, j.sfuCpuCores),
      }]
      : [];
  });
}

export async function runBench(options: BenchOptions): Promise<BenchResult> {
  await initClockTicks();
  const started = performance.now();
  const deadline = started + options.budgetSeconds * 1000;
  const log = options.log;
  const janus = options.compareJanus ? await janusVersion() : undefined;
  const captureUnavailableWhy = options.captureSeconds > 0
    ? await captureUnavailable()
    : undefined;
  if (captureUnavailableWhy) {
    log(`bench: no added latency from captures: ${captureUnavailableWhy}`);
  }
  const captureSeconds = captureUnavailableWhy ? 0 : options.captureSeconds;
  const result: BenchResult = {
    benchmark: "umbrella",
    formatVersion: 1,
    startedAt: new Date().toISOString(),
    durationSeconds: 0,
    machine: machineInfo(),
    versions: {
      umbrella: VERSION,
      umbrellaSource: await sourceHash(),
      deno: Deno.version.deno,
      v8: Deno.version.v8,
      werift: await weriftVersion(),
      janus: janus && "version" in janus ? janus.version : null,
    },
    settings: {
      only: options.only,
      compareJanus: options.compareJanus,
      janusMediaAddress: options.janusMediaAddress,
      janusUnavailable: options.janusUnavailable,
      cpuProfile: options.cpuProfile,
      allocationProfile: options.allocationProfile,
      workers: options.workers,
      windowSeconds: options.windowSeconds,
      windowsPerPoint: options.windowsPerPoint,
      settleSeconds: options.settleSeconds,
      warmupSeconds: options.warmupSeconds,
      subscriberCounts: options.subscriberCounts,
      participantCounts: options.participantCounts,
      burstSize: options.burstSize,
      budgetSeconds: options.budgetSeconds,
      captureSeconds,
      captureUnavailable: captureUnavailableWhy ?? null,
    },
    media: {
      ...options.media,
      videoPacketsPerSecond: Math.round(videoPacketsPerSecond(options.media)),
      videoPayloadMbitPerSecond: Math.round(
        videoPacketsPerSecond(options.media) *
          options.media.videoPacketBytes * 8 / 1e4,
      ) / 100,
    },
    generators: {
      processes: options.workers,
      srtp: "",
      srtpFallback: null,
      udpFallback: null,
    },
    umbrellaStartupWarnings: [],
    sweeps: [],
    joinBursts: [],
    janusComparison: null,
  };
  const planned = [
    ...options.only.includes("fanout") ? ["fanout"] : [],
    ...options.only.includes("fanout") && options.compareJanus ? ["janus"] : [],
    ...options.only.includes("meeting") ? ["meeting"] : [],
    ...options.only.includes("trunk") ? ["trunk"] : [],
    ...options.only.includes("joins") ? ["joins"] : [],
  ] as (keyof typeof BUDGET_WEIGHTS)[];
  const settingsFor = (sweep: keyof typeof BUDGET_WEIGHTS): SweepSettings => {
    const remaining = planned.slice(planned.indexOf(sweep));
    const weights = remaining.reduce((s, n) => s + BUDGET_WEIGHTS[n], 0);
    const now = performance.now();
    return {
      pool,
      profile: options.media,
      windowSeconds: options.windowSeconds,
      windowsPerPoint: options.windowsPerPoint,
      settleSeconds: options.settleSeconds,
      warmupSeconds: options.warmupSeconds,
      profiling: {
        cpu: options.cpuProfile,
        allocations: options.allocationProfile,
      },
      captureSeconds,
      deadlineMs: now +
        Math.max(0, deadline - now) * BUDGET_WEIGHTS[sweep] / weights,
      log,
    };
  };
  const umbrellaUnderTest = async (
    processes: UmbrellaProcess[],
  ): Promise<SfuUnderTest> => {
    await new Promise((r) => setTimeout(r, 1000)); // let start-up settle
    const [first, last] = [processes[0], processes[processes.length - 1]];
    return {
      processes: processes.map((p, i) => ({
        label: processes.length > 1 ? `umbrella-${"AB"[i]}` : "umbrella",
        pid: p.pid,
      })),
      // With a trunk, what reaches the subscribers leaves the last node.
      forwarded: () => last.forwarded(),
      // The first node's only subscriber is then the trunk to the last.
      link: processes.length > 1
        ? async () => {
          const metrics = await first.metrics();
          const of = (kind: string) => ({
            packets:
              metrics.get(`umbrella_packets_out_total{kind="${kind}"}`) ?? 0,
            bytes: metrics.get(`umbrella_bytes_out_total{kind="${kind}"}`) ??
              0,
            streams: metrics.get(`umbrella_subscriptions{kind="${kind}"}`) ??
              0,
          });
          return { audio: of("audio"), video: of("video") };
        }
        : undefined,
      idleRssBytes: idleRss(processes.map((p) => p.pid)),
      droppedPeers: () => processes.flatMap((p) => p.droppedPeers()),
      peerStates: () => last.peerStates(),
      profilers: processes.flatMap((p, i) =>
        p.inspector
          ? [{
            label: processes.length > 1 ? `umbrella-${"AB"[i]}` : "umbrella",
            session: p.inspector,
          }]
          : []
      ),
    };
  };

  log(
    `umbrella bench: ${result.machine.cpuModel}, ${result.machine.cores} cores, deno ${result.versions.deno}, werift ${result.versions.werift}`,
  );
  const pool = new WorkerPool(options.workers);
  const closePeers = () => pool.all({ op: "close" }, 60_000);
  const noteWarnings = (umbrella: UmbrellaProcess) => {
    if (result.umbrellaStartupWarnings.length > 0) return;
    result.umbrellaStartupWarnings = umbrella.startupLog.filter((line) =>
      /"level":\s*"(warn|error)"/.test(line)
    );
  };
  try {
    const [info] = await pool.all<GeneratorInfo>({ op: "info" }, 30_000);
    result.generators = { processes: options.workers, ...info };
    log(
      `load generators: ${options.workers} processes, SRTP ${info.srtp}, UDP ${
        info.udpFallback ? `node:dgram (${info.udpFallback})` : "sendto"
      }`,
    );
    if (planned.includes("fanout")) {
      const umbrella = await startUmbrella({
        inspect: options.cpuProfile || options.allocationProfile,
      });
      noteWarnings(umbrella);
      let fanout: SweepResult;
      try {
        fanout = await fanoutSweep(
          settingsFor("fanout"),
          umbrellaFanout(
            umbrella,
            umbrella,
            await umbrellaUnderTest([umbrella]),
            "fanout",
          ),
          options.subscriberCounts,
        );
      } finally {
        await closePeers();
        await umbrella.stop();
      }
      result.sweeps.push(fanout);
      if (planned.includes("janus")) {
        result.janusComparison = await runJanus(fanout);
      }
    }
    if (planned.includes("meeting")) {
      const umbrella = await startUmbrella({
        inspect: options.cpuProfile || options.allocationProfile,
      });
      noteWarnings(umbrella);
      try {
        result.sweeps.push(
          await meetingSweep(
            settingsFor("meeting"),
            umbrella,
            await umbrellaUnderTest([umbrella]),
            options.participantCounts,
          ),
        );
      } finally {
        await closePeers();
        await umbrella.stop();
      }
    }
    if (planned.includes("trunk")) result.sweeps.push(await runTrunk());
    if (planned.includes("joins")) await runJoinBursts();
  } finally {
    await pool.stop();
  }
  result.durationSeconds = Math.round((performance.now() - started) / 1000);
  return result;

  async function runJanus(
    fanout: SweepResult,
  ): Promise<ComparisonRow[] | { unavailable: string }> {
    if (!janus || "unavailable" in janus) {
      return { unavailable: janus?.unavailable ?? "not asked for" };
    }
    if (!options.janusMediaAddress) {
      return {
        unavailable: options.janusUnavailable ??
          "Janus needs a non-loopback address, which only the bench's private network namespace provides (run through bench/run.ts)",
      };
    }
    // The same loads as Umbrella, so points pair up, and on past where
    // Umbrella stopped while Janus keeps up, to show where Janus stops.
    if (fanout.points.length === 0) {
      return { unavailable: "Umbrella's fan-out measured no point to compare" };
    }
    let server;
    try {
      server = await startJanus(options.janusMediaAddress);
    } catch (error) {
      return {
        unavailable: `Janus did not start: ${(error as Error).message}`,
      };
    }
    let sweep: SweepResult;
    try {
      sweep = await fanoutSweep(
        settingsFor("janus"),
        await janusUnderTest(server),
        options.subscriberCounts,
      );
    } finally {
      await closePeers();
      await server.stop();
    }
    result.sweeps.push(sweep);
    if (sweep.points.length === 0) {
      return { unavailable: `Janus measured no point: ${sweep.reason}` };
    }
    return compareWithJanus(fanout, sweep);
  }

  /** Janus as a fan-out target, once it has settled after start-up. */
  async function janusUnderTest(server: JanusProcess): Promise<FanoutTarget> {
    await new Promise((r) => setTimeout(r, 1000));
    return janusFanout(server, {
      processes: [{ label: "janus", pid: server.pid }],
      idleRssBytes: idleRss([server.pid]),
    });
  }

  /** (d) A burst of joins on a fresh Umbrella, and on Janus if compared. */
  async function runJoinBursts(): Promise<void> {
    const umbrella = await startUmbrella();
    try {
      const measured = await umbrellaUnderTest([umbrella]);
      result.joinBursts.push(
        await joinBurst(
          settingsFor("joins"),
          umbrellaFanout(umbrella, umbrella, measured, "fanout"),
          options.burstSize,
        ),
      );
    } finally {
      await closePeers();
      await umbrella.stop();
    }
    if (
      !options.compareJanus || !janus || "unavailable" in janus ||
      !options.janusMediaAddress
    ) return;
    const server = await startJanus(options.janusMediaAddress);
    try {
      result.joinBursts.push(
        await joinBurst(
          settingsFor("joins"),
          await janusUnderTest(server),
          options.burstSize,
        ),
      );
    } finally {
      await closePeers();
      await server.stop();
    }
  }

  /** (c) A publisher on node A, subscribers on node B, A and B trunked. */
  async function runTrunk(): Promise<SweepResult> {
    const notAvailable = (reason: string): SweepResult => {
      log(`trunk: not available yet: ${reason}`);
      return {
        sweep: "trunk",
        sfu: "umbrella",
        status: "not available",
        reason,
        points: [],
      };
    };
    const nodeA = await startUmbrella({
      name: "bench-A",
      inspect: options.cpuProfile || options.allocationProfile,
    });
    let nodeB: UmbrellaProcess | undefined;
    try {
      try {
        nodeB = await startUmbrella({
          name: "bench-B",
          inspect: options.cpuProfile || options.allocationProfile,
          config: { trunks: [nodeA.wsUrl] },
        });
      } catch (error) {
        return notAvailable(
          `node B did not start with a trunk to node A: ${
            (error as Error).message.split("\n")[0]
          }`,
        );
      }
      const linkDeadline = performance.now() + TRUNK_LINK_TIMEOUT_MS;
      const linked = async () =>
        await nodeA.metric('umbrella_peers{kind="node"}') > 0 ||
        await nodeB!.metric('umbrella_peers{kind="node"}') > 0;
      while (!(await linked())) {
        if (performance.now() > linkDeadline) {
          return notAvailable(
            `node B was configured with a trunk to node A, but neither node counted a node peer within ${
              TRUNK_LINK_TIMEOUT_MS / 1000
            } s: trunking is not implemented in this build`,
          );
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      try {
        return await fanoutSweep(
          settingsFor("trunk"),
          umbrellaFanout(
            nodeA,
            nodeB,
            await umbrellaUnderTest([nodeA, nodeB]),
            "trunk",
          ),
          options.subscriberCounts,
        );
      } finally {
        await closePeers();
      }
    } finally {
      await nodeB?.stop();
      await nodeA.stop();
    }
  }
}
