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

export interface TrunkStatus {
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
    () => clients.map((c) => c.describe()).join("\n"),
  );
}

/** POSTs an entry (e.g. {url, fingerprint}) to a node's servers list; the
 * status and body are returned as they are, so refusals can be checked. */
export async function addServer(
  node: ServerProcess,
  entry: Record<string, unknown>,
): Promise<{ status: number; body: { server?: ServerEntry; error?: string } }> {
  const response = await fetch(`${node.origin}${node.prefix}/api/servers`, {
    method: "POST",
    body: JSON.stringify(entry),
    headers: { "content-type": "application/json" },
  });
  return { status: response.status, body: await response.json() };
}

/** A node's api/status document. */
export async function nodeStatus(
  node: ServerProcess,
): Promise<{
  node: { site: string; certificateFingerprint: string | null };
  tracks: { id: string; site: string }[];
}> {
  return await (await fetch(`${node.origin}${node.prefix}/api/status`)).json();
}

/**
 * A local-mode (HTTPS) node as plain-HTTP test clients reach it: through a
 * loopback relay that speaks TLS to the node, trusting exactly the node's own
 * self-signed certificate. WeriftClient and the helpers above use fetch and
 * WebSocket without a per-call HttpClient, so this lets them all work
 * unchanged. Stopping the returned process closes the relay, then the node.
 */
export async function behindPlainRelay(
  node: ServerProcess,
): Promise<ServerProcess> {
  const caCerts = [await Deno.readTextFile(`${node.dataDir}/cert.pem`)];
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  const conns = new Set<Deno.Conn>();
  const relays = new Set<Promise<void>>();
  let closed = false;
  const closeQuietly = (conn: Deno.Conn) => {
    try {
      conn.close();
    } catch { /* already closed by the other direction */ }
  };
  const relay = async (client: Deno.Conn) => {
    conns.add(client);
    let upstream: Deno.TlsConn | undefined;
    try {
      upstream = await Deno.connectTls({
        hostname: "127.0.0.1",
        port: node.port,
        caCerts,
      });
      conns.add(upstream);
      if (closed) return;
      await Promise.allSettled([
        client.readable.pipeTo(upstream.writable),
        upstream.readable.pipeTo(client.writable),
      ]);
    } catch {
      /* the node went away: the client sees its connection close */
    } finally {
      for (const conn of [client, upstream]) {
        if (!conn) continue;
        conns.delete(conn);
        closeQuietly(conn);
      }
    }
  };
  const accepting = (async () => {
    for await (const client of listener) {
      const relayed = relay(client);
      relays.add(relayed);
      relayed.then(() => relays.delete(relayed));
    }
  })();
  return {
    ...node,
    port,
    origin: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}${node.prefix}/wsb`,
    async stop() {
      closed = true;
      listener.close();
      await accepting.catch(() => {});
      for (const conn of conns) closeQuietly(conn);
      await Promise.all(relays);
      await node.stop();
    },
  };
}

/** Waits until a node's first servers-list entry meets `condition`. */
export async function waitForServerEntry(
  node: ServerProcess,
  what: string,
  condition: (entry: ServerEntry) => boolean,
  timeoutMs = 15_000,
): Promise<ServerEntry> {
  const deadline = performance.now() + timeoutMs;
  while (true) {
    const [entry] = await servers(node);
    if (entry && condition(entry)) return entry;
    if (performance.now() > deadline) {
      throw new Error(
        `timed out waiting for the server entry to be ${what}: ${
          JSON.stringify(entry)
        }`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface TrunkMetrics {
  bytesOut: number;
  bytesIn: number;
  tracksOut: number;
  tracksIn: number;
}

/** A node's per-trunk figures from its Prometheus /metrics, by remote site. */
export async function trunkMetrics(
  node: ServerProcess,
): Promise<Map<string, TrunkMetrics>> {
  const text = await (await fetch(`${node.origin}${node.prefix}/metrics`))
    .text();
  const fields: Record<string, keyof TrunkMetrics> = {
    umbrella_trunk_bytes_out_total: "bytesOut",
    umbrella_trunk_bytes_in_total: "bytesIn",
    umbrella_trunk_tracks_out: "tracksOut",
    umbrella_trunk_tracks_in: "tracksIn",
  };
  const links = new Map<string, TrunkMetrics>();
  for (const line of text.split("\n")) {
    const match = line.match(
      /^(umbrella_trunk_\w+)\{remote_site="([^"]*)",[^}]*\} (\d+)$/,
    );
    if (!match || !(match[1] in fields)) continue;
    const link = links.get(match[2]) ??
      { bytesOut: 0, bytesIn: 0, tracksOut: 0, tracksIn: 0 };
    link[fields[match[1]]] = Number(match[3]);
    links.set(match[2], link);
  }
  return links;
}
