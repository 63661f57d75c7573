// Simulcast with real browsers: Chromium publishes its (fake) 720p camera
// as three layers from the Call page, all flowing within seconds (the node
// tells it the bitrate it may use), and each Chromium watching gets the
// layer that fits the tile it shows the video in, switching as the tile
// grows and shrinks, its decoder going on across every switch; the publisher
// stops encoding a layer nobody watches and resumes it when someone does.
import {
  type CallParticipant,
  delay,
  eventually,
  launchBrowser,
  Scene,
} from "./support/browser.ts";
import type { ServerProcess } from "./support/server.ts";

interface LayerStatus {
  layer: number;
  packetsReceived: number;
  subscribers: number;
}

async function layersAt(node: ServerProcess): Promise<LayerStatus[]> {
  const status = await (await fetch(`${node.origin}${node.prefix}/api/status`))
    .json();
  return status.tracks
    .filter((t: { simulcastLayer?: number }) => t.simulcastLayer !== undefined)
    .map((
      t: {
        simulcastLayer: number;
        packetsReceived: number;
        subscribers: number;
      },
    ) => ({
      layer: t.simulcastLayer,
      packetsReceived: t.packetsReceived,
      subscribers: t.subscribers,
    }))
    .sort((a: LayerStatus, b: LayerStatus) => a.layer - b.layer);
}

/** Waits for the node's subscribers to each layer of the one simulcast
 * video to be `expected`, lowest layer first. */
async function expectLayers(
  node: ServerProcess,
  what: string,
  expected: number[],
): Promise<void> {
  let layers: LayerStatus[] = [];
  await eventually(
    what,
    async () => {
      layers = await layersAt(node);
      return layers.map((l) => l.subscribers).join() === expected.join()
        ? true
        : undefined;
    },
    30_000,
    () => Promise.resolve(JSON.stringify(layers)),
  );
}

/** The width of the video `viewer` shows of its one remote tile, once it
 * is `expected` (by `matches`) and frames keep being decoded at it. */
async function expectWidth(
  viewer: CallParticipant,
  what: string,
  matches: (width: number) => boolean,
): Promise<number> {
  let seen = "";
  const tile = await eventually(
    `${what}`,
    async () => {
      const [tile] = await viewer.remoteTiles();
      seen = JSON.stringify(tile);
      return tile && matches(tile.videoWidth) ? tile : undefined;
    },
    30_000,
    () => Promise.resolve(seen),
  );
  const later = await eventually(
    `${what}: frames still decoded`,
    async () => {
      const [again] = await viewer.remoteTiles();
      seen = JSON.stringify(again);
      return again && again.framesDecoded >= tile.framesDecoded + 10 &&
          matches(again.videoWidth)
        ? again
        : undefined;
    },
    10_000,
    () => Promise.resolve(seen),
  );
  return later.videoWidth;
}

Deno.test("Chromium publishes simulcast; each viewer gets the layer its tile fits, switching as the tile changes", async () => {
  const browser = await launchBrowser();
  try {
    await Scene.run("simulcast", browser, {}, async (scene) => {
      await scene.join("Alice", "publish");
      let layers: LayerStatus[] = [];
      await eventually(
        "the server to receive three layers of Alice's video",
        async () => {
          layers = await layersAt(scene.server);
          return layers.filter((l) => l.packetsReceived > 0).length === 3
            ? true
            : undefined;
        },
        30_000,
        () => Promise.resolve(JSON.stringify(layers)),
      );
      const bob = await scene.join("Bob", "watch");
      const carol = await scene.join("Carol", "watch");
      // 720p shows best in a tile over 480 pixels high, 180p in one of
      // at most 240.
      await bob.page.setViewportSize({ width: 1600, height: 1000 });
      await carol.page.setViewportSize({ width: 240, height: 200 });
      await expectLayers(
        scene.server,
        "Bob on the top layer, Carol on the lowest",
        [1, 0, 1],
      );
      const small = await expectWidth(
        carol,
        "Carol's small tile",
        (w) => w > 0,
      );
      await expectWidth(
        bob,
        "Bob's large tile to be four times as wide",
        (width) => width === small * 4,
      );
      // Carol's tile grows to middling, Bob's shrinks: they trade layers.
      await carol.page.setViewportSize({ width: 960, height: 640 });
      await bob.page.setViewportSize({ width: 240, height: 200 });
      await expectLayers(
        scene.server,
        "Bob on the lowest layer, Carol on the middle one",
        [1, 1, 0],
      );
      await expectWidth(
        carol,
        "Carol's tile, now larger",
        (w) => w === small * 2,
      );
      await expectWidth(bob, "Bob's tile, now small", (w) => w === small);
      // Nobody watches the top layer now: Alice stops encoding it.
      let counts = "";
      await eventually(
        "Alice to stop sending the layer nobody watches",
        async () => {
          const before = (await layersAt(scene.server))[2].packetsReceived;
          await delay(1000);
          const after = (await layersAt(scene.server))[2].packetsReceived;
          counts = `${before} then ${after}`;
          return after === before ? true : undefined;
        },
        20_000,
        () => Promise.resolve(counts),
      );
      // Bob's tile grows again: the top layer resumes for him.
      await bob.page.setViewportSize({ width: 1600, height: 1000 });
      await expectLayers(
        scene.server,
        "Bob back on the top layer, Carol on the middle one",
        [0, 1, 1],
      );
      await expectWidth(
        bob,
        "Bob's tile, large again",
        (width) => width === small * 4,
      );
    });
  } finally {
    await browser.close();
  }
});
