// One measurement point: with the load in place, a window of SFU CPU time,
// forwarded packets and subscriber-side reception, turned into the figures
// the report shows. Also the rule that ends a sweep.
import type { Worker, WorkerPool } from "./worker_pool.ts";
import type { Forwarded } from "./umbrella_process.ts";
import type { InspectorSession } from "./inspector.ts";
import type { AllocationSummary, ProfileSummary } from "./profile.ts";
import {
  allProcesses,
  cpuSecondsBetween,
  machineCpu,
  rssBytes,
  threadCpu,
} from "./proc.ts";
import { LatencyHistogram } from "./receive_stats.ts";
import type { WindowReport } from "./worker_protocol.ts";

/** What crossed a trunk between two nodes, as the sending node counts it:
 * packets and payload bytes by media kind, and the streams it forwards. */
export type LinkCounters = Record<
  "audio" | "video",
  Forwarded & { streams: number }
>;

/** An SFU (one or more processes) whose cost is being measured. */
export interface SfuUnderTest {
  processes: { label: string; pid: number }[];
  /** Server-side forwarded counters; absent for SFUs without them (Janus). */
  forwarded?: () => Promise<Forwarded>;
  /** For two trunked nodes: what the first sends the second over the link. */
  link?: () => Promise<LinkCounters>;
  /** RSS of all processes with no peers connected. */
  idleRssBytes: number;
  /** Why the SFU dropped each peer it dropped so far, where it says. */
  droppedPeers?: () => string[];
  /** Its peers by connection state, where it says. */
  peerStates?: () => Promise<Record<string, number>>;
  /** Inspectors of the processes to profile over each point's windows. */
  profilers?: { label: string; session: InspectorSession }[];
}

/** From a publisher's packet entering the SFU to each copy leaving it, as
 * a capture on the loopback interface timed them (through both nodes and
 * the link, for a trunk). */
export interface SfuLatency {
  p50Ms: number | null;
  p99Ms: number | null;
  /** Forwarded packets matched to their source and timed. */
  packets: number;
  /** Subscribers captured, spread over the join order. */
  subscribers: number;
  /** Captured subscriber streams whose source could not be told. */
  unmatchedStreams: number;
  /** Each captured subscriber's median, first joined first. */
  medianBySubscriberMs: (number | null)[];
  /** Why the capture failed, if it did. */
  error: string | null;
}

export interface TrunkFigures {
  /** Tracks forwarded over the link (each should cross once, whatever K). */
  streams: number;
  packetsPerSecond: number;
  /** RTP payload; SRTP, RTP, UDP and IP headers add about 50 bytes a packet. */
  mbitPerSecond: number;
  /** Payload bytes per second on the link for one audio and one video track. */
  bytesPerSecondPerTrack: { audio: number; video: number };
  /** Link packets over published packets: 1 means every packet crossed the
   * link once, however many subscribers the far node has. */
  crossingsPerPublishedPacket: number | null;
}

/** A peer the load consists of, and which tags it should be receiving. */
export interface LoadPeer {
  key: string;
  worker: Worker;
  expectTags: number[];
  /** The point (x value) this peer joined for. */
  joinedAt: number;
}

export interface Point {
  /** Subscribers (fan-out) or participants (meeting). */
  x: number;
  peers: number;
  windowSeconds: number;
  /** Windows measured; the figures are those of the median one. */
  windows: number;
  /** Lowest and highest sfuCpuMicrosPerDeliveredPacket over the windows. */
  sfuCpuMicrosPerDeliveredPacketRange: [number, number];
  /** Server counters for Umbrella, packets arriving at subscribers for Janus. */
  forwardedFrom: "sfu-metrics" | "subscribers";
  forwardedPacketsPerSecond: number;
  /** RTP payload megabits per second. */
  forwardedMbitPerSecond: number;
  receivedPacketsPerSecond: number;
  /** Packets the publishers sent per second (all tracks). */
  publishedPacketsPerSecond: number;
  /** Fraction of one core (all SFU processes together). */
  sfuCpuCores: number;
  sfuCpuCoresByProcess: Record<string, number>;
  sfuCpuMicrosPerPacket: number;
  /** SFU CPU per packet that reached a subscriber: the figure compared
   * between SFUs, since it needs no counters inside the SFU. */
  sfuCpuMicrosPerDeliveredPacket: number;
  /** CPU milliseconds per forwarded megabit (= cores per Gbit/s). */
  sfuCpuMillisPerMbit: number;
  lossPercent: number;
  /** Packets the SFU chose not to send to shed load (overload protection),
   * per second; null for an SFU that does not count them (Janus). */
  packetsShedPerSecond: number | null;
  /** Subscribed streams that delivered nothing in the window. */
  stalledStreams: number;
  /** Over every subscriber, so it includes the load generators' own delay
   * in serving dozens of peers each. */
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  /** The first subscriber's, alone in an idle process (fan-out and trunk
   * sweeps): the SFU's added latency without the generators' share. */
  probeLatencyP50Ms: number | null;
  probeLatencyP99Ms: number | null;
  /** The SFU's own added latency, from a loopback capture after the
   * windows (bench/wire_latency.ts); absent where captures cannot be made. */
  sfuLatency?: SfuLatency;
  sfuRssBytes: number;
  /** SFU memory above its idle size, over all peers. */
  memoryPerPeerBytes: number;
  /** SFU memory growth since the previous point over the peers that joined
   * for this one (null at the first point). */
  memoryPerAddedPeerBytes: number | null;
  joinToFirstMediaMedianMs: number | null;
  joinToFirstMediaMaxMs: number | null;
  /** Fraction of one core per load-generator process. */
  generatorCpuCores: number[];
  /** Fraction of the whole machine busy (everyone's processes). */
  machineBusy: number;
  /** Cores used by the bench itself: SFU, generators and coordinator. */
  benchCpuCores: number;
  /** Cores used by processes that are not the bench's (other work on the
   * machine, which disturbs the measurement). */
  otherCpuCores: number;
  /** The other processes that used the most CPU, e.g. "chromium 40%". */
  busiestOtherProcesses: string[];
  /** Cores the hypervisor gave to other machines (VMs only). */
  stealCores: number;
  trunk: TrunkFigures | null;
  /** Where each SFU process's main thread spent the point's windows, when
   * profiling. */
  profile: ProfileSummary[] | null;
  /** What each SFU process allocated over the point's windows, when
   * profiling allocations. */
  allocations: AllocationSummary[] | null;
  /** Payloads that arrived altered (should be none). */
  corruptStreams: number;
  notices: string[];
}

const REPORT_TIMEOUT_MS = 30_000;

/** Above these a point is no longer a clean measurement. */
export const LIMITS = {
  lossPercent: 1,
  sfuCores: 0.9,
  generatorCores: 0.9,
  /** Share of all cores the bench's own processes may use together. */
  benchShare: 0.95,
};

export const round = (value: number, digits = 2) => {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
};

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2
    ? sorted[middle]
    : (sorted[middle - 1] + sorted[middle]) / 2;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function measurePoint(
  x: number,
  sfu: SfuUnderTest,
  pool: WorkerPool,
  load: LoadPeer[],
  windowSeconds: number,
): Promise<Point> {
  const marks = await pool.all<{ sent: Record<number, number> }>(
    { op: "mark" },
    REPORT_TIMEOUT_MS,
  );
  const workersStart = performance.now();
  const [forwardedStart, linkStart] = await Promise.all([
    sfu.forwarded?.(),
    sfu.link?.(),
  ]);
  const sfuStart = performance.now();
  const cpuStart = sfu.processes.map((p) => threadCpu(p.pid));
  const generatorStart = pool.workers.map((w) => threadCpu(w.pid));
  const selfStart = threadCpu(Deno.pid);
  const machineStart = machineCpu();
  const processesStart = allProcesses();

  await sleep(windowSeconds * 1000);

  const [forwardedEnd, linkEnd] = await Promise.all([
    sfu.forwarded?.(),
    sfu.link?.(),
  ]);
  const sfuSeconds = (performance.now() - sfuStart) / 1000;
  const cpuEnd = sfu.processes.map((p) => threadCpu(p.pid));
  const generatorEnd = pool.workers.map((w) => threadCpu(w.pid));
  const selfEnd = threadCpu(Deno.pid);
  const machineEnd = machineCpu();
  const processesEnd = allProcesses();
  const reports = await pool.all<WindowReport>(
    { op: "report" },
    REPORT_TIMEOUT_MS,
  );
  const workerSeconds = (performance.now() - workersStart) / 1000;

  const sentAtMark: Record<number, number> = Object.assign(
    {},
    ...marks.map((m) => m.sent),
  );
  const sentAtEnd: Record<number, number> = Object.assign(
    {},
    ...reports.map((r) => r.sent),
  );
  const latency = new LatencyHistogram();
  const peerReports = new Map(
    reports.flatMap((r) => r.peers).map((p) => [p.key, p]),
  );
  for (const report of reports) latency.addSparse(report.latency);
  const probeLatency = new LatencyHistogram();
  const probeReport = reports[pool.workers.indexOf(pool.probe)];
  if (probeReport.peers.length > 0) probeLatency.addSparse(probeReport.latency);

  let expected = 0;
  let lost = 0;
  let received = 0;
  let receivedBytes = 0;
  let stalled = 0;
  let corrupt = 0;
  const firstMedia: number[] = [];
  const notices = new Set<string>();
  for (const peer of load) {
    const report = peerReports.get(peer.key);
    for (const notice of report?.notices ?? []) notices.add(notice);
    if (peer.joinedAt === x && report?.joinToFirstMediaMs !== undefined) {
      firstMedia.push(report.joinToFirstMediaMs);
    }
    for (const tag of peer.expectTags) {
      const stream = report?.streams.find((s) => s.tag === tag);
      if (stream && !stream.intact) corrupt++;
      if (stream && stream.received > 0) {
        expected += Math.max(stream.expected, stream.received);
        lost += Math.max(0, stream.expected - stream.received);
        received += stream.received;
        receivedBytes += stream.receivedBytes;
      } else {
        const sent = (sentAtEnd[tag] ?? 0) - (sentAtMark[tag] ?? 0);
        stalled++;
        expected += sent;
        lost += sent;
      }
    }
  }

  const cpuByProcess: Record<string, number> = {};
  let cpu = 0;
  sfu.processes.forEach((p, i) => {
    const used = cpuSecondsBetween(cpuStart[i], cpuEnd[i]);
    cpu += used;
    cpuByProcess[p.label] = round(used / sfuSeconds, 3);
  });
  let packets: number;
  let bytes: number;
  let seconds: number;
  if (forwardedStart && forwardedEnd) {
    packets = forwardedEnd.packets - forwardedStart.packets;
    bytes = forwardedEnd.bytes - forwardedStart.bytes;
    seconds = sfuSeconds;
  } else {
    packets = received;
    bytes = receivedBytes;
    seconds = workerSeconds;
  }
  const megabits = bytes * 8 / 1e6;
  const rss = sfu.processes.reduce((sum, p) => sum + rssBytes(p.pid), 0);
  const peers = load.length;
  const generatorCores = generatorEnd.map((end, i) =>
    cpuSecondsBetween(generatorStart[i], end) / sfuSeconds
  );
  const benchCores = cpu / sfuSeconds +
    generatorCores.reduce((sum, c) => sum + c, 0) +
    cpuSecondsBetween(selfStart, selfEnd) / sfuSeconds;
  const machineTotal = machineEnd.total - machineStart.total;
  const machineShare = (machineEnd.busy - machineStart.busy) / machineTotal;
  const ours = new Set([
    Deno.pid,
    ...sfu.processes.map((p) => p.pid),
    ...pool.workers.map((w) => w.pid),
  ]);
  const others = [...processesEnd]
    .filter(([pid]) => !ours.has(pid))
    .map(([pid, { name, cpu }]) => ({
      name,
      cores: (cpu - (processesStart.get(pid)?.cpu ?? 0)) / sfuSeconds,
    }))
    .filter((p) => p.cores >= 0.05)
    .sort((a, b) => b.cores - a.cores)
    .slice(0, 3);
  const published = Object.entries(sentAtEnd).reduce(
    (sum, [tag, sent]) => sum + sent - (sentAtMark[Number(tag)] ?? 0),
    0,
  );
  const perDelivered = received > 0
    ? round(cpu / sfuSeconds * workerSeconds * 1e6 / received, 1)
    : 0;
  return {
    x,
    peers,
    windowSeconds: round(sfuSeconds),
    windows: 1,
    sfuCpuMicrosPerDeliveredPacketRange: [perDelivered, perDelivered],
    forwardedFrom: forwardedStart ? "sfu-metrics" : "subscribers",
    forwardedPacketsPerSecond: Math.round(packets / seconds),
    forwardedMbitPerSecond: round(megabits / seconds),
    receivedPacketsPerSecond: Math.round(received / workerSeconds),
    publishedPacketsPerSecond: Math.round(published / workerSeconds),
    sfuCpuCores: round(cpu / sfuSeconds, 3),
    sfuCpuCoresByProcess: cpuByProcess,
    sfuCpuMicrosPerPacket: packets > 0 ? round(cpu * 1e6 / packets, 1) : 0,
    sfuCpuMicrosPerDeliveredPacket: perDelivered,
    sfuCpuMillisPerMbit: megabits > 0 ? round(cpu * 1000 / megabits, 2) : 0,
    lossPercent: expected > 0 ? round(lost / expected * 100, 3) : 0,
    packetsShedPerSecond: forwardedStart?.shed !== undefined &&
        forwardedEnd?.shed !== undefined
      ? Math.round((forwardedEnd.shed - forwardedStart.shed) / sfuSeconds)
      : null,
    stalledStreams: stalled,
    latencyP50Ms: nullableRound(latency.quantile(0.5)),
    latencyP99Ms: nullableRound(latency.quantile(0.99)),
    probeLatencyP50Ms: nullableRound(probeLatency.quantile(0.5)),
    probeLatencyP99Ms: nullableRound(probeLatency.quantile(0.99)),
    sfuRssBytes: rss,
    memoryPerPeerBytes: peers > 0
      ? Math.round((rss - sfu.idleRssBytes) / peers)
      : 0,
    memoryPerAddedPeerBytes: null,
    joinToFirstMediaMedianMs: nullableRound(median(firstMedia) ?? undefined),
    joinToFirstMediaMaxMs: nullableRound(
      firstMedia.length ? Math.max(...firstMedia) : undefined,
    ),
    generatorCpuCores: generatorCores.map((c) => round(c, 3)),
    machineBusy: round(machineShare, 3),
    benchCpuCores: round(benchCores, 3),
    otherCpuCores: round(
      Math.max(0, machineShare * navigator.hardwareConcurrency - benchCores),
      3,
    ),
    busiestOtherProcesses: others.map((p) =>
      `${p.name} ${Math.round(p.cores * 100)}%`
    ),
    stealCores: round(
      (machineEnd.steal - machineStart.steal) / machineTotal *
        navigator.hardwareConcurrency,
      3,
    ),
    trunk: linkStart && linkEnd
      ? trunkFigures(linkStart, linkEnd, sfuSeconds, published / workerSeconds)
      : null,
    profile: null,
    allocations: null,
    corruptStreams: corrupt,
    notices: [...notices].slice(0, 5),
  };
}

function trunkFigures(
  start: LinkCounters,
  end: LinkCounters,
  seconds: number,
  publishedPerSecond: number,
): TrunkFigures {
  const rate = (kind: "audio" | "video", of: "packets" | "bytes") =>
    (end[kind][of] - start[kind][of]) / seconds;
  const perTrack = (kind: "audio" | "video") =>
    end[kind].streams > 0
      ? Math.round(rate(kind, "bytes") / end[kind].streams)
      : 0;
  const packets = rate("audio", "packets") + rate("video", "packets");
  return {
    streams: end.audio.streams + end.video.streams,
    packetsPerSecond: Math.round(packets),
    mbitPerSecond: round(
      (rate("audio", "bytes") + rate("video", "bytes")) * 8 / 1e6,
    ),
    bytesPerSecondPerTrack: {
      audio: perTrack("audio"),
      video: perTrack("video"),
    },
    crossingsPerPublishedPacket: publishedPerSecond > 0
      ? round(packets / publishedPerSecond, 3)
      : null,
  };
}

function nullableRound(value: number | undefined): number | null {
  return value === undefined ? null : round(value, 2);
}

/** Why a sweep should not go to a heavier point, or undefined to go on. */
export function stopReason(point: Point): string | undefined {
  if (point.lossPercent > LIMITS.lossPercent) {
    return `loss passed ${LIMITS.lossPercent}% (${point.lossPercent}%)`;
  }
  const saturated = Object.entries(point.sfuCpuCoresByProcess).find(([, c]) =>
    c >= LIMITS.sfuCores
  );
  if (saturated) {
    return `the SFU saturated a core (${saturated[0]} at ${
      Math.round(saturated[1] * 100)
    }%)`;
  }
  const busiest = Math.max(...point.generatorCpuCores);
  if (busiest >= LIMITS.generatorCores) {
    return `the load generators became the limit (one generator process at ${
      Math.round(busiest * 100)
    }% of a core)`;
  }
  const cores = navigator.hardwareConcurrency;
  if (point.benchCpuCores >= LIMITS.benchShare * cores) {
    return `the machine ran out of CPU (the SFU and the load generators used ${
      point.benchCpuCores.toFixed(2)
    } of ${cores} cores): from here they compete for it, so the generators limit the load, not the SFU`;
  }
  return undefined;
}
