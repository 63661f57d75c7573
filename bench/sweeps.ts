// The sweeps: load grows point by point (peers join in addition to those
// already there) until a point shows loss over 1 %, a saturated SFU, saturated
// load generators, or the sweep's time budget runs out.
import { type MediaProfile, videoPacketsPerSecond } from "./media_source.ts";
import {
  type LoadPeer,
  measurePoint,
  type Point,
  round,
  type SfuLatency,
  type SfuUnderTest,
  stopReason,
} from "./measure.ts";
import type { Worker, WorkerPool } from "./worker_pool.ts";
import type {
  JoinResult,
  PeerLegs,
  PeerProgress,
  PeerSpec,
  WindowReport,
} from "./worker_protocol.ts";
import { cpuSeconds, rssBytes } from "./proc.ts";
import { summariseAllocations, summariseProfile } from "./profile.ts";
import { captureRtp } from "./capture.ts";
import { addedLatency } from "./wire_latency.ts";
import type { JanusProcess } from "./janus.ts";
import type { UmbrellaProcess } from "./umbrella_process.ts";

export interface SweepSettings {
  pool: WorkerPool;
  profile: MediaProfile;
  windowSeconds: number;
  windowsPerPoint: number;
  settleSeconds: number;
  /** What to profile in each SFU over a point's windows, through the V8
   * inspector (the SFU must have been started with it). */
  profiling: { cpu: boolean; allocations: boolean };
  /** Replaces settleSeconds before a sweep's first point. V8 compiles a hot
   * function to optimized code only after it has run many times, and at the
   * first point's 200 packets/s that takes seconds: measured straight after
   * the joins, 1 subscriber cost 141 µs/pkt, after 15 s 89 (Janus 89). A
   * server that has run a while is what users run. */
  warmupSeconds: number;
  /** performance.now() after which no new point is started. */
  deadlineMs: number;
  /** Seconds of loopback capture per point for the SFU's added latency
   * (bench/wire_latency.ts), or 0 where captures cannot be made. */
  captureSeconds: number;
  log: (line: string) => void;
}

export interface SweepResult {
  sweep: "fanout" | "meeting" | "trunk";
  sfu: "umbrella" | "janus";
  status: "measured" | "not available" | "failed";
  /** Why it is not available or failed, or why it stopped where it did. */
  reason: string;
  points: Point[];
}

const JOIN_TIMEOUT_BASE_MS = 30_000;
const JOIN_TIMEOUT_PER_PEER_MS = 1_000;
const JOIN_TIMEOUT_MIN_MS = 15_000;
const JOIN_PAST_DEADLINE_MS = 45_000;
const PROGRESS_POLL_MS = 250;
/** Cores taken by processes outside the bench above which a window counts
 * as disturbed, and how often such a window is measured again. */
const DISTURBED_CORES = 0.25;
const DISTURBED_RETRIES = 1;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How long joining (or then waiting for media) may take: longer for more
 * peers, but never long past the sweep's deadline, so a failing point cannot
 * hold the whole run over its time budget. */
function joinTimeout(settings: SweepSettings, peers: number): number {
  const wanted = JOIN_TIMEOUT_BASE_MS + JOIN_TIMEOUT_PER_PEER_MS * peers;
  const allowed = settings.deadlineMs + JOIN_PAST_DEADLINE_MS -
    performance.now();
  return Math.max(JOIN_TIMEOUT_MIN_MS, Math.min(wanted, allowed));
}

/** Joins peers spread over the generators; throws if any fails. */
/** A peer to join: on the generator for its index, or on a given one. */
interface JoinSpec {
  spec: PeerSpec;
  index: number;
  worker?: Worker;
}

const workerOf = (settings: SweepSettings, { index, worker }: JoinSpec) =>
  worker ?? settings.pool.of(index);

async function join(
  settings: SweepSettings,
  specs: JoinSpec[],
  concurrency?: number,
): Promise<Map<string, JoinResult>> {
  const { pool, profile } = settings;
  const byWorker = new Map(pool.workers.map((w) => [w, [] as PeerSpec[]]));
  for (const spec of specs) {
    byWorker.get(workerOf(settings, spec))!.push(spec.spec);
  }
  const timeout = joinTimeout(settings, specs.length);
  const results = (await Promise.all(
    [...byWorker].filter(([, s]) => s.length > 0).map(([worker, peers]) =>
      worker.call<JoinResult[]>(
        { op: "join", peers, profile, concurrency },
        timeout,
      )
    ),
  )).flat();
  const failed = results.filter((r) => r.error);
  if (failed.length > 0) {
    throw new Error(
      `${failed.length} of ${specs.length} peers failed to join; first: ${
        failed[0].error
      }`,
    );
  }
  return new Map(results.map((r) => [r.key, r]));
}

/** Waits until every peer receives every stream it should. */
async function waitForMedia(
  settings: SweepSettings,
  load: LoadPeer[],
  newPeers: number,
): Promise<void> {
  const deadline = performance.now() + joinTimeout(settings, newPeers);
  while (true) {
    const progress = new Map(
      (await settings.pool.all<PeerProgress[]>({ op: "progress" }, 10_000))
        .flat().map((p) => [p.key, p]),
    );
    const waiting = load.filter((peer) =>
      peer.expectTags.some((tag) => !progress.get(peer.key)?.tags.includes(tag))
    );
    if (waiting.length === 0) return;
    if (performance.now() > deadline) {
      const example = progress.get(waiting[0].key);
      const leg = example?.receiveLeg;
      throw new Error(
        `${waiting.length} of ${load.length} peers had no media on every subscribed stream in time (e.g. ${
          waiting[0].key
        } wants tags ${waiting[0].expectTags.join(",")}, has ${
          example?.tags.join(",") || "none"
        }${
          leg
            ? `; its receiving connection ${leg.state}, ${leg.srtpPackets} SRTP packets in`
            : ""
        })`,
      );
    }
    await sleep(PROGRESS_POLL_MS);
  }
}

function describe(point: Point, unit: string): string {
  const latency =
    (point.latencyP50Ms === null
      ? "-"
      : `${point.latencyP50Ms}/${point.latencyP99Ms} ms`) +
    (point.probeLatencyP50Ms === null
      ? ""
      : ` (probe ${point.probeLatencyP50Ms}/${point.probeLatencyP99Ms} ms)`) +
    (point.sfuLatency?.p50Ms == null
      ? ""
      : `, in the SFU ${point.sfuLatency.p50Ms}/${point.sfuLatency.p99Ms} ms`);
  return `${point.x} ${unit}: ${point.forwardedPacketsPerSecond} pkt/s, ${point.forwardedMbitPerSecond} Mbit/s, SFU ${
    Math.round(point.sfuCpuCores * 100)
  }% = ${point.sfuCpuMicrosPerPacket} µs/pkt, loss ${point.lossPercent}%, latency p50/p99 ${latency}, ${
    Math.round(point.memoryPerPeerBytes / 1024)
  } KiB/peer, generators ${
    point.generatorCpuCores.map((c) => `${Math.round(c * 100)}%`).join(" ")
  }, other processes ${Math.round(point.otherCpuCores * 100)}%${
    point.busiestOtherProcesses.length > 0
      ? ` (${point.busiestOtherProcesses.join(", ")})`
      : ""
  }${
    point.trunk
      ? `, trunk ${point.trunk.streams} tracks, ${point.trunk.bytesPerSecondPerTrack.video} B/s per video track, ${point.trunk.crossingsPerPublishedPacket} crossings per packet`
      : ""
  }`;
}

/** Subscribers whose streams are captured at a point: enough to see the
 * spread over the fan-out order without capturing every stream. */
const CAPTURED_SUBSCRIBERS = 12;
const CAPTURE_ATTEMPTS = 2;

/** The SFU's added latency at a point, from a capture made after its CPU
 * windows (so tcpdump's own work is not counted as the SFU's): every
 * publisher's packets in, a dozen subscribers spread over the join order
 * (the order an SFU fans out in) out. */
async function wireLatency(
  settings: SweepSettings,
  load: LoadPeer[],
): Promise<Pick<Point, "sfuLatency">> {
  const legs: Record<string, PeerLegs> = Object.assign(
    {},
    ...await settings.pool.all<Record<string, PeerLegs>>(
      { op: "legs" },
      10_000,
    ),
  );
  const sources = load.flatMap((p) => legs[p.key]?.send ?? []);
  const receivers = load.flatMap((p) =>
    p.expectTags.length > 0 ? legs[p.key]?.receive ?? [] : []
  );
  const step = Math.max(1, (receivers.length - 1) / (CAPTURED_SUBSCRIBERS - 1));
  const sinks = [
    ...new Set(
      Array.from(
        { length: Math.min(CAPTURED_SUBSCRIBERS, receivers.length) },
        (_, i) => receivers[Math.round(i * step)],
      ),
    ),
  ];
  const figures: SfuLatency = {
    p50Ms: null,
    p99Ms: null,
    packets: 0,
    subscribers: sinks.length,
    unmatchedStreams: 0,
    medianBySubscriberMs: [],
    error: null,
  };
  const ms = (value: number | null | undefined) =>
    value == null ? null : round(value, 3);
  try {
    // On a machine short of CPU (the test suite beside a smoke run) tcpdump
    // can be stopped before it has read what it should: a capture that
    // timed nothing is taken once more.
    for (let attempt = 0; attempt < CAPTURE_ATTEMPTS; attempt++) {
      const packets = await captureRtp(
        sources.map((leg) => leg.port),
        sinks.map((leg) => leg.port),
        settings.captureSeconds,
      );
      const latency = addedLatency(packets, sources, sinks);
      figures.p50Ms = ms(latency.histogram.quantile(0.5));
      figures.p99Ms = ms(latency.histogram.quantile(0.99));
      figures.packets = latency.histogram.total;
      figures.unmatchedStreams = latency.unmatchedStreams;
      figures.medianBySubscriberMs = latency.medianBySink.map(ms);
      if (figures.packets > 0) break;
    }
  } catch (error) {
    figures.error = (error as Error).message;
  }
  return { sfuLatency: figures };
}

interface Step {
  x: number;
  /** Peers to add for this point, with the tags each will receive. */
  add: () => Promise<LoadPeer[]>;
}

/** Runs points in order until one says stop; the shared loop of all sweeps. */
async function runPoints(
  settings: SweepSettings,
  sfu: SfuUnderTest,
  result: SweepResult,
  unit: string,
  steps: Step[],
): Promise<SweepResult> {
  const load: LoadPeer[] = [];
  let reason = `reached the largest configured point`;
  for (const step of steps) {
    if (performance.now() > settings.deadlineMs) {
      reason = `stopped by the time budget before ${step.x} ${unit}`;
      break;
    }
    const droppedBefore = sfu.droppedPeers?.().length ?? 0;
    try {
      const added = await step.add();
      load.push(...added);
      await waitForMedia(settings, load, added.length).catch(async (error) => {
        // Whether the SFU gave up on peers, or holds them still connecting,
        // tells a generator that stalled from an SFU that failed them.
        const dropped = sfu.droppedPeers?.().slice(droppedBefore) ?? [];
        const states = await sfu.peerStates?.().then(
          (counts) =>
            `its peers by state: ${
              Object.entries(counts).map(([state, n]) => `${state} ${n}`)
                .join(", ") || "none"
            }`,
          (error) => `its peer states unknown (${(error as Error).message})`,
        );
        const said = [
          dropped.length > 0
            ? `the SFU dropped ${dropped.length} peers meanwhile (e.g. ${
              dropped[0]
            })`
            : "",
          states ?? "",
        ].filter((part) => part !== "");
        throw said.length === 0
          ? error
          : new Error(`${(error as Error).message}; ${said.join("; ")}`);
      });
      await sleep(
        (step === steps[0] ? settings.warmupSeconds : settings.settleSeconds) *
          1000,
      );
      const measure = () => measureMedian(settings, step.x, sfu, load);
      let point = await measure();
      // The machine is shared: when other work took CPU during a window that
      // would end the sweep, the window says more about them than about the
      // SFU, so it is measured again and the least disturbed one kept.
      for (
        let retry = 0;
        retry < DISTURBED_RETRIES && stopReason(point) &&
        point.otherCpuCores > DISTURBED_CORES;
        retry++
      ) {
        settings.log(`  ${describe(point, unit)}\n  (measuring again)`);
        const again = await measure();
        if (again.otherCpuCores < point.otherCpuCores) point = again;
      }
      if (settings.captureSeconds > 0) {
        Object.assign(point, await wireLatency(settings, load));
      }
      const previous = result.points.at(-1);
      if (previous && point.peers > previous.peers) {
        point.memoryPerAddedPeerBytes = Math.round(
          (point.sfuRssBytes - previous.sfuRssBytes) /
            (point.peers - previous.peers),
        );
      }
      result.points.push(point);
      settings.log(`  ${describe(point, unit)}`);
      const stop = stopReason(point);
      if (stop) {
        reason = `stopped at ${step.x} ${unit}: ${stop}${
          point.otherCpuCores > DISTURBED_CORES
            ? ` (while other processes used ${
              point.otherCpuCores.toFixed(2)
            } cores)`
            : ""
        }`;
        break;
      }
    } catch (error) {
      reason = `stopped at ${step.x} ${unit}: ${(error as Error).message}`;
      if (result.points.length === 0) result.status = "failed";
      break;
    }
  }
  result.reason = reason;
  settings.log(`  ${reason}`);
  return result;
}

/** Measures windowsPerPoint windows and keeps the median one by CPU per
 * delivered packet, so one disturbed window does not make the point. */
async function measureMedian(
  settings: SweepSettings,
  x: number,
  sfu: SfuUnderTest,
  load: LoadPeer[],
): Promise<Point> {
  const profilers = sfu.profilers ?? [];
  const { cpu, allocations } = settings.profiling;
  await Promise.all(profilers.flatMap((p) => [
    ...cpu ? [p.session.startProfile()] : [],
    ...allocations ? [p.session.startAllocationSampling()] : [],
  ]));
  const started = performance.now();
  const windows: Point[] = [];
  for (let i = 0; i < settings.windowsPerPoint; i++) {
    windows.push(
      await measurePoint(x, sfu, settings.pool, load, settings.windowSeconds),
    );
  }
  const seconds = (performance.now() - started) / 1000;
  const profiles = cpu
    ? await Promise.all(
      profilers.map(async (p) =>
        summariseProfile(p.label, await p.session.stopProfile())
      ),
    )
    : [];
  const allocationProfiles = allocations
    ? await Promise.all(
      profilers.map(async (p) =>
        summariseAllocations(
          p.label,
          await p.session.stopAllocationSampling(),
          seconds,
        )
      ),
    )
    : [];
  const cost = (p: Point) => p.sfuCpuMicrosPerDeliveredPacket;
  windows.sort((a, b) => cost(a) - cost(b));
  const median = windows[(windows.length - 1) >> 1];
  median.windows = windows.length;
  median.profile = profiles.length > 0 ? profiles : null;
  median.allocations = allocationProfiles.length > 0
    ? allocationProfiles
    : null;
  median.sfuCpuMicrosPerDeliveredPacketRange = [
    cost(windows[0]),
    cost(windows[windows.length - 1]),
  ];
  return median;
}

export function idleRss(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + rssBytes(pid), 0);
}

/** How a 1×K fan-out reaches one SFU (or a pair linked by a trunk). */
export interface FanoutTarget {
  sfu: "umbrella" | "janus";
  sweep: "fanout" | "trunk";
  measured: SfuUnderTest;
  publisher(key: string, tag: number): PeerSpec;
  subscriber(key: string, publisher: JoinResult): PeerSpec;
}

export function umbrellaFanout(
  publishTo: UmbrellaProcess,
  subscribeTo: UmbrellaProcess,
  measured: SfuUnderTest,
  sweep: "fanout" | "trunk",
): FanoutTarget {
  return {
    sfu: "umbrella",
    sweep,
    measured,
    publisher: (key, tag) => ({
      key,
      target: "umbrella",
      wsUrl: publishTo.wsUrl,
      publishTag: tag,
      receive: false,
    }),
    subscriber: (key) => ({
      key,
      target: "umbrella",
      wsUrl: subscribeTo.wsUrl,
      receive: true,
    }),
  };
}

export function janusFanout(janus: JanusProcess, measured: SfuUnderTest) {
  return {
    sfu: "janus",
    sweep: "fanout",
    measured,
    publisher: (key: string, tag: number): PeerSpec => ({
      key,
      target: "janus-publisher",
      apiUrl: janus.apiUrl,
      mediaAddress: janus.mediaAddress,
      tag,
    }),
    subscriber: (key: string, publisher: JoinResult): PeerSpec => ({
      key,
      target: "janus-subscriber",
      apiUrl: janus.apiUrl,
      mediaAddress: janus.mediaAddress,
      feedId: publisher.feedId!,
    }),
  } satisfies FanoutTarget;
}

/** (a) One publisher (audio + video) to K subscribers. */
export async function fanoutSweep(
  settings: SweepSettings,
  target: FanoutTarget,
  subscriberCounts: number[],
): Promise<SweepResult> {
  settings.log(
    `${target.sweep} on ${target.sfu}: 1 publisher to ${
      subscriberCounts.join(", ")
    } subscribers`,
  );
  const result: SweepResult = {
    sweep: target.sweep,
    sfu: target.sfu,
    status: "measured",
    reason: "",
    points: [],
  };
  const tag = 0;
  let publisher: JoinResult | undefined;
  let joined = 0;
  const steps: Step[] = subscriberCounts.map((k) => ({
    x: k,
    add: async () => {
      const added: LoadPeer[] = [];
      if (!publisher) {
        const key = `${target.sfu}-${target.sweep}-pub`;
        publisher = (await join(settings, [{
          spec: target.publisher(key, tag),
          index: 0,
        }])).get(key)!;
        // A peer of the SFU too (for memory per peer), receiving nothing.
        added.push({
          key,
          worker: settings.pool.of(0),
          expectTags: [],
          joinedAt: k,
        });
      }
      const specs: JoinSpec[] = [];
      for (; joined < k; joined++) {
        const key = `${target.sfu}-${target.sweep}-sub${joined}`;
        // The first subscriber is the latency probe, alone in its process;
        // the others start on the generator after the publisher's.
        specs.push({
          spec: target.subscriber(key, publisher),
          index: joined + 1,
          worker: joined === 0 ? settings.pool.probe : undefined,
        });
      }
      await join(settings, specs);
      return [
        ...added,
        ...specs.map((spec) => ({
          key: spec.spec.key,
          worker: workerOf(settings, spec),
          expectTags: [tag, tag + 1],
          joinedAt: k,
        })),
      ];
    },
  }));
  return await runPoints(
    settings,
    target.measured,
    result,
    "subscribers",
    steps,
  );
}

/** How a burst of subscribers joining at once went. */
export interface JoinBurstResult {
  sfu: "umbrella" | "janus";
  subscribers: number;
  /** Whether every subscriber joined and received audio and video. */
  allConnected: boolean;
  /** From the burst's start until the last subscriber had both tracks. */
  secondsToAllMedia: number | null;
  /** Median and slowest join-to-first-media of the subscribers. */
  joinToFirstMediaMedianMs: number | null;
  joinToFirstMediaMaxMs: number | null;
  /** SFU CPU used during the burst, in cores. */
  sfuCpuCores: number;
  /** Why not all connected, when they did not. */
  reason: string | null;
}

/** (d) N subscribers of one publisher joining at once, every generator
 * starting all of its joins together: does everyone get media, and how
 * soon. */
export async function joinBurst(
  settings: SweepSettings,
  target: FanoutTarget,
  count: number,
): Promise<JoinBurstResult> {
  settings.log(
    `join burst on ${target.sfu}: ${count} subscribers of one publisher at once`,
  );
  const result: JoinBurstResult = {
    sfu: target.sfu,
    subscribers: count,
    allConnected: false,
    secondsToAllMedia: null,
    joinToFirstMediaMedianMs: null,
    joinToFirstMediaMaxMs: null,
    sfuCpuCores: 0,
    reason: null,
  };
  const pids = target.measured.processes.map((p) => p.pid);
  const cpu = () => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  try {
    const publisherKey = `${target.sfu}-burst-pub`;
    const publisher = (await join(settings, [{
      spec: target.publisher(publisherKey, 0),
      index: 0,
    }])).get(publisherKey)!;
    await sleep(1000);
    const specs = Array.from({ length: count }, (_, i) => ({
      spec: target.subscriber(`${target.sfu}-burst-sub${i}`, publisher),
      index: i + 1,
    }));
    const cpuBefore = cpu();
    const started = performance.now();
    await join(settings, specs, count);
    const load = specs.map(({ spec, index }) => ({
      key: spec.key,
      worker: settings.pool.of(index),
      expectTags: [0, 1],
      joinedAt: count,
    }));
    await waitForMedia(settings, load, count);
    const seconds = (performance.now() - started) / 1000;
    result.secondsToAllMedia = Math.round(seconds * 100) / 100;
    result.sfuCpuCores = Math.round((cpu() - cpuBefore) / seconds * 1000) /
      1000;
    result.allConnected = true;
    const reports = (await settings.pool.all<WindowReport>(
      { op: "report" },
      30_000,
    )).flatMap((r) => r.peers);
    const firstMedia = reports.filter((r) => r.key.includes("-burst-sub"))
      .flatMap((r) =>
        r.joinToFirstMediaMs === undefined ? [] : [r.joinToFirstMediaMs]
      ).sort((a, b) => a - b);
    if (firstMedia.length > 0) {
      result.joinToFirstMediaMedianMs = Math.round(
        firstMedia[(firstMedia.length - 1) >> 1],
      );
      result.joinToFirstMediaMaxMs = Math.round(firstMedia.at(-1)!);
    }
  } catch (error) {
    result.reason = (error as Error).message;
  }
  settings.log(
    result.allConnected
      ? `  all ${count} had audio and video after ${result.secondsToAllMedia} s (join to first media: median ${result.joinToFirstMediaMedianMs} ms, slowest ${result.joinToFirstMediaMaxMs} ms), SFU ${
        Math.round(result.sfuCpuCores * 100)
      }% of a core meanwhile`
      : `  not all connected: ${result.reason}`,
  );
  return result;
}

/** (b) P participants, each publishing audio + video and receiving all others. */
export async function meetingSweep(
  settings: SweepSettings,
  umbrella: UmbrellaProcess,
  measured: SfuUnderTest,
  participantCounts: number[],
): Promise<SweepResult> {
  settings.log(
    `meeting on umbrella: ${participantCounts.join(", ")} participants`,
  );
  const result: SweepResult = {
    sweep: "meeting",
    sfu: "umbrella",
    status: "measured",
    reason: "",
    points: [],
  };
  const tagOf = (participant: number) => participant * 2;
  const participants: LoadPeer[] = [];
  const steps: Step[] = participantCounts.map((p) => ({
    x: p,
    add: async () => {
      const specs = [];
      for (let i = participants.length + specs.length; i < p; i++) {
        specs.push({
          spec: {
            key: `umbrella-meeting-p${i}`,
            target: "umbrella",
            wsUrl: umbrella.wsUrl,
            publishTag: tagOf(i),
            receive: true,
          } satisfies PeerSpec,
          index: i,
        });
      }
      await join(settings, specs);
      const added = specs.map(({ spec, index }) => ({
        key: spec.key,
        worker: settings.pool.of(index),
        expectTags: [] as number[],
        joinedAt: p,
      }));
      participants.push(...added);
      // Everyone (old and new) now expects everyone else's two tracks.
      participants.forEach((peer, i) => {
        peer.expectTags = participants.flatMap((_, j) =>
          j === i ? [] : [tagOf(j), tagOf(j) + 1]
        );
      });
      return added;
    },
  }));
  return await runPoints(settings, measured, result, "participants", steps);
}

/** Packets per second one subscriber of one publisher should receive. */
export function packetsPerSubscriber(profile: MediaProfile): number {
  return videoPacketsPerSecond(profile) + profile.audioPacketsPerSecond;
}
