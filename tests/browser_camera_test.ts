// A real RTSP camera (GStreamer's RTSP server on loopback) added to Umbrella
// through its API, watched in Umbrella's Call page in Chromium: at the node
// the camera is on, and at another site over a trunk.
import assert from "node:assert/strict";
import {
  type CallParticipant,
  delay,
  eventually,
  launchBrowser,
  type RemoteTile,
  Scene,
} from "./support/browser.ts";
import {
  link,
  type ServerEntry,
  startNodes,
  trunks,
  waitForTrunks,
} from "./support/cluster.ts";
import { startRtspCamera } from "./support/rtsp_camera.ts";
import type { ServerProcess } from "./support/server.ts";

const CAMERA_NAME = "Front door";
/** A password that reaches the camera intact only if percent-encoded. */
const PASSWORD = "p@ss:w/rd#1";

async function addCamera(
  node: ServerProcess,
  url: string,
  idleSeconds: number,
): Promise<ServerEntry> {
  const response = await fetch(`${node.origin}${node.prefix}/api/servers`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ url, name: CAMERA_NAME, idleSeconds }),
  });
  const body = await response.json();
  assert.equal(response.status, 201, JSON.stringify(body));
  assert.equal(body.server.kind, "camera");
  return body.server;
}

interface CameraStatus {
  id: string;
  name: string;
  state: string;
  lastError: string | null;
  detail: { tracks: Array<{ kind: string; subscribers: number }> };
}

async function cameraStatus(
  node: ServerProcess,
  entry: ServerEntry,
): Promise<CameraStatus | undefined> {
  const response = await fetch(`${node.origin}${node.prefix}/api/status`);
  const status = await response.json();
  return status.cameras.find((camera: CameraStatus) => camera.id === entry.id);
}

/** Waits until the viewer's page plays the camera's video, then checks that
 * decoding keeps going; returns the camera's tile. */
async function expectCameraDecoded(
  viewer: CallParticipant,
  entry: ServerEntry,
): Promise<RemoteTile> {
  const cameraId = `camera-${entry.id}`;
  const tileNow = async () =>
    (await viewer.remoteTiles()).find((tile) =>
      tile.participantId === cameraId
    );
  const first = await eventually(
    `${viewer.browserPage.label} to decode the camera's video`,
    async () => {
      const tile = await tileNow();
      return tile && tile.videoWidth > 0 && tile.framesDecoded > 0
        ? tile
        : undefined;
    },
    20_000,
    async () => JSON.stringify(await viewer.remoteTiles()),
  );
  // The stand-in camera sends 25 frames/s: 1.5 s later many more decoded.
  await delay(1500);
  const second = await tileNow();
  assert.ok(second, "the camera's tile stays");
  assert.ok(
    second.framesDecoded > first.framesDecoded,
    `the camera's video keeps decoding (framesDecoded ${first.framesDecoded} → ${second.framesDecoded})`,
  );
  assert.equal(second.videoWidth, 320, "the camera's picture size");
  assert.ok(
    second.audioPacketsReceived > first.audioPacketsReceived,
    `the camera's audio keeps arriving (packetsReceived ${first.audioPacketsReceived} → ${second.audioPacketsReceived})`,
  );
  return second;
}

async function expectStreamingWhileWatched(
  node: ServerProcess,
  entry: ServerEntry,
): Promise<void> {
  const status = await cameraStatus(node, entry);
  assert.ok(status, "the camera is listed on /api/status");
  assert.equal(status.name, CAMERA_NAME);
  assert.equal(status.state, "streaming");
  assert.equal(status.lastError, null);
  const video = status.detail.tracks.find((track) => track.kind === "video");
  assert.equal(video?.subscribers, 1, "one subscriber to the camera's video");
}

Deno.test("an RTSP camera in Chromium", async (t) => {
  const browser = await launchBrowser();
  const camera = await startRtspCamera({
    auth: "digest",
    user: "viewer",
    password: PASSWORD,
    audio: "opus",
  });
  try {
    await t.step(
      "a watcher decodes the camera, labelled with its name; the camera streams only while watched",
      async () => {
        const [node] = await startNodes(1);
        try {
          const url = camera.url();
          assert.match(
            url,
            /^rtsp:\/\/viewer:p%40ss%3Aw%2Frd%231@127\.0\.0\.1:\d+\/stream$/,
          );
          const entry = await addCamera(node, url, 2);
          assert.match(entry.url, /^rtsp:\/\/viewer:\*\*\*@127\.0\.0\.1:/);
          await Scene.across("camera", browser, [node], async (scene) => {
            const viewer = await scene.join("Viewer", "watch", node);
            const tile = await expectCameraDecoded(viewer, entry);
            assert.equal(tile.label, `${CAMERA_NAME} (site-A)`);
            await expectStreamingWhileWatched(node, entry);
            await scene.screenshot(viewer.browserPage, "viewer");

            // With nobody watching, the camera is let go after its idle time.
            await viewer.leave();
            await eventually(
              "the camera to go idle after its viewer left",
              async () =>
                (await cameraStatus(node, entry))?.state === "idle"
                  ? true
                  : undefined,
              15_000,
              async () => JSON.stringify(await cameraStatus(node, entry)),
            );
            // A new viewer wakes it up again.
            const again = await scene.join("Second viewer", "watch", node);
            await expectCameraDecoded(again, entry);
            await expectStreamingWhileWatched(node, entry);
          });
        } finally {
          await node.stop();
        }
      },
    );

    await t.step(
      "a watcher at site B decodes the camera of site A over a trunk",
      async () => {
        const nodes = await startNodes(2);
        const [a, b] = nodes;
        try {
          const entry = await addCamera(a, camera.url(), 30);
          await link(a, b);
          await waitForTrunks(nodes, [1, 1]);
          await Scene.across(
            "camera-trunk",
            browser,
            nodes,
            async (scene) => {
              const viewer = await scene.join("Viewer at B", "watch", b);
              const tile = await expectCameraDecoded(viewer, entry);
              assert.equal(tile.label, `${CAMERA_NAME} (site-A)`);
              await expectStreamingWhileWatched(a, entry);
              const [aToB] = await trunks(a);
              assert.equal(
                aToB.tracksOut,
                2,
                "the camera's video and audio cross the trunk once",
              );
              assert.ok(aToB.bytesOut > 0);
              await scene.screenshot(viewer.browserPage, "viewer-at-B");
            },
          );
        } finally {
          await Promise.all(nodes.map((node) => node.stop()));
        }
      },
    );

    await t.step(
      "a camera with G.711 (PCMU) audio: the watcher decodes its video and receives its audio",
      async () => {
        const g711 = await startRtspCamera({ audio: "pcmu" });
        const [node] = await startNodes(1);
        try {
          const entry = await addCamera(node, g711.url(), 30);
          await Scene.across(
            "camera-g711",
            browser,
            [node],
            async (scene) => {
              const viewer = await scene.join("Viewer", "watch", node);
              await expectCameraDecoded(viewer, entry);
              await expectStreamingWhileWatched(node, entry);
              await scene.screenshot(viewer.browserPage, "viewer");
            },
          );
        } finally {
          await node.stop();
          await g711.stop();
        }
      },
    );
  } finally {
    await browser.close();
    await camera.stop();
  }
});
