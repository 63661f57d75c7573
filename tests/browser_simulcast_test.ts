// Simulcast with real browsers: Chromium publishes its (fake) 720p camera
// as layers from the Call page, and each Chromium watching gets the layer
// that fits the tile it shows the video in, switching as the tile grows
// and shrinks, its decoder going on across every switch.
import assert from "node:assert/strict";
import {
  type CallParticipant,
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
        "the server to receive at least two layers of Alice's video",
        async () => {
          layers = await layersAt(scene.server);
          return layers.filter((l) => l.packetsReceived > 0).length >= 2
            ? true
            : undefined;
        },
        30_000,
        () => Promise.resolve(JSON.stringify(layers)),
      );
      const bob = await scene.join("Bob", "watch");
      const carol = await scene.join("Carol", "watch");
      await carol.page.setViewportSize({ width: 240, height: 200 });
      const large = await expectWidth(
        bob,
        "Bob's large tile to show the top layer",
        (width) => width >= 640,
      );
      const small = await expectWidth(
        carol,
        "Carol's small tile to show a lower layer",
        (width) => width > 0 && width <= large / 2,
      );
      // Carol's tile grows, Bob's shrinks: they trade layers.
      await carol.page.setViewportSize({ width: 960, height: 640 });
      await bob.page.setViewportSize({ width: 240, height: 200 });
      await expectWidth(
        carol,
        "Carol's tile, now large, to step up",
        (width) => width > small,
      );
      await expectWidth(
        bob,
        "Bob's tile, now small, to step down",
        (width) => width > 0 && width < large,
      );
      layers = await layersAt(scene.server);
      assert.equal(
        layers.reduce((sum, l) => sum + l.subscribers, 0),
        2,
        `each viewer takes one layer: ${JSON.stringify(layers)}`,
      );
    });
  } finally {
    await browser.close();
  }
});
