// The Call page rides out a network blip on its own: when the server goes
// away and comes back, both participants rejoin and see each other again
// without anyone touching the page.
import assert from "node:assert/strict";
import { CallParticipant, launchBrowser, Scene } from "./support/browser.ts";
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

Deno.test("after the server restarts with a new password, the Call page asks to sign in again", async () => {
  const browser = await launchBrowser();
  const dataDir = await Deno.makeTempDir({ prefix: "umbrella-test-" });
  const nodes = [
    await startServer({ dataDir, args: ["--password", "first"] }),
  ];
  const port = new URL(nodes[0].origin).port;
  try {
    await Scene.across("new-password", browser, nodes, async (scene) => {
      const opened = await scene.open("Alice", "sfu");
      await opened.page.waitForURL(/\/login\?next=sfu$/);
      await opened.page.getByLabel("Password").fill("first");
      await opened.page.getByRole("button", { name: "Sign in" }).click();
      await opened.page.waitForURL(/\/sfu$/);
      const alice = await CallParticipant.join(opened, "Alice", "publish");

      await nodes[0].stop();
      await alice.page.getByText(/Reconnecting…/).waitFor({ timeout: 10_000 });
      // A new password makes the cookie worthless: retrying cannot help.
      nodes[0] = await startServer({
        dataDir,
        args: ["--listen", `127.0.0.1:${port}`, "--password", "second"],
      });
      await alice.page.waitForURL(/\/login\?next=sfu$/, { timeout: 20_000 });
      await alice.page.getByLabel("Password").fill("second");
      await alice.page.getByRole("button", { name: "Sign in" }).click();
      await alice.page.waitForURL(/\/sfu$/);
      await CallParticipant.join(opened, "Alice", "publish");
    });
  } finally {
    await nodes[0].stop();
    await browser.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
