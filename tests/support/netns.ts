// Runs a command inside a network namespace made for it alone, holding just
// a loopback interface (with multicast routed onto it): tests that multicast
// or bind well-known ports there cannot reach or disturb the real network.
// Needs root and util-linux's unshare; without them it throws, so a test
// that depends on it fails loudly instead of passing untested.

export interface NetnsResult {
  code: number;
  stdout: string;
  stderr: string;
}

const SETUP = "ip link set lo up && ip link set lo multicast on && " +
  'ip route replace 224.0.0.0/4 dev lo && exec "$@"';

export async function runInNetns(
  command: string[],
  options: { timeoutMs?: number } = {},
): Promise<NetnsResult> {
  if (Deno.uid() !== 0) {
    throw new Error(
      "this test needs root to create a private network namespace " +
        "(unshare --net); run the tests as root",
    );
  }
  const timeoutMs = options.timeoutMs ?? 30_000;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("unshare", {
      args: ["--net", "sh", "-c", SETUP, "sh", ...command],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        "unshare not found: install util-linux (apt-get install -y util-linux)",
      );
    }
    throw error;
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  try {
    const output = await child.output();
    const decoder = new TextDecoder();
    const result = {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
    if (timedOut) {
      throw new Error(
        `${
          command.join(" ")
        } did not finish within ${timeoutMs} ms:\n${result.stderr}`,
      );
    }
    return result;
  } finally {
    clearTimeout(timer);
  }
}
