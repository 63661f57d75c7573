// Turns a BenchResult into what people read: a JSON file, an SVG chart (one
// row of small plots per sweep, Umbrella and Janus side by side) and a text
// summary for the terminal.
import type { Point } from "./measure.ts";
import type { BenchResult } from "./suite.ts";
import type { SweepResult } from "./sweeps.ts";

interface Metric {
  title: string;
  /** Cost and latency span decades between the first and last point. */
  logY?: boolean;
  values: (p: Point) => { label: string; value: number | null }[];
}

const METRICS: Metric[] = [
  {
    title: "forwarded packets/s",
    values: (p) => [{ label: "", value: p.forwardedPacketsPerSecond }],
  },
  {
    title: "SFU CPU µs per packet delivered",
    logY: true,
    values: (p) => [{ label: "", value: p.sfuCpuMicrosPerDeliveredPacket }],
  },
  {
    title: "SFU CPU (% of one core)",
    values: (p) => [{ label: "", value: p.sfuCpuCores * 100 }],
  },
  {
    title: "loss at subscribers (%)",
    values: (p) => [{ label: "", value: p.lossPercent }],
  },
  {
    title: "latency p50 / p99 (ms)",
    logY: true,
    values: (p) => [
      { label: "p50", value: p.latencyP50Ms },
      { label: "p99", value: p.latencyP99Ms },
      { label: "probe p50", value: p.probeLatencyP50Ms ?? null },
      { label: "probe p99", value: p.probeLatencyP99Ms ?? null },
      { label: "in SFU p50", value: p.sfuLatency?.p50Ms ?? null },
      { label: "in SFU p99", value: p.sfuLatency?.p99Ms ?? null },
    ],
  },
  {
    title: "SFU memory per added peer (KiB)",
    values: (p) => [{
      label: "",
      value: p.memoryPerAddedPeerBytes === null
        ? null
        : Math.max(0, p.memoryPerAddedPeerBytes / 1024),
    }],
  },
  {
    title: "join to first media (ms)",
    values: (p) => [
      { label: "median", value: p.joinToFirstMediaMedianMs },
      { label: "max", value: p.joinToFirstMediaMaxMs },
    ],
  },
];

const TRUNK_METRIC: Metric = {
  title: "trunk kB/s per track (payload)",
  values: (p) => [
    {
      label: "video",
      value: p.trunk ? p.trunk.bytesPerSecondPerTrack.video / 1000 : null,
    },
    {
      label: "audio",
      value: p.trunk ? p.trunk.bytesPerSecondPerTrack.audio / 1000 : null,
    },
  ],
};

const COLORS: Record<string, string> = {
  umbrella: "#1f6feb",
  janus: "#d9480f",
};
const PANEL_WIDTH = 230;
const PANEL_HEIGHT = 180;
const MARGIN = { left: 50, right: 10, top: 28, bottom: 34 };
const ROW_TITLE_HEIGHT = 26;

const escape = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** A round tick step (1, 2 or 5 times a power of ten) giving at most five
 * intervals up to max. */
function niceStep(max: number): number {
  const rough = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  for (const step of [1, 2, 5]) {
    if (step * magnitude >= rough) return step * magnitude;
  }
  return 10 * magnitude;
}

const formatTick = (value: number) =>
  value >= 10000
    ? `${Math.round(value / 1000)}k`
    : Number(value.toPrecision(3)).toString();

/** Maps values onto [0, 1] of an axis, with the ticks to draw. */
interface Scale {
  at(value: number): number;
  ticks: number[];
}

function linearScale(max: number): Scale {
  const step = max > 0 ? niceStep(max) : 1;
  const intervals = Math.max(1, Math.ceil(max / step - 1e-9));
  const top = step * intervals;
  return {
    at: (v) => v / top,
    ticks: Array.from({ length: intervals + 1 }, (_, i) => step * i),
  };
}

/** 1-2-5 ticks over whole decades; values at or below zero sit on the floor. */
function logScale(min: number, max: number): Scale {
  const low = 10 ** Math.floor(Math.log10(Math.max(min, 1e-3)));
  const high = 10 ** Math.ceil(Math.log10(Math.max(max, low * 10)));
  const span = Math.log10(high / low);
  const ticks: number[] = [];
  for (let decade = low; decade < high; decade *= 10) {
    ticks.push(...[1, 2, 5].map((m) => decade * m));
  }
  ticks.push(high);
  return {
    at: (v) => v <= low ? 0 : Math.log10(v / low) / span,
    // Every other decade's 2 and 5 would crowd a small panel.
    ticks: span > 2 ? ticks.filter((t) => ticks.indexOf(t) % 3 === 0) : ticks,
  };
}

/** Doubling sweeps (1, 2, 4 ... 200) read best on a log2 axis. */
function log2Scale(max: number): Scale {
  const top = 2 ** Math.ceil(Math.log2(Math.max(2, max)));
  const ticks: number[] = [];
  for (let t = 1; t <= top; t *= 4) ticks.push(t);
  if (ticks.at(-1) !== top) ticks.push(top);
  return { at: (v) => Math.log2(Math.max(1, v)) / Math.log2(top), ticks };
}

function panel(
  x0: number,
  y0: number,
  metric: Metric,
  sweeps: SweepResult[],
  xLabel: string,
  logX: boolean,
): string {
  const innerWidth = PANEL_WIDTH - MARGIN.left - MARGIN.right;
  const innerHeight = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const series: {
    name: string;
    sfu: string;
    color: string;
    dash: string;
    points: [number, number][];
  }[] = [];
  for (const sweep of sweeps) {
    const byLabel = new Map<string, [number, number][]>();
    for (const point of sweep.points) {
      for (const { label, value } of metric.values(point)) {
        if (value === null) continue;
        if (!byLabel.has(label)) byLabel.set(label, []);
        byLabel.get(label)!.push([point.x, value]);
      }
    }
    for (const [label, points] of byLabel) {
      series.push({
        name: [sweep.sfu, label].filter(Boolean).join(" "),
        sfu: sweep.sfu,
        color: COLORS[sweep.sfu],
        dash: ["p99", "max", "audio"].includes(label) ? "5 3" : "",
        points,
      });
    }
  }
  const all = series.flatMap((s) => s.points);
  const ys = all.map(([, y]) => y);
  const xMax = Math.max(1, ...all.map(([x]) => x));
  const xScale = logX ? log2Scale(xMax) : linearScale(xMax);
  const yScale = metric.logY
    ? logScale(Math.min(...ys.filter((y) => y > 0), 1), Math.max(...ys, 1))
    : linearScale(Math.max(0, ...ys));
  const sx = (x: number) => x0 + MARGIN.left + xScale.at(x) * innerWidth;
  const sy = (y: number) =>
    y0 + MARGIN.top + innerHeight - yScale.at(y) * innerHeight;
  const parts: string[] = [
    `<text x="${x0 + MARGIN.left}" y="${y0 + 16}" class="title">${
      escape(metric.title)
    }</text>`,
    `<rect x="${x0 + MARGIN.left}" y="${
      y0 + MARGIN.top
    }" width="${innerWidth}" height="${innerHeight}" class="frame"/>`,
  ];
  for (const yValue of yScale.ticks) {
    const y = sy(yValue).toFixed(1);
    parts.push(
      `<line x1="${x0 + MARGIN.left}" x2="${
        x0 + MARGIN.left + innerWidth
      }" y1="${y}" y2="${y}" class="grid"/>`,
      `<text x="${x0 + MARGIN.left - 4}" y="${
        Number(y) + 4
      }" class="tick" text-anchor="end">${formatTick(yValue)}</text>`,
    );
  }
  for (const xValue of xScale.ticks) {
    parts.push(
      `<text x="${sx(xValue).toFixed(1)}" y="${
        y0 + MARGIN.top + innerHeight + 14
      }" class="tick" text-anchor="middle">${formatTick(xValue)}</text>`,
    );
  }
  parts.push(
    `<text x="${x0 + MARGIN.left + innerWidth / 2}" y="${
      y0 + PANEL_HEIGHT - 4
    }" class="tick" text-anchor="middle">${
      escape(xLabel + (logX ? " (log scale)" : ""))
    }</text>`,
  );
  series.forEach((s, i) => {
    const path = s.points.map(([x, y]) =>
      `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`
    ).join(" ");
    parts.push(
      `<polyline points="${path}" class="${s.sfu}"${
        s.dash ? ` stroke-dasharray="${s.dash}"` : ""
      }/>`,
    );
    if (series.length > 1) {
      parts.push(
        `<text x="${x0 + MARGIN.left + 6}" y="${
          y0 + MARGIN.top + 12 + i * 12
        }" class="legend" fill="${s.color}">${escape(s.name)}</text>`,
      );
    }
  });
  return parts.join("\n");
}

const SWEEP_TITLES: Record<string, [string, string]> = {
  fanout: ["(a) one publisher to K subscribers", "subscribers K"],
  meeting: ["(b) meeting: everyone receives everyone", "participants P"],
  trunk: [
    "(c) publisher on node A, K subscribers on trunked node B (CPU of A and B together)",
    "subscribers K",
  ],
};

export function renderSvg(result: BenchResult): string {
  const rows = (["fanout", "meeting", "trunk"] as const)
    .map((name) => ({
      name,
      sweeps: result.sweeps.filter((s) => s.sweep === name),
    }))
    .filter((row) => row.sweeps.length > 0);
  const width = PANEL_WIDTH * (METRICS.length + 1);
  const header = 46;
  const rowHeight = ROW_TITLE_HEIGHT + PANEL_HEIGHT + 14;
  const height = header + rows.length * rowHeight + 10;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<defs>${
      Object.entries(COLORS).map(([sfu, color]) =>
        `<marker id="dot-${sfu}" viewBox="0 0 6 6" refX="3" refY="3" markerUnits="userSpaceOnUse" markerWidth="5" markerHeight="5"><circle cx="3" cy="3" r="3" fill="${color}"/></marker>`
      ).join("")
    }</defs>`,
    `<style>.title{font-size:12px;font-weight:600}.tick{font-size:10px;fill:#555}.legend{font-size:10px}.frame{fill:none;stroke:#999}.grid{stroke:#eee}.row{font-size:13px;font-weight:700}.note{font-size:12px;fill:#a00}polyline{fill:none;stroke-width:1.8}${
      Object.entries(COLORS).map(([sfu, color]) =>
        `.${sfu}{stroke:${color};marker-start:url(#dot-${sfu});marker-mid:url(#dot-${sfu});marker-end:url(#dot-${sfu})}`
      ).join("")
    }</style>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="8" y="18" class="row">Umbrella bench ${
      escape(result.startedAt)
    }</text>`,
    `<text x="8" y="36" class="tick">${
      escape(
        `${result.machine.cpuModel}, ${result.machine.cores} cores (shared); deno ${result.versions.deno}, werift ${result.versions.werift}${
          result.versions.janus ? `, janus ${result.versions.janus}` : ""
        }; ${result.media.videoPayloadMbitPerSecond} Mbit/s video + ${result.media.audioPacketsPerSecond} audio pkt/s per publisher; median of ${result.settings.windowsPerPoint} windows of ${result.settings.windowSeconds} s per point`,
      )
    }</text>`,
  ];
  rows.forEach((row, r) => {
    const y = header + r * rowHeight;
    const [title, xLabel] = SWEEP_TITLES[row.name];
    const measured = row.sweeps.filter((s) => s.points.length > 0);
    parts.push(`<text x="8" y="${y + 18}" class="row">${escape(title)}</text>`);
    if (measured.length === 0) {
      parts.push(
        `<text x="8" y="${y + ROW_TITLE_HEIGHT + 24}" class="note">${
          escape(`${row.sweeps[0].status}: ${row.sweeps[0].reason}`)
        }</text>`,
      );
      return;
    }
    const metrics = row.name === "trunk" ? [...METRICS, TRUNK_METRIC] : METRICS;
    metrics.forEach((metric, i) => {
      parts.push(
        panel(
          i * PANEL_WIDTH,
          y + ROW_TITLE_HEIGHT,
          metric,
          measured,
          xLabel,
          row.name !== "meeting",
        ),
      );
    });
    const notes = row.sweeps.map((s) => `${s.sfu}: ${s.reason}`).join("; ");
    parts.push(
      `<text x="8" y="${y + rowHeight - 2}" class="tick">${
        escape(notes)
      }</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

const pad = (value: unknown, width: number) =>
  String(value ?? "-").padStart(width);

const percent = (cores: number) => Math.round(cores * 100);
const kib = (bytes: number | null) =>
  bytes === null ? null : Math.round(bytes / 1024);

type Column = [title: string, width: number, value: (p: Point) => unknown];

const COLUMNS: Column[] = [
  ["x", 4, (p) => p.x],
  ["pkt/s", 7, (p) => p.forwardedPacketsPerSecond],
  ["Mbit/s", 7, (p) => p.forwardedMbitPerSecond],
  ["cpu%", 5, (p) => percent(p.sfuCpuCores)],
  ["µs/pkt", 7, (p) => p.sfuCpuMicrosPerPacket],
  ["µs/dlvd", 7, (p) => p.sfuCpuMicrosPerDeliveredPacket],
  ["ms/Mbit", 7, (p) => p.sfuCpuMillisPerMbit],
  ["loss%", 6, (p) => p.lossPercent],
  ["shed/s", 6, (p) => p.packetsShedPerSecond ?? null],
  ["p50ms", 6, (p) => p.latencyP50Ms],
  ["p99ms", 7, (p) => p.latencyP99Ms],
  [
    "probe p50/p99",
    13,
    (p) =>
      p.probeLatencyP50Ms === null || p.probeLatencyP50Ms === undefined
        ? null
        : `${p.probeLatencyP50Ms}/${p.probeLatencyP99Ms}`,
  ],
  [
    "in SFU p50/p99",
    14,
    (p) =>
      p.sfuLatency?.p50Ms == null
        ? null
        : `${p.sfuLatency.p50Ms}/${p.sfuLatency.p99Ms}`,
  ],
  ["KiB/peer", 8, (p) => kib(p.memoryPerPeerBytes)],
  ["KiB/new", 7, (p) => kib(p.memoryPerAddedPeerBytes)],
  [
    "join ms",
    7,
    (p) =>
      p.joinToFirstMediaMedianMs === null
        ? null
        : Math.round(p.joinToFirstMediaMedianMs),
  ],
  ["gen%", 11, (p) => p.generatorCpuCores.map(percent).join("/")],
  ["other%", 6, (p) => percent(p.otherCpuCores)],
];

const TRUNK_COLUMN: Column = [
  "link kB/s video+audio, crossings",
  33,
  (p) =>
    p.trunk
      ? `${Math.round(p.trunk.bytesPerSecondPerTrack.video / 1000)}+${
        Math.round(p.trunk.bytesPerSecondPerTrack.audio / 1000)
      } (${p.trunk.streams} tracks), ${p.trunk.crossingsPerPublishedPacket}`
      : null,
];

export function renderText(result: BenchResult): string {
  const lines: string[] = [
    `Umbrella bench ${result.startedAt} (${result.durationSeconds} s)`,
    `machine: ${result.machine.cpuModel}, ${result.machine.cores} cores, load average at start ${
      result.machine.loadAverage.join(" ")
    }`,
    `versions: umbrella ${result.versions.umbrella} (source ${result.versions.umbrellaSource}), deno ${result.versions.deno}, werift ${result.versions.werift}, janus ${
      result.versions.janus ?? "-"
    }`,
    `load generators: ${result.generators.processes} processes, werift with Umbrella's patch layer, SRTP ${result.generators.srtp}, UDP ${
      result.generators.udpFallback
        ? `node:dgram (${result.generators.udpFallback})`
        : "sendto"
    }`,
    ...result.umbrellaStartupWarnings.map((line) =>
      `Umbrella warned at start: ${line}`
    ),
  ];
  for (const sweep of result.sweeps) {
    lines.push(
      "",
      `${sweep.sweep} on ${sweep.sfu}: ${sweep.status}; ${sweep.reason}`,
    );
    if (sweep.points.length === 0) continue;
    const columns = sweep.sweep === "trunk"
      ? [...COLUMNS, TRUNK_COLUMN]
      : COLUMNS;
    lines.push(columns.map(([title, width]) => pad(title, width)).join(" "));
    for (const point of sweep.points) {
      lines.push(
        columns.map(([, width, value]) => pad(value(point), width)).join(" "),
      );
    }
  }
  for (const burst of result.joinBursts) {
    lines.push(
      "",
      burst.allConnected
        ? `join burst on ${burst.sfu}: ${burst.subscribers} subscribers at once all had audio and video after ${burst.secondsToAllMedia} s; join to first media median ${burst.joinToFirstMediaMedianMs} ms, slowest ${burst.joinToFirstMediaMaxMs} ms; SFU ${burst.sfuCpuCores} cores meanwhile`
        : `join burst on ${burst.sfu}: ${burst.subscribers} subscribers at once did not all connect: ${burst.reason}`,
    );
  }
  const comparison = result.janusComparison;
  if (comparison && "unavailable" in comparison) {
    lines.push("", `Janus comparison unavailable: ${comparison.unavailable}`);
  } else if (comparison) {
    lines.push(
      "",
      "Umbrella vs Janus, 1×K (SFU CPU per packet delivered to a subscriber; a ratio below 1 means Umbrella is cheaper):",
    );
    const vs = ([u, j]: unknown[], unit = "") => `${u}${unit} vs ${j}${unit}`;
    for (const row of comparison) {
      lines.push(
        `  K=${row.subscribers}: ${
          vs(row.sfuCpuMicrosPerDeliveredPacket, " µs/pkt")
        } (ratio ${row.cpuPerPacketRatio}), CPU ${
          vs(row.sfuCpuCores.map(percent), "%")
        }, p50 ${vs(row.latencyP50Ms, " ms")}, probe p50/p99 ${
          vs(row.probeLatencyP50Ms, " ms")
        } / ${vs(row.probeLatencyP99Ms, " ms")}, in the SFU p50/p99 ${
          vs(row.sfuLatencyP50Ms, " ms")
        } / ${vs(row.sfuLatencyP99Ms, " ms")}, loss ${
          vs(row.lossPercent, "%")
        }, ${vs(row.memoryPerPeerBytes.map(kib), " KiB")}/peer`,
      );
    }
  }
  for (const sweep of result.sweeps) {
    // The heaviest point's profile: where an optimisation would pay most.
    const heaviest = sweep.points.findLast((p) => p.profile !== null);
    for (const profile of heaviest?.profile ?? []) {
      lines.push(
        "",
        `CPU profile of ${profile.process} at ${sweep.sweep} x=${
          heaviest!.x
        } (${profile.totalMs} ms, idle ${profile.idlePercent}%; of the busy time GC ${profile.gcPercent}%), top self time:`,
      );
      for (const entry of profile.top) {
        lines.push(
          `  ${
            pad(entry.selfPercent, 5)
          }%  ${entry.function}  ${entry.location}`,
        );
      }
    }
    const sampled = sweep.points.findLast((p) => p.allocations !== null);
    for (const summary of sampled?.allocations ?? []) {
      lines.push(
        "",
        `Allocations of ${summary.process} at ${sweep.sweep} x=${sampled!.x} (${
          kib(summary.bytesPerSecond)
        } KiB/s), top call sites:`,
      );
      for (const entry of summary.top) {
        lines.push(
          `  ${pad(entry.percent, 5)}%  ${
            kib(entry.bytesPerSecond)
          } KiB/s  ${entry.function}  ${entry.location}  (from ${entry.calledFrom})`,
        );
      }
    }
  }
  return lines.join("\n") + "\n";
}

const isRecordList = (value: unknown): value is unknown[] =>
  Array.isArray(value) &&
  value.some((element) => element !== null && typeof element === "object");

/** JSON with one line per point, comparison row or profile entry: small
 * enough to commit, and a rerun's diff shows which points moved. */
export function formatJson(value: unknown, indent = ""): string {
  const inner = `${indent}  `;
  if (isRecordList(value)) {
    return `[\n${
      value.map((element) => inner + formatJson(element, inner)).join(",\n")
    }\n${indent}]`;
  }
  if (
    value !== null && typeof value === "object" &&
    Object.values(value).some(isRecordList)
  ) {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    return `{\n${
      entries.map(([key, v]) =>
        `${inner}${JSON.stringify(key)}: ${formatJson(v, inner)}`
      ).join(",\n")
    }\n${indent}}`;
  }
  return JSON.stringify(value);
}

/** Writes NAME.json and NAME.svg into dir, replacing an earlier run's, and
 * returns their paths: one current result to commit, not a growing pile. */
export async function writeResults(
  result: BenchResult,
  dir: string,
  name: string,
): Promise<{ json: string; svg: string }> {
  await Deno.mkdir(dir, { recursive: true });
  const json = `${dir}/${name}.json`;
  const svg = `${dir}/${name}.svg`;
  await Deno.writeTextFile(json, formatJson(result) + "\n");
  await Deno.writeTextFile(svg, renderSvg(result));
  return { json, svg };
}
