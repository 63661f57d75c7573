// Janus cannot serve media on loopback: its ICE set-up skips every interface
// flagged IFF_LOOPBACK (janus-gateway ice.c, janus_ice_setup_local), and in a
// namespace with nothing but lo it finds no address and fails to gather. So a
// run that compares with Janus re-executes itself in a private network
// namespace holding lo and one veth pair whose both ends stay inside: Janus
// gets a private address there, Umbrella keeps 127.0.0.1, and no packet can
// leave the namespace. Traffic to either address is delivered locally by the
// kernel in the same way, so both SFUs pay the same network cost.

import { fileURLToPath } from "node:url";

/** Set inside the namespace to the address Janus gathers on. */
export const NAMESPACE_ENV = "UMBRELLA_BENCH_NAMESPACE_ADDRESS";
/** Private (RFC 1918) and only ever assigned inside the namespace. */
const JANUS_ADDRESS = "10.203.0.1";

const SETUP = [
  "set -e",
  "ip link set lo up",
  "ip link add umbj0 type veth peer name umbj1",
  `ip addr add ${JANUS_ADDRESS}/32 dev umbj0`,
  // Janus also wants the interface running, which a veth is once both ends are up.
  "ip link set umbj0 up",
  "ip link set umbj1 up",
  'exec "$@"',
].join("\n");

/** The address Janus should use, when running inside the bench namespace. */
export function namespaceAddress(): string | undefined {
  return Deno.env.get(NAMESPACE_ENV) || undefined;
}

function unshareArgs(): string[] {
  return [
    ...(Deno.uid() === 0 ? [] : ["--user", "--map-root-user"]),
    "--net",
    "--kill-child",
    "sh",
    "-c",
    SETUP,
    "sh",
  ];
}

/** Why a namespace cannot be made here, or undefined if it can. */
export async function namespaceUnavailable(): Promise<string | undefined> {
  try {
    const { success, stderr } = await new Deno.Command("unshare", {
      args: [...unshareArgs(), "true"],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    return success
      ? undefined
      : `could not make a private network namespace for Janus: ${
        new TextDecoder().decode(stderr).trim()
      }`;
  } catch (error) {
    return error instanceof Deno.errors.NotFound
      ? "util-linux's unshare is not installed (it makes the private network namespace Janus runs in)"
      : `could not run unshare: ${error}`;
  }
}

/** Runs this process's command line again inside a fresh network namespace
 * and returns its exit code. Root gets a plain `unshare --net`; anyone else a
 * user namespace that maps them to root, which many kernels allow. */
export async function rerunInNamespace(
  script: string,
  args: string[],
): Promise<number> {
  const command = [
    ...unshareArgs(),
    Deno.execPath(),
    "run",
    "--config",
    fileURLToPath(new URL("../deno.json", import.meta.url)),
    "--allow-all",
    script,
    ...args,
  ];
  const child = new Deno.Command("unshare", {
    args: command,
    env: { [NAMESPACE_ENV]: JANUS_ADDRESS },
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  // Ctrl-C reaches the whole process group; the child then cleans up itself.
  const forward = () => {};
  Deno.addSignalListener("SIGINT", forward);
  try {
    return (await child.status).code;
  } finally {
    Deno.removeSignalListener("SIGINT", forward);
  }
}
