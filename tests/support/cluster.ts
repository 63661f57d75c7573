// Several Umbrella processes on loopback, linked by trunks through their
// real HTTP API, for tests of multi-site sessions.
import {
  type ServerOptions,
  type ServerProcess,
  startServer,
} from "./server.ts";
import { waitFor, type WeriftClient } from "./werift_client.ts";

export async function startNodes(
  count: number,
  options: ServerOptions = {},
): Promise<ServerProcess[]> {
  return await Promise.all(
    Array.from(
      { length: count },
      (_, i) =>
        startServer({ ...options, args: ["--name", `site-${"ABCDEFGH"[i]}`] }),
    ),
  );
}

export interface ServerEntry {
  id: string;
  url: string;
  kind: string;
  state: string;
  lastError: string | null;
  detail: Record<string, unknown>;
}

/** Adds a trunk from one node to another through the servers API. */
export async function link(
  from: ServerProcess,
  to: ServerProcess,
): Promise<ServerEntry> {
  const response = await fetch(`${from.origin}${from.prefix}/api/servers`, {
    method: "POST",
    body: JSON.stringify({ url: to.wsUrl }),
    headers: { "content-type": "application/json" },
  });
  const body = await response.json();
  if (response.status !== 201) {
    throw new Error(`could not add trunk: ${JSON.stringify(body)}`);
  }
  return body.server;
}

export async function unlink(
  from: ServerProcess,
  entry: ServerEntry,
): Promise<void> {
  const response = await fetch(
    `${from.origin}${from.prefix}/api/servers/${entry.id}`,
    { method: "DELETE" },
  );
  await response.body?.cancel();
}

export async function servers(node: ServerProcess): Promise<ServerEntry[]> {
  return (await (await fetch(`${node.origin}${node.prefix}/api/servers`))
    .json()).servers;
}

interface TrunkStatus {
  remoteSite: string;
  bytesIn: number;
  bytesOut: number;
  tracksIn: number;
  tracksOut: number;
}

export async function trunks(node: ServerProcess): Promise<TrunkStatus[]> {
  return (await (await fetch(`${node.origin}${node.prefix}/api/status`)).json())
    .trunks;
}

/** Waits until every node has as many connected trunks as the topology gives it. */
export async function waitForTrunks(
  nodes: ServerProcess[],
  expected: number[],
  timeoutMs = 15_000,
): Promise<void> {
  const counts = new Array(nodes.length).fill(0);
  const deadline = performance.now() + timeoutMs;
  while (true) {
    for (const [i, node] of nodes.entries()) {
      counts[i] = (await trunks(node)).length;
    }
    if (counts.every((c, i) => c === expected[i])) return;
    if (performance.now() > deadline) {
      throw new Error(
        `trunks did not come up: have ${counts}, want ${expected}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Packets each client received per track so far. */
export function snapshot(clients: WeriftClient[]): Map<string, number>[] {
  return clients.map((c) =>
    new Map([...c.received].map(([id, t]) => [id, t.packets]))
  );
}

/** Waits until every listed track's packet count rose by at least `by` at every client. */
export async function waitForFlow(
  clients: WeriftClient[],
  trackCount: number,
  by = 20,
  timeoutMs = 15_000,
): Promise<void> {
  const before = snapshot(clients);
  await waitFor(
    `every client to receive ${trackCount} flowing tracks`,
    () =>
      clients.every((c, i) =>
        c.received.size === trackCount &&
        [...c.received].every(([id, t]) =>
          t.packets - (before[i].get(id) ?? 0) >= by
        )
      ),
    timeoutMs,
  );
}
