// mDNS as a running Umbrella does it: a local-mode node answers for its own
// <hostname>.local (not with --no-mdns, not in cloud mode), and a trunk URL
// naming a .local host reaches the node through that answer. Real nodes
// multicast, so each scenario runs in a private network namespace (and a
// private UTS namespace, for a host name nothing else knows); this file
// re-runs itself there with a scenario name, see the end.
import assert from "node:assert/strict";
import { lookup } from "node:dns/promises";
import { resolveMdns } from "../server/mdns.ts";
import {
  addServer,
  behindPlainRelay,
  nodeStatus,
  trunks,
  waitForServerEntry,
} from "./support/cluster.ts";
import { digMdns, playScenario, runScenarioInNetns } from "./support/netns.ts";
import { startServer } from "./support/server.ts";

/** How long a name nobody answers for is asked about. */
const SILENCE_MS = 1500;

function inNamespace(scenario: string): Promise<void> {
  const hostname = `umbrella-mdns-${
    crypto.getRandomValues(new Uint8Array(4)).reduce(
      (text, byte) => text + byte.toString(16).padStart(2, "0"),
      "",
    )
  }`;
  return runScenarioInNetns(import.meta.url, scenario, {
    wrapper: [
      "unshare",
      "--uts",
      "sh",
      "-c",
      'hostname "$0" && exec "$@"',
      hostname,
    ],
    permissions: ["--allow-all"],
    args: [hostname],
    timeoutMs: 90_000,
  });
}

Deno.test("a local-mode node answers mDNS for <hostname>.local; --no-mdns and cloud nodes do not", () =>
  inNamespace("responder"));

Deno.test("a trunk to wss://<hostname>.local:port/wsb connects through mDNS", () =>
  inNamespace("trunk"));

/** The name the scenario's nodes answer for, checked against the one set. */
function localName(): string {
  const hostname = Deno.hostname();
  assert.equal(hostname, Deno.args[1], "the UTS namespace's host name");
  return `${hostname}.local`;
}

function answering(logs: Record<string, unknown>[], name: string): boolean {
  return logs.some((entry) =>
    entry.msg === `answering mDNS queries for ${name}`
  );
}

const scenarios: Record<string, () => Promise<void>> = {
  async responder() {
    const name = localName();
    const silent = await Promise.all([
      startServer({ cloud: false }),
      // A cloud node has real DNS: it does not answer even with mDNS on.
      startServer({ cloud: true, mdns: true }),
    ]);
    try {
      for (const node of silent) assert.ok(!answering(node.logs, name));
      assert.equal(
        await resolveMdns(name, { timeoutMs: SILENCE_MS }),
        undefined,
        "nothing answers while only --no-mdns and cloud nodes run",
      );
      const node = await startServer({ cloud: false, mdns: true });
      try {
        assert.ok(answering(node.logs, name), JSON.stringify(node.logs));
        assert.equal(await resolveMdns(name), "127.0.0.1");
        assert.equal(await resolveMdns(name.toUpperCase()), "127.0.0.1");
        assert.match(
          await digMdns(name),
          new RegExp(
            `^${
              name.replaceAll(".", "\\.")
            }\\.\\s+10\\s+IN\\s+A\\s+127\\.0\\.0\\.1$`,
            "m",
          ),
        );
        assert.equal(
          await resolveMdns(`other-${name}`, { timeoutMs: SILENCE_MS }),
          undefined,
          "only its own name is answered",
        );
      } finally {
        await node.stop();
      }
      assert.equal(
        await resolveMdns(name, { timeoutMs: SILENCE_MS }),
        undefined,
        "a stopped node no longer answers",
      );
    } finally {
      await Promise.all(silent.map((node) => node.stop()));
    }
  },

  async trunk() {
    const name = localName();
    // Only B answers mDNS, so A can reach B by name only through B's answer.
    const [a, b] = await Promise.all([
      startServer({ cloud: false, args: ["--name", "site-A"] }),
      startServer({ cloud: false, mdns: true, args: ["--name", "site-B"] }),
    ]);
    const nodes = await Promise.all([a, b].map(behindPlainRelay));
    try {
      await assert.rejects(
        lookup(name),
        `the system resolver must not know ${name}, or mDNS goes untested`,
      );
      const fingerprint = (await nodeStatus(nodes[1])).node
        .certificateFingerprint;
      const url = `wss://${name}:${b.port}/wsb`;
      const added = await addServer(nodes[0], { url, fingerprint });
      assert.equal(added.status, 201, JSON.stringify(added.body));
      const entry = await waitForServerEntry(
        nodes[0],
        "connected",
        (entry) => entry.state === "connected",
      );
      assert.equal(entry.url, url);
      assert.equal(entry.lastError, null);
      assert.equal(entry.detail.remoteSite, "site-B");
      const [outgoing] = await trunks(nodes[0]);
      const [incoming] = await trunks(nodes[1]);
      assert.equal(outgoing.remoteSite, "site-B");
      assert.equal(incoming.remoteSite, "site-A");
    } finally {
      await Promise.all(nodes.map((node) => node.stop()));
    }
  },
};

if (import.meta.main) await playScenario(scenarios);
