// Runs a command inside a network namespace made for it alone, holding just
// a loopback interface (with multicast routed onto it): tests that multicast
// or bind well-known ports there cannot reach or disturb the real network.
// Needs root and util-linux's unshare; without them it throws, so a test
// that depends on it fails loudly instead of passing untested.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

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

const CONFIG = fileURLToPath(new URL("../../deno.json", import.meta.url));

export interface ScenarioOptions {
  /** Deno permission flags for the re-run file. */
  permissions: string[];
  /** Arguments after the scenario name. */
  args?: string[];
  /** A command prefix run inside the namespace, e.g. ["unshare", "--uts"]. */
  wrapper?: string[];
  timeoutMs?: number;
}

/**
 * Re-runs a test file inside a private network namespace, naming the
 * scenario it should play as its first argument; the file's top level does
 * so when it sees one and prints "<scenario> ok" at the end. Fails the
 * calling test with everything the scenario printed.
 */
export async function runScenarioInNetns(
  testFile: string,
  scenario: string,
  options: ScenarioOptions,
): Promise<void> {
  const result = await runInNetns([
    ...(options.wrapper ?? []),
    Deno.execPath(),
    "run",
    "--config",
    CONFIG,
    ...options.permissions,
    fileURLToPath(testFile),
    scenario,
    ...(options.args ?? []),
  ], { timeoutMs: options.timeoutMs });
  assert.equal(
    result.code,
    0,
    `scenario ${scenario} failed:\n${result.stdout}\n${result.stderr}`,
  );
  assert.match(result.stdout, new RegExp(`^${scenario} ok$`, "m"));
}

/** The namespace side of runScenarioInNetns: plays the scenario named by
 * the first argument and says so. */
export async function playScenario(
  scenarios: Record<string, () => Promise<void>>,
): Promise<void> {
  const name = Deno.args[0];
  const scenario = scenarios[name];
  if (!scenario) throw new Error(`unknown scenario ${name}`);
  await scenario();
  console.log(`${name} ok`);
}

/** Asks the mDNS responder on 127.0.0.1:5353 for `name`'s A record with dig,
 * returning dig's output. dig (BIND 9.18) connects its socket to the server
 * address, so it cannot take a reply to a query sent to the multicast group;
 * asked directly, it is a legacy unicast client like any DNS stub. */
export async function digMdns(name: string): Promise<string> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("dig", {
      args: ["@127.0.0.1", "-p", "5353", "+time=2", "+tries=2", name, "A"],
    }).output();
  } catch (error) {
    throw new Error(
      `dig is needed for this test: apt-get install -y dnsutils (${error})`,
    );
  }
  const text = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, text);
  return text;
}
