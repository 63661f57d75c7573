// What the kernel says about processes and the machine: CPU time and memory
// are read from /proc so the SFU's cost is measured from outside it, the same
// way for Umbrella and Janus, without the SFU's own help. Also a free port.

let ticksPerSecond = 100;

/** Reads the kernel's clock-tick rate once (utime/stime are in these ticks). */
export async function initClockTicks(): Promise<void> {
  try {
    const { stdout, success } = await new Deno.Command("getconf", {
      args: ["CLK_TCK"],
      stdout: "piped",
      stderr: "null",
    }).output();
    const value = Number(new TextDecoder().decode(stdout).trim());
    if (success && value > 0) ticksPerSecond = value;
  } catch {
    // getconf missing: Linux has used 100 ticks per second for decades.
  }
}

/** User + system CPU seconds a process (all its threads) has used so far. */
export function cpuSeconds(pid: number): number {
  return cpuFromStat(Deno.readTextFileSync(`/proc/${pid}/stat`));
}

/** CPU time of each thread of a process, in nanoseconds by thread id. */
export type ThreadCpu = Map<number, number>;

/** Every thread's CPU time from /proc/<pid>/task/<tid>/schedstat, counted in
 * nanoseconds. cpuSeconds() counts whole clock ticks (10 ms): at low load a
 * 2-second window of a few percent of a core is a handful of ticks, so one
 * tick either way moved a point's µs per packet by a sixth. Falls back to
 * the process's ticks (as thread 0) where schedstat is missing. */
export function threadCpu(pid: number): ThreadCpu {
  const threads: ThreadCpu = new Map();
  try {
    for (const entry of Deno.readDirSync(`/proc/${pid}/task`)) {
      try {
        const schedstat = Deno.readTextFileSync(
          `/proc/${pid}/task/${entry.name}/schedstat`,
        );
        threads.set(Number(entry.name), Number(schedstat.split(" ")[0]));
      } catch { /* the thread exited meanwhile */ }
    }
  } catch { /* no task listing */ }
  if (threads.size === 0) threads.set(0, cpuSeconds(pid) * 1e9);
  return threads;
}

/** CPU seconds the process used between two readings. A thread that ended
 * in between loses what it used since the first reading (an SFU's threads
 * live as long as it does; the runtime's idle helpers do next to nothing). */
export function cpuSecondsBetween(start: ThreadCpu, end: ThreadCpu): number {
  let nanoseconds = 0;
  for (const [thread, used] of end) {
    nanoseconds += used - (start.get(thread) ?? 0);
  }
  return nanoseconds / 1e9;
}

function cpuFromStat(stat: string): number {
  // The command name (field 2) may contain spaces; fields after it are plain.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 overall, 12 and 13 after the name.
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

/** Resident set size of a process in bytes. */
export function rssBytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const match = status.match(/^VmRSS:\s+(\d+) kB$/m);
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}

export interface MachineCpu {
  busy: number;
  /** Time the hypervisor gave this machine's CPUs to someone else. */
  steal: number;
  total: number;
}

/** Jiffies the whole machine spent busy and in total, for a busy fraction. */
export function machineCpu(): MachineCpu {
  const line = Deno.readTextFileSync("/proc/stat").split("\n")[0];
  // user nice system idle iowait irq softirq steal (guest time is already
  // inside user and nice, so the guest columns after these are left out).
  const [user, nice, system, idle, iowait, irq, softirq, steal = 0] = line
    .trim().split(/\s+/).slice(1, 9).map(Number);
  const busy = user + nice + system + irq + softirq;
  return { busy, steal, total: busy + idle + iowait + steal };
}

/** CPU seconds and command name of every process, to find who else used
 * the machine during a measurement. */
export function allProcesses(): Map<number, { name: string; cpu: number }> {
  const processes = new Map<number, { name: string; cpu: number }>();
  for (const entry of Deno.readDirSync("/proc")) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      processes.set(pid, { name, cpu: cpuFromStat(stat) });
    } catch { /* exited meanwhile */ }
  }
  return processes;
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  loadAverage: number[];
}

export function machineInfo(): MachineInfo {
  const cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  const model = cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1] ?? "unknown";
  const memory = Deno.readTextFileSync("/proc/meminfo").match(
    /^MemTotal:\s+(\d+) kB$/m,
  );
  return {
    cpuModel: model.trim(),
    cores: navigator.hardwareConcurrency,
    memoryGiB: memory ? Math.round(Number(memory[1]) / 1024 / 1024) : 0,
    kernel: Deno.osRelease(),
    loadAverage: Deno.loadavg().map((v) => Math.round(v * 100) / 100),
  };
}

/** A TCP port on 127.0.0.1 that was free a moment ago, for a child process
 * that cannot be told to pick one itself and report it. */
export function freeLoopbackPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
