// Micro-benchmark of sending UDP the way an SFU fans out: bursts of
// 1200-byte datagrams spread over K sockets, through Deno's node:dgram and
// through libc's sendto (media/native_udp.ts), to a receiver in another
// process so that only the sending side is measured here. Prints datagrams
// per second and CPU µs per datagram, the median of several runs; asserts
// nothing.
//
//   deno run --allow-ffi --allow-read --allow-env --allow-net --allow-run bench/udp_micro.ts
import { Buffer } from "node:buffer";
import dgram from "node:dgram";
import process from "node:process";
import {
  loadNativeUdp,
  nativeSocketFor,
  NativeUdpSocket,
} from "../media/native_udp.ts";

const DATAGRAMS_PER_RUN = 60_000;
const RUNS = 3;
const SOCKET_COUNTS = [8, 32, 128];
/** Datagrams per burst per socket: a video frame (5) and a keyframe (15). */
const BURSTS = [5, 15];

/** A receiver in its own process, that only counts. */
async function startSink(): Promise<{ port: number; stop(): void }> {
  const code = `
    import dgram from "node:dgram";
    const socket = dgram.createSocket("udp4");
    socket.on("message", () => {});
    socket.bind(0, "127.0.0.1", () => console.log(socket.address().port));`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  return { port: Number(value), stop: () => child.kill("SIGKILL") };
}

type Send = (socket: number, data: Uint8Array) => void;

/** Sends in bursts (one burst per turn of the event loop, like a fan-out of
 * one incoming packet) until every datagram has been sent; resolves when
 * the last send is complete. */
async function run(
  send: Send,
  sockets: number,
  burst: number,
  outstanding: () => number,
): Promise<{ perSecond: number; cpuMicros: number }> {
  const data = Buffer.alloc(1200, 0x80);
  const cpu = process.cpuUsage();
  const started = performance.now();
  let sent = 0;
  while (sent < DATAGRAMS_PER_RUN) {
    for (let i = 0; i < sockets * burst; i++, sent++) send(i % sockets, data);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  while (outstanding() > 0) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return {
    perSecond: Math.round(sent / seconds),
    cpuMicros: (used.user + used.system) / sent,
  };
}

const median = (values: number[]) =>
  values.toSorted((a, b) => a - b)[Math.floor(values.length / 2)];

async function main() {
  const native = loadNativeUdp();
  if (!native.available) throw new Error(native.reason);
  const sink = await startSink();
  try {
    for (const count of SOCKET_COUNTS) {
      const sockets: dgram.Socket[] = [];
      for (let i = 0; i < count; i++) {
        const socket = dgram.createSocket("udp4");
        await new Promise<void>((resolve) =>
          socket.bind(0, "127.0.0.1", () => resolve())
        );
        sockets.push(socket);
      }
      const senders = sockets.map((socket) => {
        const sender = nativeSocketFor(native, socket);
        if (!(sender instanceof NativeUdpSocket)) {
          throw new Error(sender.reason);
        }
        return sender;
      });
      let pending = 0;
      const done = () => pending--;
      const viaDgram: Send = (i, data) => {
        pending++;
        sockets[i].send(data, sink.port, "127.0.0.1", done);
      };
      const viaSendto: Send = (i, data) => {
        senders[i].send(data, "127.0.0.1", sink.port);
      };
      for (const burst of BURSTS) {
        for (
          const [name, send] of [["node:dgram", viaDgram], [
            "sendto",
            viaSendto,
          ]] as const
        ) {
          const runs = [];
          for (let r = 0; r < RUNS; r++) {
            runs.push(await run(send, count, burst, () => pending));
          }
          console.log(
            `${count} sockets, bursts of ${count * burst}, ${name}: ${
              median(runs.map((r) => r.perSecond))
            } datagrams/s, ${
              median(runs.map((r) => r.cpuMicros)).toFixed(2)
            } µs CPU each`,
          );
        }
      }
      for (const sender of senders) sender.close();
      for (const socket of sockets) socket.close();
    }
  } finally {
    sink.stop();
  }
}

await main();
