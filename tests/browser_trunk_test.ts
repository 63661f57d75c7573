// Two Umbrella nodes on loopback linked by a trunk, and Umbrella's own Call
// page in Chromium at each: one session across two sites, proved by real
// decoding on both sides.
import assert from "node:assert/strict";
import {
  type CallParticipant,
  launchBrowser,
  type RemoteTile,
  Scene,
} from "./support/browser.ts";
import {
  link,
  startNodes,
  trunks,
  type TrunkStatus,
  waitForTrunks,
} from "./support/cluster.ts";
import { waitFor } from "./support/werift_client.ts";

function tileOf(tiles: RemoteTile[], participant: CallParticipant): RemoteTile {
  const tile = tiles.find((t) => t.participantId === participant.peerId);
  assert.ok(tile, `a tile for ${participant.browserPage.label}`);
  return tile;
}

Deno.test("Chromium at site A and Chromium at site B, linked by a trunk, decode each other", async () => {
  const browser = await launchBrowser();
  const nodes = await startNodes(2);
  const [a, b] = nodes;
  try {
    await link(a, b);
    await waitForTrunks(nodes, [1, 1]);
    await Scene.across("trunk", browser, nodes, async (scene) => {
      const alice = await scene.join("Alice", "publish", a);
      const bob = await scene.join("Bob", "publish", b);

      const [aliceSees, bobSees] = await Promise.all([
        alice.expectMediaFrom([bob]),
        bob.expectMediaFrom([alice]),
      ]);
      // Each tile names the person and the site they joined at.
      assert.equal(tileOf(aliceSees, bob).label, "Bob (site-B)");
      assert.equal(tileOf(bobSees, alice).label, "Alice (site-A)");
      await scene.screenshot(alice.browserPage, "alice-at-A");
      await scene.screenshot(bob.browserPage, "bob-at-B");

      // The media really crossed the trunk: each side sends its own
      // participant's audio and video over the link, once: one simulcast
      // layer of the video, the one watched (for a moment two, while the
      // viewer moves between layers).
      let aToB: TrunkStatus | undefined, bToA: TrunkStatus | undefined;
      await waitFor(
        "each node to send its participant's audio and one video layer",
        async () => {
          [aToB] = await trunks(a);
          [bToA] = await trunks(b);
          return aToB?.tracksOut === 2 && bToA?.tracksOut === 2;
        },
        10_000,
        () => `A to B ${aToB?.tracksOut}, B to A ${bToA?.tracksOut} tracks`,
      );
      assert.equal(aToB!.remoteSite, "site-B");
      assert.equal(bToA!.remoteSite, "site-A");
      assert.ok(
        aToB!.bytesOut > 0 && bToA!.bytesOut > 0,
        "media bytes on both",
      );

      // Leaving at one site is seen at the other.
      await alice.leave();
      await bob.tileOf(alice).waitFor({ state: "detached", timeout: 5000 });
      // Left alone, Bob's receiving connection carries no media and Chrome
      // sends no RTCP on it, only ICE consent checks: he must stay in the
      // call past the server's 8 s silence limit.
      await bob.expectStaysInCall(10_000);
      assert.deepEqual(await bob.remoteTiles(), []);
      await scene.screenshot(bob.browserPage, "bob-after-alice-left");

      // Someone new arrives: Bob's connection, with every media section
      // stopped meanwhile, takes the new tracks into recycled sections.
      const carol = await scene.join("Carol", "publish", a);
      await bob.expectMediaFrom([carol]);
    });
  } finally {
    await browser.close();
    await Promise.all(nodes.map((node) => node.stop()));
  }
});
