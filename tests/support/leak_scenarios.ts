// Scenarios that must leave no socket behind, each run in a process of its
// own: `deno test` runs test files side by side in one process, so counting
// a process's descriptors or sockets inside a test would count the others'.
// Run as a program with a scenario's name, it prints what was left as JSON.
import { RtspClient } from "../../media/rtsp/client.ts";
import { Router } from "../../media/router.ts";
import { Track } from "../../media/track.ts";
import { publishedTracks, WebRtcPeer } from "../../media/webrtc_peer.ts";
import { ignoreMedia, scriptedCamera } from "./scripted_camera.ts";

/** Runs a scenario in a child process and returns what it printed. */
export async function runLeakScenario(name: string): Promise<unknown> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL(import.meta.url).pathname, name],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const decoder = new TextDecoder();
  if (code !== 0) {
    throw new Error(`scenario ${name} failed:\n${decoder.decode(stderr)}`);
  }
  return JSON.parse(decoder.decode(stdout));
}

/** How many descriptors a process (this one by default) has open. */
export function openFiles(pid: number | "self" = "self"): number {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Junk right behind the first SETUP's answer ends the session while the
 * client binds the second stream's UDP port pair. */
async function rtspUdpSessionEnds(): Promise<unknown> {
  const before = openFiles();
  const camera = scriptedCamera((method, reply) =>
    method === "SETUP"
      ? reply(
        "Session: s2;timeout=60\r\nTransport: RTP/AVP;unicast;client_port=1-2;server_port=6000-6001\r\n",
      ) + "NOT RTSP AT ALL\r\n\r\n"
      : reply()
  );
  const client = new RtspClient(camera.url, {
    requestTimeoutMs: 2000,
    transport: "udp",
  });
  try {
    const { sdp } = await client.describe();
    await client.setup(sdp.media, ignoreMedia).then(
      () => {
        throw new Error("setup succeeded on a session that had ended");
      },
      () => {},
    );
  } finally {
    client.close();
    await camera.close();
  }
  return { before, after: openFiles() };
}

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

/** Peers that leave while their send leg is still gathering ICE. */
async function iceClosedWhileGathering(): Promise<unknown> {
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
        throw new Error("this scenario publishes nothing");
      }),
      events: {
        offer() {},
        answer() {},
        notice() {},
        layersWanted() {},
        failed() {},
      },
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
  return { ports: boundPorts() };
}

const SCENARIOS: Record<string, () => Promise<unknown>> = {
  "rtsp-udp-session-ends": rtspUdpSessionEnds,
  "ice-closed-while-gathering": iceClosedWhileGathering,
};

if (import.meta.main) {
  const scenario = SCENARIOS[Deno.args[0]];
  if (!scenario) throw new Error(`no scenario named ${Deno.args[0]}`);
  console.log(JSON.stringify(await scenario()));
  Deno.exit(0);
}
