// Simulcast end to end: a werift publisher sends three layers (RTP stream
// ids, an SSRC each, as browsers do) to a real Umbrella process; werift
// subscribers get one layer at a time, in one unbroken stream, chosen by
// their preference, their losses and what the publisher still sends; and a
// trunk carries only the layers watched beyond it.
import assert from "node:assert/strict";
import { MediaKind, type TrackInfo } from "../proto/messages.ts";
import { link, startNodes, trunks, waitForTrunks } from "./support/cluster.ts";
import { metric, type ServerProcess, startServer } from "./support/server.ts";
import {
  layerTag,
  type PublishOptions,
  type ReceivedTrack,
  waitFor,
  WeriftClient,
} from "./support/werift_client.ts";

const TAG = 0;
const layerOf = (tag: number) => Math.round((tag - TAG - 1) / 1000);

/** The layers a client was told of, lowest first. */
function announcedLayers(client: WeriftClient): TrackInfo[] {
  return [...client.announced.values()]
    .filter((t) => t.kind === MediaKind.Video && t.simulcast)
    .sort((a, b) => (a.simulcast!.layer ?? 0) - (b.simulcast!.layer ?? 0));
}

async function publishLayers(
  publisher: WeriftClient,
  options: Partial<PublishOptions> = {},
): Promise<void> {
  await publisher.publish({
    video: "vp8",
    tag: TAG,
    simulcastLayers: 3,
    videoPayloadBytes: 600,
    // Switches wait for a keyframe; werift's test publisher cannot take
    // PLIs for SSRCs its sender does not own, so it sends them often.
    keyframeIntervalFrames: 10,
    ...options,
  });
}

async function subscribeToGroup(
  subscriber: WeriftClient,
  layer: number,
): Promise<string> {
  await waitFor(
    `${subscriber.name} to be told of three layers`,
    () => announcedLayers(subscriber).length === 3,
    15_000,
    () => JSON.stringify([...subscriber.announced.values()]),
  );
  const layers = announcedLayers(subscriber);
  assert.deepEqual(layers.map((t) => t.simulcast!.layer ?? 0), [0, 1, 2]);
  assert.equal(
    new Set(layers.map((t) => t.simulcast!.group)).size,
    1,
    "one group",
  );
  const id = layers[layer].id!;
  subscriber.send({ subscribe: { trackIds: [id] } });
  return id;
}

/** A node's subscribers to each simulcast layer, lowest first. */
async function watchedLayers(node: ServerProcess): Promise<number[]> {
  const status = await (await fetch(`${node.origin}${node.prefix}/api/status`))
    .json();
  const layers: { simulcastLayer: number; subscribers: number }[] = status
    .tracks.filter((t: { simulcastLayer?: number }) =>
      t.simulcastLayer !== undefined
    );
  return layers.sort((x, y) => x.simulcastLayer - y.simulcastLayer)
    .map((t) => t.subscribers);
}

const video = (client: WeriftClient): ReceivedTrack | undefined =>
  [...client.received.values()].find((t) => t.info.kind === MediaKind.Video);

async function waitForLayer(
  client: WeriftClient,
  layer: number,
  what: string,
  timeoutMs = 15_000,
): Promise<void> {
  let packetsThen = -1;
  await waitFor(
    `${client.name} to receive layer ${layer} ${what}`,
    () => {
      const track = video(client);
      if (!track || track.lastTag !== layerTag(TAG, layer)) return false;
      // A few packets more of it, not one stray.
      if (packetsThen < 0) packetsThen = track.packets;
      return track.packets >= packetsThen + 10;
    },
    timeoutMs,
    () => {
      const track = video(client);
      return track
        ? `latest layer ${layerOf(track.lastTag)}, ${track.packets} packets`
        : client.describe();
    },
  );
}

/** Alice publishes three layers on a fresh node, where Bob subscribes to
 * nothing by himself. */
async function aliceAndBob(
  body: (
    server: ServerProcess,
    alice: WeriftClient,
    bob: WeriftClient,
  ) => Promise<void>,
  publish: Partial<PublishOptions> = {},
): Promise<void> {
  const server = await startServer();
  const clients: WeriftClient[] = [];
  try {
    const alice = await WeriftClient.connect(server.wsUrl, "alice");
    const bob = await WeriftClient.connect(server.wsUrl, "bob", {
      autoSubscribe: false,
    });
    clients.push(alice, bob);
    await publishLayers(alice, publish);
    await body(server, alice, bob);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
  }
}

Deno.test("a subscriber gets the best layer, moves to the one it asks for and back, in one unbroken stream", () =>
  aliceAndBob(async (server, _alice, bob) => {
    // Any layer's id subscribes to the group.
    const id = await subscribeToGroup(bob, 0);
    await waitForLayer(bob, 2, "(the best, as its link is clean)");
    assert.deepEqual(
      [...video(bob)!.tags],
      [layerTag(TAG, 2)],
      "nothing of the other layers",
    );
    bob.send({ layerPreference: { trackId: id, maxLayer: 0 } });
    await waitForLayer(bob, 0, "after asking for at most layer 0");
    bob.send({ layerPreference: { trackId: id, maxLayer: 9 } });
    await waitForLayer(bob, 2, "after lifting the cap, one step at a time");
    const track = video(bob)!;
    assert.equal(track.intact, true);
    assert.equal(
      track.sequenceGaps,
      0,
      "sequence numbers run on across every switch",
    );
    assert.equal(bob.received.size, 1, "one stream, whatever the layer");
    // Down once to layer 0, then up one step at a time.
    assert.equal(
      await metric(
        server,
        "umbrella_simulcast_layer_switches_total",
        'direction="down"',
      ),
      1,
    );
    assert.equal(
      await metric(
        server,
        "umbrella_simulcast_layer_switches_total",
        'direction="up"',
      ),
      2,
    );
  }));

Deno.test("a layer its publisher stops is left for the next one down, and a lossy subscriber steps down", () =>
  aliceAndBob(async (server, alice, bob) => {
    const carol = await WeriftClient.connect(server.wsUrl, "carol", {
      autoSubscribe: false,
      inboundLoss: 0.3,
    });
    try {
      await subscribeToGroup(bob, 2);
      await subscribeToGroup(carol, 2);
      await waitForLayer(bob, 2, "at first");
      alice.setLayerSending(2, false);
      await waitForLayer(bob, 1, "once the top layer stopped");
      await waitForLayer(
        carol,
        0,
        "while it loses 30% of what arrives",
        20_000,
      );
    } finally {
      await carol.close();
    }
  }));

Deno.test("a trunk carries only the layer watched beyond it, and moves the pull when the watcher's layer changes", async () => {
  const nodes = await startNodes(2);
  const [a, b] = nodes;
  const clients: WeriftClient[] = [];
  try {
    await link(a, b);
    await waitForTrunks(nodes, [1, 1]);
    const alice = await WeriftClient.connect(a.wsUrl, "alice");
    const bob = await WeriftClient.connect(b.wsUrl, "bob", {
      autoSubscribe: false,
    });
    clients.push(alice, bob);
    await publishLayers(alice);
    const id = await subscribeToGroup(bob, 1);
    await waitForLayer(bob, 2, "across the trunk");
    const [aToB] = await trunks(a);
    assert.equal(aToB.tracksOut, 1, "one layer of three crosses the link");
    assert.deepEqual(await watchedLayers(a), [0, 0, 1]);
    bob.send({ layerPreference: { trackId: id, maxLayer: 0 } });
    await waitForLayer(bob, 0, "across the trunk after asking for layer 0");
    let watched: number[] = [];
    await waitFor(
      "the link to carry layer 0 alone",
      async () => (watched = await watchedLayers(a)).join() === "1,0,0",
      10_000,
      () => `subscribers by layer at A: ${watched}`,
    );
    assert.equal(video(bob)!.sequenceGaps, 0);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(nodes.map((node) => node.stop()));
  }
});

Deno.test("a publisher is told to stop the layers nobody watches, and to resume one when someone moves onto it", () =>
  aliceAndBob(async (server, alice, bob) => {
    const id = await subscribeToGroup(bob, 0);
    bob.send({ layerPreference: { trackId: id, maxLayer: 0 } });
    await waitForLayer(bob, 0, "as asked");
    const requests = () =>
      alice.layerRequests.map(({ id, wanted }) =>
        `${wanted ? "+" : "-"}${id.slice(id.lastIndexOf("/") + 1)}`
      ).sort().join(" ");
    await waitFor(
      "alice to be told to stop layers 1 and 2",
      () => requests() === "-l1 -l2",
      15_000,
      requests,
    );
    // What the node receives of the stopped layers stays put.
    const received = async () =>
      (await (await fetch(`${server.origin}/api/status`)).json()).tracks
        .filter((t: { simulcastLayer?: number }) => (t.simulcastLayer ?? 0) > 0)
        .map((t: { packetsReceived: number }) => t.packetsReceived).join();
    const before = await received();
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(await received(), before, "layers 1 and 2 stopped");
    bob.send({ layerPreference: { trackId: id, maxLayer: 9 } });
    await waitForLayer(bob, 2, "once the cap is lifted, layers resuming");
    assert.equal(requests(), "+l1 +l2 -l1 -l2");
    assert.equal(video(bob)!.sequenceGaps, 0);
  }));

Deno.test("rids that are not RFC 8851 tokens make no layers: the video is one plain track", () =>
  aliceAndBob(async (_server, _alice, bob) => {
    await waitFor(
      "bob to be told of alice's video",
      () => [...bob.announced.values()].some((t) => t.kind === MediaKind.Video),
      15_000,
    );
    const videos = [...bob.announced.values()].filter((t) =>
      t.kind === MediaKind.Video
    );
    assert.equal(videos.length, 1);
    assert.equal(videos[0].simulcast, undefined);
    assert.ok(!videos[0].id!.includes("/"), videos[0].id);
  }, { rids: ["l.0", "l.1"] }));
