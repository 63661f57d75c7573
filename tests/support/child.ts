// Small helpers for the child processes tests and the bench start (Umbrella,
// Janus, load generators): their output read line by line, and a stop that
// asks first and kills if asking does not work.

/** Calls onLine with each complete line of a child's output until it ends. */
export async function forEachLine(
  stream: ReadableStream<Uint8Array<ArrayBuffer>>,
  onLine: (line: string) => void,
): Promise<void> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let newline;
    while ((newline = pending.indexOf("\n")) >= 0) {
      onLine(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
    }
  }
  if (pending !== "") onLine(pending);
}

/** Appends a line, keeping only the newest `max` (for error reports). */
export function keepTail(tail: string[], line: string, max: number): void {
  if (line === "") return;
  tail.push(line);
  if (tail.length > max) tail.shift();
}

/** SIGTERM, then SIGKILL if the child has not exited within graceMs. */
export async function terminate(
  child: Deno.ChildProcess,
  exited: Promise<unknown>,
  graceMs = 5000,
): Promise<void> {
  const signal = (name: Deno.Signal) => {
    try {
      child.kill(name);
    } catch { /* already gone */ }
  };
  signal("SIGTERM");
  const killer = setTimeout(() => signal("SIGKILL"), graceMs);
  await exited;
  clearTimeout(killer);
}
