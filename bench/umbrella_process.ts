// Runs the Umbrella under test as its own process (started the way the tests
// start it), so its CPU time and memory can be read from /proc apart from the
// load generators'. Adds what the bench needs on top: fewer log lines, the V8
// inspector on loopback for CPU profiles (bench/inspector.ts), metrics.
import { freeLoopbackPort } from "./proc.ts";
import { InspectorSession } from "./inspector.ts";
import { type ServerProcess, startServer } from "../tests/support/server.ts";

const LOG_TAIL_LINES = 40;

export interface Forwarded {
  packets: number;
  bytes: number;
  /** Packets not sent to shed load (media/overload.ts), where counted. */
  shed?: number;
}

export interface UmbrellaProcess {
  pid: number;
  origin: string;
  wsUrl: string;
  /** Last log lines, for error reports. */
  logTail: string[];
  /** Why Umbrella closed each peer it dropped (its media connection
   * failed or went silent), oldest first. */
  droppedPeers(): string[];
  /** How many of its peers are in each connection state, as /api/status
   * tells. */
  peerStates(): Promise<Record<string, number>>;
  /** Log lines up to and including the one saying it listens. */
  startupLog: string[];
  /** A connected V8 inspector, when started with inspect. */
  inspector: InspectorSession | undefined;
  forwarded(): Promise<Forwarded>;
  /** Every series (`name{labels}`), and each metric summed over its label sets. */
  metrics(): Promise<Map<string, number>>;
  /** A series (`name{labels}`) or a metric summed over its label sets. */
  metric(name: string): Promise<number>;
  stop(): Promise<void>;
}

export interface UmbrellaOptions {
  /** Open the V8 inspector on 127.0.0.1, for CPU profiles. */
  inspect?: boolean;
  /** Extra Umbrella config file keys (e.g. trunks). */
  config?: Record<string, unknown>;
  name?: string;
}

export async function startUmbrella(
  options: UmbrellaOptions = {},
): Promise<UmbrellaProcess> {
  const configDir = options.config
    ? await Deno.makeTempDir({ prefix: "umbrella-bench-config-" })
    : undefined;
  const configArgs: string[] = [];
  if (configDir) {
    const path = `${configDir}/bench-config.json`;
    await Deno.writeTextFile(path, JSON.stringify(options.config));
    configArgs.push("--config", path);
  }
  const removeConfig = () =>
    configDir
      ? Deno.remove(configDir, { recursive: true }).catch(() => {})
      : Promise.resolve();
  let server: ServerProcess;
  try {
    server = await startServer({
      denoFlags: options.inspect
        ? [`--inspect=127.0.0.1:${freeLoopbackPort()}`]
        : [],
      logLevel: "info",
      args: [...(options.name ? ["--name", options.name] : []), ...configArgs],
    });
  } catch (error) {
    await removeConfig();
    throw error;
  }
  const lines = () =>
    server.logs.map((entry) =>
      typeof entry.raw === "string" ? entry.raw : JSON.stringify(entry)
    );
  // What was logged up to now: the start-up, with its warnings if any.
  const startupLog = lines();
  let inspector: InspectorSession | undefined;
  if (options.inspect) {
    try {
      const url = startupLog.map((line) =>
        line.match(/^Debugger listening on (ws:\S+)/)?.[1]
      ).find((match) => match !== undefined);
      if (!url) throw new Error("umbrella printed no inspector URL");
      inspector = await InspectorSession.connect(url);
    } catch (error) {
      await server.stop();
      await removeConfig();
      throw error;
    }
  }

  const scrape = async () => {
    const response = await fetch(`${server.origin}/metrics`);
    if (!response.ok) throw new Error(`/metrics answered ${response.status}`);
    return parseMetrics(await response.text());
  };

  return {
    pid: server.pid,
    origin: server.origin,
    wsUrl: server.wsUrl,
    get logTail() {
      return lines().slice(-LOG_TAIL_LINES);
    },
    droppedPeers: () =>
      server.logs
        .filter((entry) => entry.msg === "media connection failed")
        .map((entry) => `${entry.name}: ${entry.reason}`),
    async peerStates() {
      const response = await fetch(`${server.origin}/api/status`);
      if (!response.ok) {
        throw new Error(`/api/status answered ${response.status}`);
      }
      const status = await response.json() as { peers: { state: string }[] };
      const counts: Record<string, number> = {};
      for (const { state } of status.peers) {
        counts[state] = (counts[state] ?? 0) + 1;
      }
      return counts;
    },
    startupLog,
    inspector,
    async forwarded() {
      // One scrape for all, so the counters describe the same instant.
      const metrics = await scrape();
      return {
        packets: metrics.get("umbrella_packets_out_total") ?? 0,
        bytes: metrics.get("umbrella_bytes_out_total") ?? 0,
        shed: metrics.get("umbrella_packets_shed_total") ?? 0,
      };
    },
    metrics: scrape,
    async metric(name) {
      return (await scrape()).get(name) ?? 0;
    },
    async stop() {
      inspector?.close();
      await server.stop();
      await removeConfig();
    },
  };
}

/** Prometheus text → value by full series key (`name{labels}`), and by
 * bare metric name summed over its label sets. */
export function parseMetrics(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    const key = line.slice(0, space);
    const value = Number(line.slice(space + 1));
    if (!Number.isFinite(value)) continue;
    const brace = key.indexOf("{");
    if (brace >= 0) {
      values.set(key, value);
      const name = key.slice(0, brace);
      values.set(name, (values.get(name) ?? 0) + value);
    } else {
      values.set(key, value);
    }
  }
  return values;
}
