// Trunks between real Umbrella processes on loopback, with real werift
// participants at each node: exactly-once delivery on chains, cycles and
// meshes, pull-only backhaul, failover and restart.
import assert from "node:assert/strict";
import { decodeEnvelope, encodeEnvelope } from "../proto/codec.ts";
import { MediaKind, PeerKind, PROTOCOL_VERSION } from "../proto/messages.ts";
import {
  link,
  snapshot,
  startNodes,
  trunkMetrics,
  trunks,
  unlink,
  waitForFlow,
  waitForTrunks,
} from "./support/cluster.ts";
import { type ServerProcess, startServer } from "./support/server.ts";
import { waitFor, WeriftClient } from "./support/werift_client.ts";

async function stopAll(clients: WeriftClient[], nodes: ServerProcess[]) {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(nodes.map((n) => n.stop()));
}

/** Every track a client receives carries its own publisher's payloads,
 * unchanged, and no more packets than were sent: nothing arrives twice. */
function assertExactlyOnce(clients: WeriftClient[]) {
  const sentBy = new Map<number, number>();
  for (const client of clients) {
    for (const [tag, count] of client.sent) sentBy.set(tag, count);
  }
  for (const client of clients) {
    for (const track of client.received.values()) {
      assert.ok(
        track.intact,
        `${client.name}: ${track.info.id} arrives unchanged`,
      );
      assert.equal(
        track.tags.size,
        1,
        `${client.name}: ${track.info.id} carries one source`,
      );
      const [tag] = track.tags;
      assert.ok(
        track.packets <= (sentBy.get(tag) ?? 0) + 5,
        `${client.name}: ${track.packets} packets of ${track.info.id} for ${
          sentBy.get(tag)
        } sent`,
      );
      assert.notEqual(
        track.info.participantId,
        client.peerId,
        "nothing loops back",
      );
    }
  }
}

Deno.test("a chain of three nodes: every track reaches every site once, pulled only where watched", async () => {
  const nodes = await startNodes(3);
  const [a, b, c] = nodes;
  const clients: WeriftClient[] = [];
  try {
    await link(a, b);
    await link(b, c);
    await waitForTrunks(nodes, [1, 2, 1]);
    const atA = await WeriftClient.connect(a.wsUrl, "at-A");
    const atB = await WeriftClient.connect(b.wsUrl, "at-B");
    const watcher1 = await WeriftClient.connect(c.wsUrl, "watcher-1");
    const watcher2 = await WeriftClient.connect(c.wsUrl, "watcher-2");
    clients.push(atA, atB, watcher1, watcher2);
    // Nobody at A or B watches anything: what C publishes must not cross.
    atA.autoSubscribe = false;
    atB.autoSubscribe = false;
    await atA.publish({ audio: true, video: "vp8", tag: 0 });
    await atB.publish({ audio: true, tag: 16 });
    await watcher1.publish({ video: "vp8", tag: 32 });
    await waitForFlow([watcher1], 3);
    await waitForFlow([watcher2], 4);
    for (const track of watcher1.received.values()) {
      assert.equal(
        track.info.site,
        track.info.participantName === "at-A" ? "site-A" : "site-B",
      );
    }
    const atAVideo = [...watcher2.received.values()].find((t) =>
      t.info.participantName === "at-A" && t.info.kind === MediaKind.Video
    )!;
    assert.deepEqual(
      atAVideo.info.path!.length,
      3,
      "A's track crossed A, B and C",
    );
    assertExactlyOnce(clients);

    const [aToB] = await trunks(a);
    const bTrunks = await trunks(b);
    const bToC = bTrunks.find((t) => t.remoteSite === "site-C")!;
    const bFromA = bTrunks.find((t) => t.remoteSite === "site-A")!;
    const [cToB] = await trunks(c);
    // Two watchers at C, yet A's tracks cross A-B and B-C once: the bytes on
    // each link stay below two copies of what A sent.
    const sentByA = [...atA.sent.values()].reduce((x, y) => x + y, 0);
    assert.equal(aToB.tracksOut, 2, "A sends its two tracks to B once");
    assert.equal(
      bToC.tracksOut,
      3,
      "B sends A's two tracks and its own audio to C",
    );
    assert.ok(
      aToB.bytesOut > 0 && aToB.bytesOut < sentByA * 1000 * 1.5,
      `A to B carried ${aToB.bytesOut} bytes`,
    );
    assert.equal(
      bFromA.bytesOut,
      0,
      "nothing at A watches B's audio: no media from B to A",
    );
    assert.equal(
      cToB.bytesOut,
      0,
      "nothing outside C watches C's video: no media from C to B",
    );
    assert.equal(cToB.tracksOut, 0);
    // The same figures as an operator's Prometheus sees them.
    const [metricsA, metricsB, metricsC] = await Promise.all(
      nodes.map(trunkMetrics),
    );
    const aToBMetrics = metricsA.get("site-B")!;
    assert.equal(aToBMetrics.tracksOut, 2);
    assert.ok(aToBMetrics.bytesOut >= aToB.bytesOut);
    assert.ok(aToBMetrics.bytesOut < sentByA * 1000 * 1.5);
    assert.equal(metricsB.get("site-A")!.bytesOut, 0);
    assert.ok(metricsB.get("site-A")!.bytesIn > 0);
    assert.equal(metricsB.get("site-C")!.tracksOut, 3);
    assert.equal(metricsC.get("site-B")!.bytesOut, 0);
    assert.equal(metricsC.get("site-B")!.tracksIn, 3);
  } finally {
    await stopAll(clients, nodes);
  }
});

Deno.test("a triangle: exactly-once delivery, failover within 10 s when a link is cut, no duplicates after it returns", async () => {
  const nodes = await startNodes(3);
  const [a, b, c] = nodes;
  const clients: WeriftClient[] = [];
  try {
    const ab = await link(a, b);
    await link(b, c);
    await link(c, a);
    await waitForTrunks(nodes, [2, 2, 2]);
    for (const [i, node] of nodes.entries()) {
      const client = await WeriftClient.connect(node.wsUrl, `at-${"ABC"[i]}`);
      clients.push(client);
      await client.publish({ audio: true, video: "vp8", tag: i * 16 });
    }
    await waitForFlow(clients, 4);
    assertExactlyOnce(clients);

    await unlink(a, ab);
    const cutAt = performance.now();
    await waitForTrunks(nodes, [1, 1, 2]);
    await waitForFlow(clients, 4, 20, 10_000);
    const recovered = performance.now() - cutAt;
    assert.ok(
      recovered < 10_000,
      `all tracks flowing again ${Math.round(recovered)} ms after the cut`,
    );

    await link(a, b);
    await waitForTrunks(nodes, [2, 2, 2]);
    await waitForFlow(clients, 4);
    // Over a quiet window, each track delivers no more than its sender sent.
    const before = snapshot(clients);
    const sentBefore = new Map(clients.flatMap((cl) => [...cl.sent]));
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const sentAfter = new Map(clients.flatMap((cl) => [...cl.sent]));
    for (const [i, client] of clients.entries()) {
      for (const [id, track] of client.received) {
        const [tag] = track.tags;
        const sent = sentAfter.get(tag)! - sentBefore.get(tag)!;
        const got = track.packets - (before[i].get(id) ?? 0);
        assert.ok(
          got <= sent + 5,
          `${client.name}: ${got} packets of ${id} in a window where ${sent} were sent`,
        );
        assert.ok(
          got > sent / 2,
          `${client.name}: ${id} still flows (${got} of ${sent})`,
        );
      }
    }
    assertExactlyOnce(clients);
  } finally {
    await stopAll(clients, nodes);
  }
});

Deno.test("a full mesh of four nodes: every participant receives every other participant's tracks exactly once", async () => {
  const nodes = await startNodes(4);
  const clients: WeriftClient[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      for (let j = i + 1; j < 4; j++) await link(nodes[i], nodes[j]);
    }
    await waitForTrunks(nodes, [3, 3, 3, 3]);
    for (const [i, node] of nodes.entries()) {
      const client = await WeriftClient.connect(node.wsUrl, `at-${"ABCD"[i]}`);
      clients.push(client);
      await client.publish({ audio: true, video: "vp8", tag: i * 16 });
    }
    await waitForFlow(clients, 6);
    assertExactlyOnce(clients);
    // With every pair linked, each track settles on its direct link only: a
    // longer path heard first is given up once the direct one is announced.
    const busiest = async () => {
      let most = 0;
      for (const node of nodes) {
        for (const trunk of await trunks(node)) {
          most = Math.max(most, trunk.tracksOut);
        }
      }
      return most;
    };
    let most = await busiest();
    const deadline = performance.now() + 10_000;
    while (most > 2 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      most = await busiest();
    }
    assert.ok(most <= 2, `a link still carries ${most} tracks`);
    assertExactlyOnce(clients);
  } finally {
    await stopAll(clients, nodes);
  }
});

Deno.test("a restarted node brings its trunks back from the saved servers list", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "umbrella-test-" });
  const remote = await startServer({ args: ["--name", "site-R"] });
  let local = await startServer({ dataDir, args: ["--name", "site-L"] });
  const clients: WeriftClient[] = [];
  try {
    await link(local, remote);
    await waitForTrunks([local, remote], [1, 1]);
    await local.stop();
    await waitForTrunks([remote], [0]);
    local = await startServer({ dataDir, args: ["--name", "site-L"] });
    await waitForTrunks([local, remote], [1, 1]);
    const here = await WeriftClient.connect(local.wsUrl, "here");
    const there = await WeriftClient.connect(remote.wsUrl, "there");
    clients.push(here, there);
    await here.publish({ audio: true, tag: 0 });
    await waitFor(
      "media across the restored trunk",
      () => [...there.received.values()].some((t) => t.packets > 10),
    );
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all([local.stop(), remote.stop()]);
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a node announcing one bad track keeps its link; its good tracks still reach participants", async () => {
  const server = await startServer();
  const socket = new WebSocket(server.wsUrl);
  socket.binaryType = "arraybuffer";
  let opened = false;
  let helloed = false;
  let closed: string | undefined;
  socket.onopen = () => opened = true;
  socket.onmessage = (event) => {
    if (decodeEnvelope(new Uint8Array(event.data)).hello) helloed = true;
  };
  socket.onclose = (event) => closed = `${event.code} ${event.reason}`;
  const watcher = await WeriftClient.connect(server.wsUrl, "watcher", {
    autoSubscribe: false,
  });
  try {
    await waitFor("the node's socket to open", () => opened);
    const nodeId = "ab".repeat(16);
    socket.send(encodeEnvelope({
      hello: {
        protocolVersion: PROTOCOL_VERSION,
        kind: PeerKind.Node,
        name: "remote",
        nodeId,
        site: "site-R",
      },
    }));
    await waitFor("the server's hello", () => helloed);
    const track = (id: string, mimeType: string) => ({
      id,
      kind: MediaKind.Video,
      mimeType,
      clockRate: 90000,
      participantId: "p-remote",
      participantName: "Remote person",
      site: "site-R",
      originNodeId: nodeId,
      path: [nodeId],
    });
    socket.send(encodeEnvelope({
      announce: {
        tracks: [track("r:bad", "video/H265"), track("r:good", "video/VP8")],
      },
    }));
    await waitFor(
      "the good track to be announced",
      () => watcher.announced.has("r:good"),
    );
    assert.ok(!watcher.announced.has("r:bad"), "the bad track is not");
    assert.equal(closed, undefined, "the link stays open");
    assert.ok(
      server.logs.some((l) =>
        l.msg === "ignoring a track another node announced" &&
        /unsupported codec video\/H265/.test(String(l.reason))
      ),
      "the operator is told which track was ignored and why",
    );
  } finally {
    socket.close();
    await watcher.close();
    await server.stop();
  }
});

Deno.test("another node may send frames up to 1 MiB, four times a participant's limit", async () => {
  const server = await startServer();
  /** Opens a raw signalling socket, says hello as `kind`, and sends a frame
   * of `bytes` holding an offer; resolves to how the server closed it, or
   * "open" if it had not within a second of answering. */
  const offerOfSize = async (kind: PeerKind, bytes: number) => {
    const socket = new WebSocket(server.wsUrl);
    socket.binaryType = "arraybuffer";
    const closed = Promise.withResolvers<string>();
    socket.onclose = (event) => closed.resolve(`${event.code}`);
    const helloed = Promise.withResolvers<void>();
    socket.onmessage = (event) => {
      if (decodeEnvelope(new Uint8Array(event.data)).hello) helloed.resolve();
    };
    await new Promise((resolve) => socket.onopen = resolve);
    socket.send(encodeEnvelope({
      hello: {
        protocolVersion: PROTOCOL_VERSION,
        kind,
        name: "big",
        nodeId: "cd".repeat(16),
        site: "site-Z",
      },
    }));
    await helloed.promise;
    const sdp = `v=0\r\na=x-padding:${"p".repeat(bytes)}\r\n`;
    socket.send(encodeEnvelope({ offer: { sdp, tracks: [] } }));
    const timer = setTimeout(() => closed.resolve("open"), 3000);
    const outcome = await closed.promise;
    clearTimeout(timer);
    socket.close();
    return outcome;
  };
  try {
    // Past the size gate the offer is judged on what it says (an SDP with no
    // media is not refused for its size): anything but 1009.
    assert.notEqual(await offerOfSize(PeerKind.Node, 600 * 1024), "1009");
    assert.equal(await offerOfSize(PeerKind.Node, 1100 * 1024), "1009");
    assert.equal(await offerOfSize(PeerKind.Browser, 300 * 1024), "1009");
  } finally {
    await server.stop();
  }
});
