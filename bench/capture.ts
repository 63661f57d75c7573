// A short tcpdump capture on the loopback interface of the RTP headers to
// and from chosen ports, for bench/wire_latency.ts. Needs tcpdump and the
// right to capture (root, or CAP_NET_RAW); without them the bench says why
// and reports no wire latency.
import { forEachLine, keepTail, terminate } from "../tests/support/child.ts";
import { parsePcap, type WirePacket } from "./wire_latency.ts";
import { withTimeout } from "./timeout.ts";

export const TCPDUMP = "/usr/bin/tcpdump";
/** Ethernet, IPv4, UDP and RTP's fixed header, with room for IP options. */
const SNAP_BYTES = 96;
const READY_TIMEOUT_MS = 5_000;

/** Why captures cannot be made here, or undefined if they can. */
export async function captureUnavailable(): Promise<string | undefined> {
  try {
    await Deno.stat(TCPDUMP);
  } catch {
    return `${TCPDUMP} not found (Debian package tcpdump)`;
  }
  if (Deno.uid() !== 0) {
    return "capturing on loopback needs root (tcpdump)";
  }
  return undefined;
}

/** Captures RTP from `sources` and to `sinks` for `seconds`. */
export async function captureRtp(
  sources: number[],
  sinks: number[],
  seconds: number,
): Promise<WirePacket[]> {
  const file = await Deno.makeTempFile({
    prefix: "umbrella-bench-",
    suffix: ".pcap",
  });
  const filter = `udp and (${
    [
      ...sources.map((p) => `src port ${p}`),
      ...sinks.map((p) => `dst port ${p}`),
    ].join(" or ")
  })`;
  const child = new Deno.Command(TCPDUMP, {
    args: [
      "-i",
      "lo",
      "-n",
      "-s",
      String(SNAP_BYTES),
      "-U",
      "--time-stamp-precision=nano",
      "-w",
      file,
      filter,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const said: string[] = [];
  // tcpdump says "listening on lo" once its filter is in place.
  const listening = Promise.withResolvers<void>();
  const stderrDone = forEachLine(child.stderr, (line) => {
    keepTail(said, line, 20);
    if (line.includes("listening on")) listening.resolve();
  });
  const exited = child.status.then(async (status) => {
    await stderrDone;
    listening.reject(
      new Error(`tcpdump exited (${status.code}): ${said.join(" / ")}`),
    );
  });
  try {
    await withTimeout(
      listening.promise,
      READY_TIMEOUT_MS,
      () => `tcpdump did not start: ${said.join(" / ")}`,
    );
    await new Promise((r) => setTimeout(r, seconds * 1000));
  } finally {
    // SIGTERM makes tcpdump flush and close its file.
    await terminate(child, exited);
  }
  try {
    return parsePcap(await Deno.readFile(file));
  } finally {
    await Deno.remove(file).catch(() => {});
  }
}
