// The coordinator's side of the load-generator processes: spawns them, sends
// requests and matches replies, and knows their pids for CPU accounting.
import { fileURLToPath } from "node:url";
import { LINE_PREFIX, type Reply, type Request } from "./worker_protocol.ts";
import { forEachLine, keepTail } from "../tests/support/child.ts";

const WORKER = fileURLToPath(new URL("./worker.ts", import.meta.url));
const DENO_CONFIG = fileURLToPath(new URL("../deno.json", import.meta.url));
const STDERR_TAIL_LINES = 20;

export class Worker {
  readonly index: number;
  readonly pid: number;
  readonly stderrTail: string[] = [];
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #nextId = 0;
  #waiting = new Map<number, PromiseWithResolvers<unknown>>();
  #exited: Promise<Deno.CommandStatus>;

  constructor(index: number) {
    this.index = index;
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--config", DENO_CONFIG, "--allow-all", WORKER],
      env: { NO_COLOR: "1" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.#child.pid;
    this.#writer = this.#child.stdin.getWriter();
    this.#exited = this.#child.status.then((status) => {
      const error = new Error(
        `load generator ${index} exited with ${status.code}:\n${
          this.stderrTail.join("\n")
        }`,
      );
      for (const waiter of this.#waiting.values()) waiter.reject(error);
      this.#waiting.clear();
      return status;
    });
    this.#readReplies();
    this.#readStderr();
  }

  #readReplies(): Promise<void> {
    return forEachLine(this.#child.stdout, (line) => {
      if (!line.startsWith(LINE_PREFIX)) return;
      const reply = JSON.parse(line.slice(LINE_PREFIX.length)) as Reply;
      const waiter = this.#waiting.get(reply.id);
      this.#waiting.delete(reply.id);
      if (reply.error !== undefined) {
        waiter?.reject(
          new Error(`load generator ${this.index}: ${reply.error}`),
        );
      } else waiter?.resolve(reply.result);
    });
  }

  #readStderr(): Promise<void> {
    return forEachLine(
      this.#child.stderr,
      (line) => keepTail(this.stderrTail, line, STDERR_TAIL_LINES),
    );
  }

  async call<T>(request: Request, timeoutMs: number): Promise<T> {
    const id = this.#nextId++;
    const waiter = Promise.withResolvers<unknown>();
    this.#waiting.set(id, waiter);
    await this.#writer.write(
      new TextEncoder().encode(JSON.stringify({ id, ...request }) + "\n"),
    );
    const timer = setTimeout(() => {
      this.#waiting.delete(id);
      waiter.reject(
        new Error(
          `load generator ${this.index} did not answer ${request.op} within ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
    try {
      return await waiter.promise as T;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closing stdin asks the worker to close its peers and exit. */
  async stop(): Promise<void> {
    await this.#writer.close().catch(() => {});
    const killer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* already gone */ }
    }, 10_000);
    await this.#exited;
    clearTimeout(killer);
  }
}

export class WorkerPool {
  /** Every generator process: the load generators, then the probe. */
  readonly workers: Worker[];
  /** A process with a single subscriber, the latency probe: its receive
   * loop is idle, so its latency is the SFU's (and the kernel's), not that
   * of a generator busy with dozens of peers. */
  readonly probe: Worker;
  readonly #load: number;

  constructor(count: number) {
    this.#load = count;
    this.workers = Array.from({ length: count + 1 }, (_, i) => new Worker(i));
    this.probe = this.workers[count];
  }

  /** The load generator that hosts the peer with this global index. */
  of(peerIndex: number): Worker {
    return this.workers[peerIndex % this.#load];
  }

  all<T>(request: Request, timeoutMs: number): Promise<T[]> {
    return Promise.all(this.workers.map((w) => w.call<T>(request, timeoutMs)));
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
  }
}
