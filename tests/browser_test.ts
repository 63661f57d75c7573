// Umbrella's own pages in a real Chromium against a real Umbrella process on
// loopback: fake camera and microphone, real WebRTC, real decoding.
import assert from "node:assert/strict";
import type { Browser } from "playwright-core";
import {
  CallParticipant,
  eventually,
  launchBrowser,
  type RemoteTile,
  Scene,
} from "./support/browser.ts";

/** The tile of `participant` on a page, by the accessible name the page
 * gives it, `NAME (SITE)`. */
function assertTileNamed(
  tiles: RemoteTile[],
  participant: CallParticipant,
  name: string,
): void {
  const tile = tiles.find((t) => t.participantId === participant.peerId);
  assert.ok(tile, `a tile for ${name}`);
  assert.match(
    tile.label,
    new RegExp(`^${name} \\(`),
    "tile named NAME (SITE)",
  );
}

/** Two people publish camera and microphone, each decodes the other, then
 * one leaves and disappears from the other's page. */
async function twoPeopleCall(
  browser: Browser,
  sceneName: string,
  prefix: string,
): Promise<void> {
  await Scene.run(sceneName, browser, { prefix }, async (scene) => {
    const alice = await scene.join("Alice", "publish");
    const bob = await scene.join("Bob", "publish");
    assert.notEqual(alice.peerId, bob.peerId);
    if (prefix) {
      assert.equal(new URL(alice.page.url()).pathname, `${prefix}/sfu`);
    }

    const [aliceSees, bobSees] = await Promise.all([
      alice.expectMediaFrom([bob]),
      bob.expectMediaFrom([alice]),
    ]);
    assertTileNamed(aliceSees, bob, "Bob");
    assertTileNamed(bobSees, alice, "Alice");
    for (const person of [alice, bob]) {
      assert.deepEqual(
        person.browserPage.console.filter((m) =>
          /Content Security Policy/i.test(m)
        ),
        [],
        "the pages' security policy blocks nothing they use",
      );
    }
    await scene.screenshot(alice.browserPage, "alice");
    await scene.screenshot(bob.browserPage, "bob");

    await alice.leave();
    await bob.tileOf(alice).waitFor({ state: "detached", timeout: 5000 });
    await alice.page.getByText("You left the call.").waitFor({ timeout: 5000 });
    // Someone leaving must not disturb those who stay.
    await bob.expectStaysInCall(3000);
    assert.deepEqual(await bob.remoteTiles(), []);
    await scene.screenshot(bob.browserPage, "bob-after-alice-left");
    await scene.screenshot(alice.browserPage, "alice-after-leaving");
  });
}

/** The Status page's tables as text. */
interface StatusTables {
  peers: Array<{
    name: string;
    state: string;
    publishing: string;
    receiving: string;
  }>;
  tracks: Array<{
    from: string;
    kind: string;
    codec: string;
    receivers: string;
  }>;
}

Deno.test("Umbrella's pages in Chromium", async (t) => {
  const browser = await launchBrowser();
  try {
    await t.step(
      "two participants decode each other's video and audio; one leaves and vanishes",
      () => twoPeopleCall(browser, "call", ""),
    );

    await t.step(
      "a watch-only participant sees and decodes both publishers",
      () =>
        Scene.run("watch", browser, {}, async (scene) => {
          const alice = await scene.join("Alice", "publish");
          const bob = await scene.join("Bob", "publish");
          const carol = await scene.join("Carol", "watch");
          const carolSees = await carol.expectMediaFrom([alice, bob]);
          assertTileNamed(carolSees, alice, "Alice");
          assertTileNamed(carolSees, bob, "Bob");
          const watcherTiles = await alice.remoteTiles();
          assert.ok(
            !watcherTiles.some((tile) => tile.participantId === carol.peerId),
            "someone who only watches gets no tile",
          );
          assert.equal(
            await carol.page.evaluate(() =>
              (globalThis as unknown as { umbrella: { pcSend: unknown } })
                .umbrella.pcSend
            ),
            null,
            "a watcher publishes nothing",
          );
          await scene.screenshot(carol.browserPage, "carol");
        }),
    );

    await t.step(
      "the same call under UMBRELLA_HTTP_PREFIX=/umbrella",
      () => twoPeopleCall(browser, "prefix", "/umbrella"),
    );

    await t.step(
      "with a password, browsers sign in first, then call; signing out closes the pages again",
      () =>
        Scene.run("password", browser, {
          prefix: "/umbrella",
          args: ["--password", "open sesame"],
        }, async (scene) => {
          const signIn = async (label: string) => {
            const opened = await scene.open(label, "sfu");
            const page = opened.page;
            await page.waitForURL(/\/umbrella\/login\?next=sfu$/);
            await page.getByLabel("Password").fill("open sesame");
            await page.getByRole("button", { name: "Sign in" }).click();
            await page.waitForURL(/\/umbrella\/sfu$/);
            return opened;
          };
          const first = await scene.open("Alice", "status");
          await first.page.waitForURL(/\/umbrella\/login\?next=status$/);
          await first.page.getByLabel("Password").fill("open says me");
          await first.page.getByRole("button", { name: "Sign in" }).click();
          await first.page.getByRole("alert").getByText("Wrong password.")
            .waitFor();
          await scene.screenshot(first, "wrong-password");
          const alice = await CallParticipant.join(
            await signIn("Alice"),
            "Alice",
            "publish",
          );
          const bob = await CallParticipant.join(
            await signIn("Bob"),
            "Bob",
            "publish",
          );
          await Promise.all([
            alice.expectMediaFrom([bob]),
            bob.expectMediaFrom([alice]),
          ]);
          await bob.page.getByRole("button", { name: "Sign out" }).click();
          await bob.page.waitForURL(/\/umbrella\/login$/);
          await bob.page.goto(scene.url("servers"));
          await bob.page.waitForURL(/\/umbrella\/login\?next=servers$/);
          await alice.expectStaysInCall(1000);
        }),
    );

    await t.step(
      "with an operator password, only it opens the Servers page",
      () =>
        Scene.run("operator", browser, {
          args: [
            "--password",
            "open sesame",
            "--operator-password",
            "run the show",
          ],
        }, async (scene) => {
          const opened = await scene.open("Carol", "servers");
          const page = opened.page;
          await page.waitForURL(/\/login\?next=servers$/);
          await page.getByLabel("Password").fill("open sesame");
          await page.getByRole("button", { name: "Sign in" }).click();
          await page.getByRole("alert").getByText(
            "That password lets you take part, not manage servers.",
          ).waitFor();
          await page.getByText("Managing servers needs the operator password.")
            .waitFor();
          await scene.screenshot(opened, "participant-on-servers");
          await page.getByLabel("Password").fill("run the show");
          await page.getByRole("button", { name: "Sign in" }).click();
          await page.waitForURL(/\/servers$/);
          await page.getByRole("heading", { name: "Add a remote source" })
            .waitFor();
        }),
    );

    await t.step(
      "the Status page lists both participants and their tracks",
      () =>
        Scene.run("status", browser, {}, async (scene) => {
          const alice = await scene.join("Alice", "publish");
          const bob = await scene.join("Bob", "publish");
          await Promise.all([
            alice.expectMediaFrom([bob]),
            bob.expectMediaFrom([alice]),
          ]);
          const status = await scene.open("status", "status");
          const read = () => readStatusTables(status.page);
          const tables = await eventually(
            "the Status page to show Alice and Bob with their VP8 layers and Opus tracks",
            async () => {
              const tables = await read();
              return ["Alice", "Bob"].every((name) =>
                  tables.peers.some((peer) =>
                    peer.name === name && peer.state === "connected" &&
                    peer.publishing === "2" && peer.receiving === "2"
                  ) &&
                  // Three simulcast layers, the other watching one.
                  tables.tracks.filter((track) =>
                      track.from === name &&
                      /^video, layer [012]$/.test(track.kind) &&
                      track.codec === "VP8"
                    ).length === 3 &&
                  tables.tracks.some((track) =>
                    track.from === name && track.kind.startsWith("video") &&
                    track.receivers === "1"
                  ) &&
                  tables.tracks.some((track) =>
                    track.from === name && track.kind === "audio" &&
                    track.codec === "Opus" && track.receivers === "1"
                  )
                )
                ? tables
                : undefined;
            },
            // The page polls every 2 s, and connection states settle later
            // than media.
            15_000,
            async () => JSON.stringify(await read()),
          );
          assert.equal(tables.peers.length, 2, "nobody else is connected");
          assert.equal(
            tables.tracks.length,
            8,
            "audio and three video layers each",
          );
          await scene.screenshot(status, "page");
        }),
    );
  } finally {
    await browser.close();
  }
});

function readStatusTables(
  page: Scene["pages"][number]["page"],
): Promise<StatusTables> {
  return page.evaluate(() => {
    const cellsOf = (row: Element) => {
      const cells: Record<string, string> = {};
      for (const cell of row.querySelectorAll("td[data-label]")) {
        // The name cell adds the site in a nested span; keep own text only.
        const own = [...cell.childNodes]
          .filter((node) => node.nodeType === Node.TEXT_NODE)
          .map((node) => node.textContent ?? "")
          .join("")
          .trim();
        cells[cell.getAttribute("data-label")!] = own ||
          (cell.textContent ?? "").trim();
      }
      return cells;
    };
    return {
      peers: [...document.querySelectorAll("tr[data-peer-id]")].map((row) => {
        const cells = cellsOf(row);
        return {
          name: cells["Name"],
          state: cells["State"],
          publishing: cells["Publishing"],
          receiving: cells["Receiving"],
        };
      }),
      tracks: [...document.querySelectorAll("tr[data-track-id]")].map(
        (row) => {
          const cells = cellsOf(row);
          return {
            from: cells["From"],
            kind: cells["Kind"],
            codec: cells["Codec"],
            receivers: cells["Receivers"],
          };
        },
      ),
    };
  });
}
