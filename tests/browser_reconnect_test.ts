// The Call page rides out a network blip on its own: when the server goes
// away and comes back, both participants rejoin and see each other again
// without anyone touching the page.
import assert from "node:assert/strict";
import { launchBrowser, Scene } from "./support/browser.ts";
import { startServer } from "./support/server.ts";

Deno.test("after the server restarts, participants reconnect by themselves and decode each other again", async () => {
  const browser = await launchBrowser();
  const dataDir = await Deno.makeTempDir({ prefix: "umbrella-test-" });
  const nodes = [await startServer({ dataDir })];
  const port = new URL(nodes[0].origin).port;
  try {
    await Scene.across("reconnect", browser, nodes, async (scene) => {
      const alice = await scene.join("Alice", "publish");
      const bob = await scene.join("Bob", "publish");
      await Promise.all([
        alice.expectMediaFrom([bob]),
        bob.expectMediaFrom([alice]),
      ]);

      await nodes[0].stop();
      await alice.page.getByText(/Reconnecting…/).waitFor({
        timeout: 10_000,
      });
      await scene.screenshot(alice.browserPage, "alice-reconnecting");
      // Same address and data directory: to the pages it is a blip.
      nodes[0] = await startServer({
        dataDir,
        args: ["--listen", `127.0.0.1:${port}`],
      });

      const [aliceAgain, bobAgain] = await Promise.all([
        alice.rejoined(20_000),
        bob.rejoined(20_000),
      ]);
      assert.notEqual(aliceAgain.peerId, alice.peerId);
      await Promise.all([
        aliceAgain.expectMediaFrom([bobAgain]),
        bobAgain.expectMediaFrom([aliceAgain]),
      ]);
      await scene.screenshot(alice.browserPage, "alice-after-reconnect");
    });
  } finally {
    await nodes[0].stop();
    await browser.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
