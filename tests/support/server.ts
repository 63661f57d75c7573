// Starts a real Umbrella process for a test: loopback only, a random port, a
// temporary data directory, media pinned to 127.0.0.1, JSON logs captured.
// The bench starts the Umbrella it measures through this too.
import { fileURLToPath as fromFileUrl } from "node:url";
import { forEachLine, terminate } from "./child.ts";

const MAIN = fromFileUrl(new URL("../../main.ts", import.meta.url));
const CONFIG = fromFileUrl(new URL("../../deno.json", import.meta.url));

export interface ServerProcess {
  pid: number;
  origin: string;
  /** The signalling WebSocket URL. */
  wsUrl: string;
  port: number;
  dataDir: string;
  prefix: string;
  logs: Record<string, unknown>[];
  stop(): Promise<void>;
}

export interface ServerOptions {
  args?: string[];
  env?: Record<string, string>;
  prefix?: string;
  dataDir?: string;
  /** Serve plain HTTP (cloud mode); default true, since most tests need no TLS. */
  cloud?: boolean;
  /** Answer mDNS (default false): only for tests inside a private network namespace. */
  mdns?: boolean;
  /** Flags for deno itself, before the program (e.g. --inspect). */
  denoFlags?: string[];
  /** Default "debug"; long runs such as the bench keep fewer lines. */
  logLevel?: string;
  /** Runs something other than main.ts: given Umbrella's own arguments,
   * the program and arguments that start it (e.g. the bundle). */
  launch?: (args: string[]) => { program: string; args: string[] };
  /** How long start-up may take (default 30 s; an emulated CPU needs more). */
  listenTimeoutMs?: number;
}

/** The permission flags of `deno task start`, so tests and the bench run the
 * program with exactly what users give it (e.g. FFI for the fast SRTP). */
export async function startPermissions(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(CONFIG));
  const flags = String(config.tasks?.start ?? "").match(/--allow-[\w-]+/g);
  if (!flags) {
    throw new Error(`no --allow-* flags in the "start" task of ${CONFIG}`);
  }
  return flags;
}

export async function startServer(
  options: ServerOptions = {},
): Promise<ServerProcess> {
  const dataDir = options.dataDir ??
    await Deno.makeTempDir({ prefix: "umbrella-test-" });
  const prefix = options.prefix ?? "";
  const umbrellaArgs = [
    "--listen",
    "127.0.0.1:0",
    "--ice-addresses",
    "127.0.0.1",
    "--data-dir",
    dataDir,
    "--log-format",
    "json",
    "--log-level",
    options.logLevel ?? "debug",
    // Test servers stay off the machine's real network: no mDNS, unless the
    // test runs them inside a private network namespace.
    ...(options.mdns ? [] : ["--no-mdns"]),
    ...(options.cloud ?? true ? ["--cloud"] : []),
    ...(prefix ? ["--http-prefix", prefix] : []),
    ...(options.args ?? []),
  ];
  const { program, args } = options.launch?.(umbrellaArgs) ?? {
    program: Deno.execPath(),
    args: [
      "run",
      ...(options.denoFlags ?? []),
      "--config",
      CONFIG,
      ...await startPermissions(),
      MAIN,
      ...umbrellaArgs,
    ],
  };
  const child = new Deno.Command(program, {
    args,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const logs: Record<string, unknown>[] = [];
  const listenTimeoutMs = options.listenTimeoutMs ?? 30_000;
  const listening = Promise.withResolvers<string>();
  const exited = child.status.then((status) => {
    listening.reject(
      new Error(
        `umbrella exited with ${status.code} before listening:\n${
          JSON.stringify(logs)
        }`,
      ),
    );
    return status;
  });
  forEachLine(child.stderr, (line) => {
    try {
      const entry = JSON.parse(line);
      logs.push(entry);
      if (entry.msg === "listening" && typeof entry.url === "string") {
        listening.resolve(entry.url);
      }
    } catch {
      logs.push({ raw: line });
    }
  });
  const timer = setTimeout(
    () =>
      listening.reject(
        new Error(`umbrella did not listen within ${listenTimeoutMs / 1000} s`),
      ),
    listenTimeoutMs,
  );
  let url: string;
  try {
    url = await listening.promise;
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch {
      // It exited already; that is the error reported.
    }
    await exited;
    throw error;
  } finally {
    clearTimeout(timer);
  }
  const parsed = new URL(url);
  const origin = parsed.origin;
  return {
    pid: child.pid,
    origin,
    port: Number(parsed.port),
    wsUrl: `${origin.replace(/^http/, "ws")}${prefix}/wsb`,
    dataDir,
    prefix,
    logs,
    async stop() {
      await terminate(child, exited);
      if (!options.dataDir) {
        await Deno.remove(dataDir, { recursive: true }).catch(() => {});
      }
    },
  };
}

/** Reads a Prometheus counter or gauge (summing matching label sets). */
export async function metric(
  server: ServerProcess,
  name: string,
  labels = "",
): Promise<number> {
  const text = await (await fetch(`${server.origin}${server.prefix}/metrics`))
    .text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const [key, value] = line.split(" ");
    if (key === name || (key.startsWith(`${name}{`) && key.includes(labels))) {
      sum += Number(value);
    }
  }
  return sum;
}
