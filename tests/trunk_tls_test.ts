// Trunks between two local-mode (HTTPS, self-signed) Umbrella processes: the
// remote's certificate is verified unless its fingerprint, as its /status
// shows it, is pinned; a wrong pin is refused; the failure is told in plain
// words on the servers list and nothing crosses the link meanwhile.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { join } from "node:path";
import {
  addServer,
  behindPlainRelay,
  nodeStatus,
  type ServerEntry,
  servers,
  startNodes,
  trunks,
  unlink,
  waitForFlow,
  waitForServerEntry,
  waitForTrunks,
} from "./support/cluster.ts";
import type { ServerProcess } from "./support/server.ts";
import { waitFor, WeriftClient } from "./support/werift_client.ts";

const PIN_HINT =
  "pin its fingerprint (shown on the remote's /status page) to trust it";

const countLogs = (node: ServerProcess, msg: string) =>
  node.logs.filter((entry) => entry.msg === msg).length;
/** Trunk attempts the dialling node gave up on. */
const failedAttempts = (node: ServerProcess) =>
  countLogs(node, "trunk unavailable, retrying");
/** Trunk sessions that reached the remote's Hello. */
const trunksConnected = (node: ServerProcess) =>
  countLogs(node, "trunk connected");

/** Waits until the routers of all nodes together hold `count` tracks. */
async function waitForTracks(nodes: ServerProcess[], count: number) {
  const deadline = performance.now() + 15_000;
  while (true) {
    const held = await Promise.all(
      nodes.map(async (node) => (await nodeStatus(node)).tracks.length),
    );
    if (held.reduce((x, y) => x + y, 0) === count) return;
    if (performance.now() > deadline) {
      throw new Error(`routers hold ${held} tracks, want ${count} in all`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function tracksFromSite(client: WeriftClient, site: string): string[] {
  return [
    ...client.announced.values(),
    ...[...client.received.values()].map(
      (track) => track.info,
    ),
  ].filter((info) => info.site === site).map((info) => info.id!);
}

/** Tracks a node's router holds from sites other than its own. */
async function foreignTracks(nodes: ServerProcess[]): Promise<string[]> {
  const statuses = await Promise.all(nodes.map(nodeStatus));
  return statuses.flatMap((status) =>
    status.tracks.filter((track) => track.site !== status.node.site).map(
      (track) => `${track.id} from ${track.site} at ${status.node.site}`,
    )
  );
}

/** Nothing of either site's participants reached the other site. */
async function assertNothingCrossed(
  [a, b]: ServerProcess[],
  [atA, atB]: WeriftClient[],
) {
  assert.deepEqual(await trunks(a), []);
  assert.deepEqual(await trunks(b), []);
  assert.deepEqual(tracksFromSite(atA, "site-B"), []);
  assert.deepEqual(tracksFromSite(atB, "site-A"), []);
  assert.deepEqual(await foreignTracks([a, b]), []);
  assert.equal(trunksConnected(b), 0, "B never saw a trunk");
}

Deno.test("a trunk to a self-signed node: refused unless its /status fingerprint is pinned; removing it withdraws its tracks", async (t) => {
  const [a, b] = await startNodes(2, { cloud: false });
  // Test clients reach the nodes over plain HTTP; the trunk between the
  // nodes goes straight to B's HTTPS port.
  const nodes = await Promise.all([a, b].map(behindPlainRelay));
  const clients: WeriftClient[] = [];
  try {
    const [fingerprintA, fingerprintB] = await Promise.all(
      nodes.map(async (node, i) => {
        const shown = (await nodeStatus(node)).node.certificateFingerprint;
        const certPem = await Deno.readTextFile(
          join([a, b][i].dataDir, "cert.pem"),
        );
        assert.equal(shown, new X509Certificate(certPem).fingerprint256);
        return shown!;
      }),
    );
    assert.notEqual(fingerprintA, fingerprintB);
    assert.match(b.wsUrl, /^wss:\/\/127\.0\.0\.1:\d+\/wsb$/);
    const where = `127.0.0.1:${b.port}`;

    const atA = await WeriftClient.connect(nodes[0].wsUrl, "at-A");
    const atB = await WeriftClient.connect(nodes[1].wsUrl, "at-B");
    clients.push(atA, atB);
    await atA.publish({ audio: true, video: "vp8", tag: 0 });
    await atB.publish({ audio: true, video: "vp8", tag: 16 });
    await waitForTracks(nodes, 4);

    await t.step("without a pin the certificate is not trusted", async () => {
      const added = await addServer(nodes[0], { url: b.wsUrl });
      assert.equal(added.status, 201, JSON.stringify(added.body));
      const before = failedAttempts(a);
      const entry = await waitForServerEntry(
        nodes[0],
        "retrying after a certificate error",
        (entry) => entry.state === "retrying" && entry.lastError !== null,
      );
      assert.equal(
        entry.lastError,
        `certificate of ${where} is not trusted (self-signed?); ${PIN_HINT}`,
      );
      assert.equal(typeof entry.detail.remoteSite, "undefined");
      // A second failed attempt: the backoff retries, and still refuses.
      await waitFor(
        "a second refused attempt",
        () => failedAttempts(a) >= before + 2,
      );
      assert.equal(
        (await servers(nodes[0]))[0].lastError,
        entry.lastError,
      );
      await assertNothingCrossed(nodes, clients);
      await unlink(nodes[0], entry);
      assert.deepEqual(await servers(nodes[0]), []);
    });

    await t.step(
      "a wrong pin is refused, naming both fingerprints",
      async () => {
        // The operator pinned the fingerprint of the wrong node (A's own).
        const added = await addServer(nodes[0], {
          url: b.wsUrl,
          fingerprint: fingerprintA,
        });
        assert.equal(added.status, 201, JSON.stringify(added.body));
        assert.equal(added.body.server!.detail.fingerprint, fingerprintA);
        const entry = await waitForServerEntry(
          nodes[0],
          "retrying after a fingerprint mismatch",
          (entry) => entry.state === "retrying" && entry.lastError !== null,
        );
        assert.equal(
          entry.lastError,
          `certificate fingerprint mismatch: expected ${fingerprintA}, got ${fingerprintB} — the remote's certificate changed or this is not the expected server`,
        );
        await assertNothingCrossed(nodes, clients);
        await unlink(nodes[0], entry);
        assert.deepEqual(await servers(nodes[0]), []);
      },
    );

    await t.step("a malformed pin is refused when added", async () => {
      const added = await addServer(nodes[0], {
        url: b.wsUrl,
        fingerprint: "AB:CD",
      });
      assert.equal(added.status, 400);
      assert.match(added.body.error!, /32 hex byte pairs/);
      assert.deepEqual(await servers(nodes[0]), []);
    });

    let pinned: ServerEntry;
    await t.step(
      "the pinned fingerprint connects and media flows both ways",
      async () => {
        // As an operator copies it: lower case is accepted too.
        const added = await addServer(nodes[0], {
          url: b.wsUrl,
          fingerprint: fingerprintB.toLowerCase(),
        });
        assert.equal(added.status, 201, JSON.stringify(added.body));
        await waitForTrunks(nodes, [1, 1]);
        pinned = await waitForServerEntry(
          nodes[0],
          "connected",
          (entry) => entry.state === "connected",
        );
        assert.equal(pinned.url, b.wsUrl);
        assert.equal(pinned.lastError, null);
        assert.equal(pinned.detail.fingerprint, fingerprintB);
        assert.equal(pinned.detail.remoteSite, "site-B");
        assert.equal((await trunks(nodes[1]))[0].remoteSite, "site-A");

        await waitForFlow(clients, 2);
        for (
          const [client, remoteSite, remoteName] of [
            [atA, "site-B", "at-B"],
            [atB, "site-A", "at-A"],
          ] as const
        ) {
          const received = [...client.received.values()];
          assert.deepEqual(
            received.map((track) => track.info.site),
            [remoteSite, remoteSite],
          );
          assert.deepEqual(
            received.map((track) => track.info.participantName),
            [remoteName, remoteName],
          );
          assert.ok(
            received.every((track) => track.intact && track.tags.size === 1),
            `${client.name} receives the other site's payloads unchanged`,
          );
        }
      },
    );

    await t.step(
      "removing the entry stops the trunk and withdraws its tracks on both sides",
      async () => {
        const remoteTracks = [
          tracksFromSite(atA, "site-B"),
          tracksFromSite(atB, "site-A"),
        ];
        assert.equal(new Set(remoteTracks[0]).size, 2);
        assert.equal(new Set(remoteTracks[1]).size, 2);
        await unlink(nodes[0], pinned);
        assert.deepEqual(await servers(nodes[0]), []);
        await waitForTrunks(nodes, [0, 0]);
        await waitFor(
          "both clients to see the other site's tracks withdrawn",
          () =>
            [atA, atB].every((client, i) =>
              remoteTracks[i].every((id) =>
                client.withdrawn.has(id) && !client.announced.has(id)
              )
            ),
        );
        await waitForTracks(nodes, 4);
        assert.deepEqual(await foreignTracks(nodes), []);
        // A removed entry is not redialled (the first retry would come in
        // about a second).
        const connections = trunksConnected(b);
        await new Promise((resolve) => setTimeout(resolve, 1500));
        assert.equal(trunksConnected(b), connections);
        assert.deepEqual(await trunks(nodes[0]), []);
        assert.deepEqual(await trunks(nodes[1]), []);
      },
    );
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await Promise.all(nodes.map((node) => node.stop()));
  }
});
