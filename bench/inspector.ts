// CPU and allocation profiles of an SFU process over exactly the measurement
// windows, taken through the V8 inspector (the process runs with --inspect on
// 127.0.0.1):
// `deno run --cpu-prof` would cover the whole life of the process, mostly
// start-up, joins and idle time, and say little about forwarding.
import type { CpuProfile, SamplingHeapProfile } from "./profile.ts";

/** Bytes between allocation samples: small enough to see per-packet
 * objects of a few dozen bytes at thousands of packets a second. */
const ALLOCATION_SAMPLING_BYTES = 512;

const CALL_TIMEOUT_MS = 30_000;

export class InspectorSession {
  #socket: WebSocket;
  #nextId = 1;
  #waiting = new Map<number, PromiseWithResolvers<unknown>>();

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(String(event.data));
      const waiter = this.#waiting.get(message.id);
      if (!waiter) return; // an event, not an answer
      this.#waiting.delete(message.id);
      if (message.error) {
        waiter.reject(new Error(`inspector: ${message.error.message}`));
      } else waiter.resolve(message.result);
    };
    socket.onclose = () => {
      for (const waiter of this.#waiting.values()) {
        waiter.reject(new Error("inspector connection closed"));
      }
      this.#waiting.clear();
    };
  }

  /** Connects to the ws:// URL the process printed ("Debugger listening on"). */
  static async connect(url: string): Promise<InspectorSession> {
    const socket = new WebSocket(url);
    const opened = Promise.withResolvers<void>();
    socket.onopen = () => opened.resolve();
    socket.onerror = () =>
      opened.reject(new Error(`could not connect to the inspector at ${url}`));
    const timer = setTimeout(
      () => opened.reject(new Error(`no inspector answer from ${url}`)),
      CALL_TIMEOUT_MS,
    );
    try {
      await opened.promise;
    } catch (error) {
      socket.close();
      throw error;
    } finally {
      clearTimeout(timer);
    }
    const session = new InspectorSession(socket);
    await session.#call("Profiler.enable");
    return session;
  }

  #call(method: string, params: object = {}): Promise<unknown> {
    const id = this.#nextId++;
    const waiter = Promise.withResolvers<unknown>();
    this.#waiting.set(id, waiter);
    this.#socket.send(JSON.stringify({ id, method, params }));
    const timer = setTimeout(() => {
      this.#waiting.delete(id);
      waiter.reject(new Error(`inspector did not answer ${method}`));
    }, CALL_TIMEOUT_MS);
    return waiter.promise.finally(() => clearTimeout(timer));
  }

  startProfile(): Promise<unknown> {
    return this.#call("Profiler.start");
  }

  async stopProfile(): Promise<CpuProfile> {
    const result = await this.#call("Profiler.stop") as {
      profile: CpuProfile;
    };
    return result.profile;
  }

  /** V8's sampling heap profiler, counting what is collected too: garbage
   * is what the allocation profile is for. */
  async startAllocationSampling(): Promise<void> {
    await this.#call("HeapProfiler.enable");
    await this.#call("HeapProfiler.startSampling", {
      samplingInterval: ALLOCATION_SAMPLING_BYTES,
      includeObjectsCollectedByMinorGC: true,
      includeObjectsCollectedByMajorGC: true,
    });
  }

  async stopAllocationSampling(): Promise<SamplingHeapProfile> {
    const result = await this.#call("HeapProfiler.stopSampling") as {
      profile: SamplingHeapProfile;
    };
    return result.profile;
  }

  close(): void {
    this.#socket.close();
  }
}
