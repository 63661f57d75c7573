// A peer that leaves while its connection is still gathering ICE candidates
// (gone within moments of joining, a trunk dropped mid-setup) must give back
// every socket: with a port range, a leaked one holds a port for good.
import assert from "node:assert/strict";
import { Router } from "../media/router.ts";
import { Track } from "../media/track.ts";
import { publishedTracks, WebRtcPeer } from "../media/webrtc_peer.ts";

const PORT_RANGE: [number, number] = [47000, 47999];

/** Local ports of this process's UDP sockets within the range. */
function boundPorts(): number[] {
  const inodes = new Set<string>();
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    try {
      const target = Deno.readLinkSync(`/proc/self/fd/${entry.name}`);
      if (target.startsWith("socket:[")) inodes.add(target.slice(8, -1));
    } catch {
      // Closed between listing and reading.
    }
  }
  return Deno.readTextFileSync("/proc/net/udp").split("\n").slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields.length > 9 && inodes.has(fields[9]))
    .map((fields) => parseInt(fields[1].split(":")[1], 16))
    .filter((port) => port >= PORT_RANGE[0] && port <= PORT_RANGE[1]);
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("peers closed while gathering ICE leave no socket bound", async () => {
  const router = new Router();
  router.publish(
    new Track(
      {
        id: "t1",
        kind: "video",
        mimeType: "video/VP8",
        fmtp: "",
        clockRate: 90000,
        channels: 0,
        participantId: "publisher",
        participantName: "publisher",
        site: "here",
        originNodeId: "node",
        path: ["node"],
        source: "participant",
        label: "",
        muted: false,
      },
      "publisher",
      { requestKeyframe() {}, sendNack() {} },
    ),
  );
  const network = {
    iceAddresses: ["127.0.0.1"],
    iceServers: [],
    portRange: PORT_RANGE,
  };
  for (let i = 0; i < 30; i++) {
    const peer = new WebRtcPeer({
      id: `p${i}`,
      router,
      network,
      inbound: publishedTracks(router, `p${i}`, () => {
        throw new Error("this test publishes nothing");
      }),
      events: { offer() {}, answer() {}, notice() {}, failed() {} },
    });
    // Subscribing makes the send leg, whose offer starts gathering.
    peer.subscribe(["t1"]);
    await delay(1);
    peer.close();
  }
  // Closing is asynchronous inside werift: give it a bounded while.
  const deadline = performance.now() + 5000;
  while (boundPorts().length > 0 && performance.now() < deadline) {
    await delay(100);
  }
  assert.deepEqual(boundPorts(), []);
});
