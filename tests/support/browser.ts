/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// Headless Chromium driving Umbrella's own pages: one browser process per
// test file (each Chromium costs a lot on two cores) and one browser context
// per participant, so every participant has its own storage, permissions
// and fake camera and microphone.
import {
  type Browser,
  type BrowserContext,
  chromium,
  type Page,
} from "playwright-core";
import type { SessionView } from "../../ui/session.ts";
import {
  type ServerOptions,
  type ServerProcess,
  startServer,
} from "./server.ts";

const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  // Without it Chromium offers no loopback candidate, and the server only
  // listens on 127.0.0.1.
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
];

/** The Call page's view for tests, `window.umbrella` (docs/api.md). */
type WithUmbrella = typeof globalThis & { umbrella: SessionView };

/** Playwright's own waits (clicks, navigation, locator waits). */
const ACTION_TIMEOUT_MS = 15_000;

export const ARTIFACTS_DIR = new URL("../../test-artifacts/", import.meta.url);

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
}

/** A page in a context of its own, which records what went wrong inside
 * it so a failing test can say more than "timed out". */
export class BrowserPage {
  /** Uncaught exceptions in the page. */
  readonly errors: string[] = [];
  /** Console warnings and errors, the UI's own diagnostics. */
  readonly console: string[] = [];

  private constructor(
    readonly label: string,
    readonly context: BrowserContext,
    readonly page: Page,
  ) {
    page.on("pageerror", (error) => this.errors.push(String(error)));
    page.on("console", (message) => {
      if (message.type() === "error" || message.type() === "warning") {
        this.console.push(`${message.type()}: ${message.text()}`);
      }
    });
  }

  static async open(
    browser: Browser,
    label: string,
    url: string,
  ): Promise<BrowserPage> {
    const context = await browser.newContext({
      viewport: { width: 960, height: 640 },
    });
    context.setDefaultTimeout(ACTION_TIMEOUT_MS);
    const opened = new BrowserPage(label, context, await context.newPage());
    await opened.page.goto(url);
    return opened;
  }

  async screenshot(name: string): Promise<void> {
    await Deno.mkdir(ARTIFACTS_DIR, { recursive: true });
    await this.page.screenshot({
      path: new URL(`${name}.png`, ARTIFACTS_DIR).pathname,
    });
  }

  /** What happened inside the page, for a failure message. */
  diagnostics(): string {
    return [
      `--- ${this.label} (${this.page.url()})`,
      ...this.errors.map((error) => `pageerror: ${error}`),
      ...this.console,
    ].join("\n");
  }

  close(): Promise<void> {
    return this.context.close();
  }
}

/** What a participant's page shows of one other participant. */
export interface RemoteTile {
  participantId: string;
  /** The tile's accessible name, `NAME (SITE)`. */
  label: string;
  videoWidth: number;
  /** inbound-rtp `framesDecoded` of the video track the tile plays. */
  framesDecoded: number;
  /** inbound-rtp `packetsReceived` of the audio track the tile plays. */
  audioPacketsReceived: number;
}

/** Someone on the call through the Call page. */
export class CallParticipant {
  private constructor(
    readonly browserPage: BrowserPage,
    readonly peerId: string,
  ) {}

  get page(): Page {
    return this.browserPage.page;
  }

  /** Enters `name` on a Call page and joins: publishing the fake camera
   * and microphone, or watching only. */
  static async join(
    browserPage: BrowserPage,
    name: string,
    mode: "publish" | "watch",
  ): Promise<CallParticipant> {
    const page = browserPage.page;
    await page.getByLabel("Your name").fill(name);
    await page.getByRole("button", {
      name: mode === "publish"
        ? "Join with camera and microphone"
        : "Watch only",
    }).click();
    const peerId = await page.waitForFunction(() => {
      const view = (globalThis as WithUmbrella).umbrella;
      return view.state === "in-call" && view.peerId;
    });
    return new CallParticipant(browserPage, await peerId.jsonValue() as string);
  }

  /** Every tile of someone else, with the media statistics behind it:
   * a tile counts as decoding only if the very track it plays decodes. */
  remoteTiles(): Promise<RemoteTile[]> {
    return this.page.evaluate(async () => {
      const view = (globalThis as WithUmbrella).umbrella;
      const inbound = new Map<string, Record<string, number>>();
      const report = await view.pcRecv?.getStats();
      report?.forEach((entry) => {
        if (entry.type === "inbound-rtp") {
          inbound.set(entry.trackIdentifier, entry);
        }
      });
      const tiles = document.querySelectorAll<HTMLElement>(
        "article[data-participant-id]",
      );
      return [...tiles]
        .filter((tile) => tile.dataset.participantId !== view.peerId)
        .map((tile) => {
          const video = tile.querySelector("video");
          const stream = video?.srcObject instanceof MediaStream
            ? video.srcObject
            : null;
          const statsOf = (track: MediaStreamTrack | undefined) =>
            track ? inbound.get(track.id) : undefined;
          return {
            participantId: tile.dataset.participantId ?? "",
            label: tile.getAttribute("aria-label") ?? "",
            videoWidth: video?.videoWidth ?? 0,
            framesDecoded:
              statsOf(stream?.getVideoTracks()[0])?.framesDecoded ?? 0,
            audioPacketsReceived:
              statsOf(stream?.getAudioTracks()[0])?.packetsReceived ?? 0,
          };
        });
    });
  }

  /** Waits until this page shows exactly `others` (peer ids), each tile
   * playing decoded video and receiving audio, then checks that decoding
   * and audio both keep going. Returns the second sample. */
  async expectMediaFrom(
    others: CallParticipant[],
    { audio = true } = {},
  ): Promise<RemoteTile[]> {
    const expected = others.map((other) => other.peerId).sort();
    const flowing = (tile: RemoteTile) =>
      tile.videoWidth > 0 && tile.framesDecoded > 0 &&
      (!audio || tile.audioPacketsReceived > 0);
    const first = await eventually(
      `${this.browserPage.label} to decode video from ${expected.join(", ")}`,
      async () => {
        const tiles = await this.remoteTiles();
        const ids = tiles.map((tile) => tile.participantId).sort();
        return sameList(ids, expected) && tiles.every(flowing)
          ? tiles
          : undefined;
      },
      20_000,
      async () =>
        `${JSON.stringify(await this.remoteTiles())}; connections ${
          JSON.stringify(await this.connectionStates())
        }; ${JSON.stringify(await this.connectionDetails())}`,
    );
    // Two samples a while apart: decoding that has stalled after its first
    // frames would pass a single look.
    await delay(1500);
    const second = await this.remoteTiles();
    for (const before of first) {
      const after = second.find((tile) =>
        tile.participantId === before.participantId
      );
      if (!after) {
        throw new Error(
          `${this.browserPage.label}: the tile of ${before.label} vanished`,
        );
      }
      if (after.framesDecoded <= before.framesDecoded) {
        throw new Error(
          `${this.browserPage.label}: video from ${before.label} stopped decoding (framesDecoded ${before.framesDecoded} → ${after.framesDecoded})`,
        );
      }
      if (audio && after.audioPacketsReceived <= before.audioPacketsReceived) {
        throw new Error(
          `${this.browserPage.label}: audio from ${before.label} stopped (packetsReceived ${before.audioPacketsReceived} → ${after.audioPacketsReceived})`,
        );
      }
    }
    return second;
  }

  /** The page's call state and its PeerConnections' states. */
  connectionStates(): Promise<Record<string, string | null>> {
    return this.page.evaluate(() => {
      const view = (globalThis as WithUmbrella).umbrella;
      return {
        state: view.state,
        peerId: view.peerId,
        send: view.pcSend?.connectionState ?? null,
        receive: view.pcRecv?.connectionState ?? null,
      };
    });
  }

  /** Why a PeerConnection is where it is: ICE and DTLS states, candidate
   * pairs and bytes, for an error message when media does not come. */
  connectionDetails(): Promise<Record<string, string>> {
    return this.page.evaluate(async () => {
      const view = (globalThis as WithUmbrella).umbrella;
      const describe = async (pc: RTCPeerConnection | null) => {
        if (!pc) return "none";
        const parts = [
          `${pc.connectionState}, ice ${pc.iceConnectionState}/${pc.iceGatheringState}, signalling ${pc.signalingState}`,
        ];
        const stats = await pc.getStats();
        // deno-lint-ignore no-explicit-any
        stats.forEach((report: any) => {
          if (report.type === "transport") {
            parts.push(
              `transport dtls ${report.dtlsState} ice ${report.iceState} in ${report.bytesReceived} B out ${report.bytesSent} B`,
            );
          } else if (report.type === "candidate-pair") {
            const local = stats.get(report.localCandidateId);
            const remote = stats.get(report.remoteCandidateId);
            parts.push(
              `pair ${local?.address}:${local?.port} -> ${remote?.address}:${remote?.port} ${report.state}${
                report.nominated ? " nominated" : ""
              } requests ${report.requestsSent}/${report.requestsReceived} responses ${report.responsesReceived}/${report.responsesSent}`,
            );
          }
        });
        return parts.join("; ");
      };
      return {
        send: await describe(view.pcSend),
        receive: await describe(view.pcRecv),
      };
    });
  }

  /** Checks for `ms` that this participant stays in the call it joined:
   * same peer id, no reconnect, media connections not failed. */
  async expectStaysInCall(ms: number): Promise<void> {
    const deadline = performance.now() + ms;
    while (performance.now() < deadline) {
      const seen = await this.connectionStates();
      const failed = seen.send === "failed" || seen.receive === "failed";
      if (seen.state !== "in-call" || seen.peerId !== this.peerId || failed) {
        throw new Error(
          `${this.browserPage.label} was thrown out of the call (joined as ${this.peerId}, now ${
            JSON.stringify(seen)
          })`,
        );
      }
      await delay(250);
    }
  }

  /** Waits until this page is in the call again under a new peer id, as
   * after an automatic reconnect, and returns that participant. */
  async rejoined(timeoutMs: number): Promise<CallParticipant> {
    const before = this.peerId;
    const peerId = await this.page.waitForFunction(
      (previous) => {
        const view = (globalThis as WithUmbrella).umbrella;
        return view.state === "in-call" && view.peerId !== previous &&
          view.peerId;
      },
      before,
      { timeout: timeoutMs },
    );
    return new CallParticipant(
      this.browserPage,
      await peerId.jsonValue() as string,
    );
  }

  /** The tile of `other` on this page. */
  tileOf(other: CallParticipant) {
    return this.page.locator(`article[data-participant-id="${other.peerId}"]`);
  }

  leave(): Promise<void> {
    return this.page.getByRole("button", { name: "Leave", exact: true })
      .click();
  }
}

/** Polls `probe` until it returns something other than undefined; the
 * error names what was awaited and, when given, the last thing seen. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  lastSeen?: () => Promise<string>,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  while (true) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline) {
      const seen = lastSeen ? `; last seen: ${await lastSeen()}` : "";
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${seen}`,
      );
    }
    await delay(250);
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((item, i) => item === b[i]);
}

/** One scenario: Umbrella nodes and the pages opened against them.
 * Everything the scene opened is closed afterwards; on failure every page is
 * photographed and each node's log and status saved, and the error carries
 * what the pages said. Pages go to the first node unless told otherwise. */
export class Scene {
  readonly pages: BrowserPage[] = [];

  private constructor(
    readonly name: string,
    readonly browser: Browser,
    readonly nodes: ServerProcess[],
  ) {}

  /** A scene on a fresh server of its own, stopped at the end. */
  static async run(
    name: string,
    browser: Browser,
    serverOptions: ServerOptions,
    body: (scene: Scene) => Promise<void>,
  ): Promise<void> {
    const server = await startServer(serverOptions);
    try {
      await Scene.across(name, browser, [server], body);
    } finally {
      await server.stop();
    }
  }

  /** A scene on nodes the caller started (and linked, and stops). */
  static async across(
    name: string,
    browser: Browser,
    nodes: ServerProcess[],
    body: (scene: Scene) => Promise<void>,
  ): Promise<void> {
    const scene = new Scene(name, browser, nodes);
    try {
      await body(scene);
    } catch (error) {
      throw new Error(
        `${(error as Error).message}\n${await scene.#preserveEvidence()}`,
        { cause: error },
      );
    } finally {
      await Promise.all(scene.pages.map((page) => page.close()));
    }
  }

  get server(): ServerProcess {
    return this.nodes[0];
  }

  /** The address of one of a node's pages ("sfu", "status"). */
  url(page: string, node = this.server): string {
    return `${node.origin}${node.prefix}/${page}`;
  }

  async join(
    name: string,
    mode: "publish" | "watch",
    node = this.server,
  ): Promise<CallParticipant> {
    return CallParticipant.join(await this.open(name, "sfu", node), name, mode);
  }

  async open(
    label: string,
    page: string,
    node = this.server,
  ): Promise<BrowserPage> {
    const opened = await BrowserPage.open(
      this.browser,
      label,
      this.url(page, node),
    );
    this.pages.push(opened);
    return opened;
  }

  /** Saves a screenshot named after the scenario and `what`. */
  screenshot(page: BrowserPage, what: string): Promise<void> {
    return page.screenshot(`${this.name}-${what}`);
  }

  async #preserveEvidence(): Promise<string> {
    await Deno.mkdir(ARTIFACTS_DIR, { recursive: true });
    await Promise.all(
      this.pages.map((page) =>
        page.screenshot(`${this.name}-failed-${page.label}`).catch(() => {})
      ),
    );
    const saved = await Promise.all(this.nodes.map(async (node, i) => {
      const prefix = this.nodes.length > 1
        ? `${this.name}-node${i + 1}`
        : this.name;
      const logPath = new URL(`${prefix}-server-log.jsonl`, ARTIFACTS_DIR);
      await Deno.writeTextFile(
        logPath,
        node.logs.map((entry) => JSON.stringify(entry)).join("\n"),
      );
      const statusPath = new URL(`${prefix}-status.json`, ARTIFACTS_DIR);
      const status = await fetch(this.url("api/status", node), {
        signal: AbortSignal.timeout(5000),
      }).then((response) => response.text()).catch((error) => String(error));
      await Deno.writeTextFile(statusPath, status);
      // CI keeps only the test's output, so the server's complaints go in it.
      const complaints = node.logs
        .filter((entry) => entry.level === "warn" || entry.level === "error")
        .slice(-15)
        .map((entry) => `  ${JSON.stringify(entry)}`);
      return [
        `server log: ${logPath.pathname}`,
        `server status: ${statusPath.pathname}`,
        `server warnings (last ${complaints.length}):`,
        ...complaints,
      ].join("\n");
    }));
    return [...this.pages.map((page) => page.diagnostics()), ...saved].join(
      "\n",
    );
  }
}
