// Summarises V8 profiles (bench/inspector.ts takes them): a CPU profile as
// the functions with the most self time, which is where an optimisation would
// pay, and an allocation profile as the places that allocate the most, which
// is where garbage collection's work (and its pauses) comes from.

export interface ProfileEntry {
  function: string;
  /** url:line of the function, shortened to the package or repo path. */
  location: string;
  selfMs: number;
  /** Share of the busy (non-idle) time. */
  selfPercent: number;
}

export interface ProfileSummary {
  /** Which SFU process (by its role in the bench) was profiled. */
  process: string;
  totalMs: number;
  /** Share of all the time the thread waited for work. */
  idlePercent: number;
  /** Share of the busy time spent collecting garbage. */
  gcPercent: number;
  top: ProfileEntry[];
}

export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }[];
  samples: number[];
  timeDeltas: number[];
}

function shortLocation(url: string, line: number): string {
  const npm = url.match(
    /node_modules\/(?:\.deno\/[^/]+\/node_modules\/)?(.+)$/,
  );
  const path = npm
    ? npm[1]
    : url.replace(/^file:\/\/.*?\/(media|server|proto)\//, "$1/");
  return path ? `${path}:${line + 1}` : "(native)";
}

export function summariseProfile(
  process: string,
  profile: CpuProfile,
  count = 25,
): ProfileSummary {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const selfByKey = new Map<string, number>();
  let totalUs = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    totalUs += delta;
    const frame = nodes.get(id);
    if (!frame) return;
    const key = `${frame.functionName || "(anonymous)"}\t${
      shortLocation(frame.url, frame.lineNumber)
    }`;
    selfByKey.set(key, (selfByKey.get(key) ?? 0) + delta);
  });
  const special = (name: string) => selfByKey.get(`${name}\t(native)`) ?? 0;
  const share = (us: number, of: number) =>
    of > 0 ? Math.round(us / of * 1000) / 10 : 0;
  const busyUs = totalUs - special("(idle)");
  const percent = (us: number) => share(us, busyUs);
  const top = [...selfByKey]
    .filter(([key]) => !key.startsWith("(idle)"))
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([key, us]) => {
      const [name, location] = key.split("\t");
      return {
        function: name,
        location,
        selfMs: Math.round(us / 1000),
        selfPercent: percent(us),
      };
    });
  return {
    process,
    totalMs: Math.round(totalUs / 1000),
    idlePercent: share(special("(idle)"), totalUs),
    gcPercent: percent(special("(garbage collector)")),
    top,
  };
}

/** V8's sampling heap profile: a tree of call frames with the bytes sampled
 * as allocated in each. */
export interface SamplingHeapProfile {
  head: SamplingHeapNode;
}

interface SamplingHeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: SamplingHeapNode[];
}

export interface AllocationEntry {
  function: string;
  /** url:line, shortened as in CPU profiles. */
  location: string;
  /** Its caller, which tells a library's many uses of one helper apart. */
  calledFrom: string;
  bytesPerSecond: number;
  percent: number;
}

export interface AllocationSummary {
  process: string;
  bytesPerSecond: number;
  top: AllocationEntry[];
}

/** The call sites that allocated the most over `seconds`. */
export function summariseAllocations(
  process: string,
  profile: SamplingHeapProfile,
  seconds: number,
  count = 20,
): AllocationSummary {
  const bytesByKey = new Map<string, number>();
  let total = 0;
  const name = (frame: SamplingHeapNode["callFrame"]) =>
    `${frame.functionName || "(anonymous)"} ${
      shortLocation(frame.url, frame.lineNumber)
    }`;
  const walk = (node: SamplingHeapNode, caller: string) => {
    const here = name(node.callFrame);
    if (node.selfSize > 0) {
      const key = `${here}\t${caller}`;
      bytesByKey.set(key, (bytesByKey.get(key) ?? 0) + node.selfSize);
      total += node.selfSize;
    }
    for (const child of node.children) walk(child, here);
  };
  walk(profile.head, "");
  const perSecond = (bytes: number) => Math.round(bytes / seconds);
  const top = [...bytesByKey]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([key, bytes]) => {
      const [here, calledFrom] = key.split("\t");
      const space = here.lastIndexOf(" ");
      return {
        function: here.slice(0, space),
        location: here.slice(space + 1),
        calledFrom,
        bytesPerSecond: perSecond(bytes),
        percent: total > 0 ? Math.round(bytes / total * 1000) / 10 : 0,
      };
    });
  return { process, bytesPerSecond: perSecond(total), top };
}
