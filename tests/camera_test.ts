// Camera ingest against a real RTSP server (GStreamer's, on loopback): the
// RTSP client, authentication, transports, error reporting, reconnects and
// demand, down to the RTP a subscriber of the router would be sent.
import assert from "node:assert/strict";
import type { RtpHeader } from "werift";
import { type CameraEntry, CameraSource } from "../media/camera.ts";
import { Consumer, type RtpOutput } from "../media/consumer.ts";
import { h264NalTypesInPayload, isKeyframeStart } from "../media/keyframe.ts";
import { Router } from "../media/router.ts";
import type { Track } from "../media/track.ts";
import {
  type RtspCamera,
  type RtspCameraOptions,
  startRtspCamera,
} from "./support/rtsp_camera.ts";
import { waitFor } from "./support/werift_client.ts";

const SITE = "test-site";
const NODE_ID = "node-test";

interface Sent {
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
  payload: Uint8Array;
}

/** Stands in for a subscriber's encrypted leg and records what it is sent. */
class RecordingOutput implements RtpOutput {
  readonly ready = true;
  readonly sent: Sent[] = [];

  sendRtp(payload: Uint8Array, header: RtpHeader): void {
    this.sent.push({
      sequenceNumber: header.sequenceNumber,
      timestamp: header.timestamp,
      marker: header.marker,
      payload: payload.slice(),
    });
  }

  get sequenceGaps(): number {
    let gaps = 0;
    for (let i = 1; i < this.sent.length; i++) {
      const expected = (this.sent[i - 1].sequenceNumber + 1) & 0xffff;
      if (this.sent[i].sequenceNumber !== expected) gaps++;
    }
    return gaps;
  }

  /** H.264 NAL unit types that begin in the sent payloads. */
  get nalTypes(): Set<number> {
    const types = new Set<number>();
    const scratch: number[] = [];
    for (const { payload } of this.sent) {
      const count = h264NalTypesInPayload(payload, scratch);
      for (let i = 0; i < count; i++) types.add(scratch[i]);
    }
    return types;
  }
}

function subscribe(
  track: Track,
): { output: RecordingOutput; consumer: Consumer } {
  const output = new RecordingOutput();
  const consumer = new Consumer(track, "test-subscriber");
  track.addConsumer(consumer);
  consumer.activate(output, 0x1234, track.isVideo ? 102 : 111);
  return { output, consumer };
}

/** Runs body with a camera, a router and a CameraSource, stopping all. */
async function withCamera(
  cameraOptions: RtspCameraOptions,
  entry: (camera: RtspCamera) => Omit<CameraEntry, "id">,
  body: (
    context: { camera: RtspCamera; router: Router; source: CameraSource },
  ) => Promise<void>,
  idleSeconds = 30,
): Promise<void> {
  const camera = await startRtspCamera(cameraOptions);
  const router = new Router();
  const source = new CameraSource(
    { id: "cam1", ...entry(camera) },
    router,
    { site: SITE, nodeId: NODE_ID, idleSeconds },
  );
  try {
    source.start();
    await body({ camera, router, source });
  } finally {
    await source.stop();
    await camera.stop();
  }
}

function trackOf(router: Router, kind: "audio" | "video"): Track | undefined {
  return router.tracks.get(`camera-cam1-${kind}`);
}

async function expectDecodableVideo(
  router: Router,
  source: CameraSource,
  audioMime: string,
): Promise<void> {
  await waitFor(
    "the camera's tracks",
    () =>
      trackOf(router, "video") !== undefined &&
      trackOf(router, "audio") !== undefined,
  );
  const video = trackOf(router, "video")!;
  const audio = trackOf(router, "audio")!;
  assert.equal(video.description.mimeType, "video/H264");
  assert.match(video.description.fmtp, /packetization-mode=1/);
  assert.equal(video.description.source, "camera");
  assert.equal(video.description.participantName, source.name);
  assert.equal(video.description.label, source.name);
  assert.equal(video.description.site, SITE);
  assert.equal(audio.description.mimeType, audioMime);
  const videoOut = subscribe(video).output;
  const audioOut = subscribe(audio).output;
  await waitFor(
    "video and audio to be forwarded",
    () => videoOut.sent.length >= 150 && audioOut.sent.length >= 15,
    20_000,
  );
  assert.equal(source.status().state, "streaming");
  assert.equal(source.status().lastError, null);
  assert.ok(
    isKeyframeStart("video/h264", videoOut.sent[0].payload),
    "video starts at a keyframe",
  );
  for (const type of [7, 8, 5]) {
    assert.ok(videoOut.nalTypes.has(type), `NAL unit type ${type} was sent`);
  }
  assert.ok(videoOut.sent.some((packet) => packet.marker), "marker bits kept");
  assert.ok(
    videoOut.sent.every((packet) => packet.payload.length <= 1200),
    "every video payload fits a WebRTC packet",
  );
  assert.equal(videoOut.sequenceGaps, 0, "continuous video sequence numbers");
  assert.equal(audioOut.sequenceGaps, 0, "continuous audio sequence numbers");
}

Deno.test("H.264 and PCMU over TCP-interleaved RTP with Digest authentication", async () => {
  await withCamera(
    { auth: "digest", audio: "pcmu" },
    (camera) => ({ url: camera.url() }),
    ({ router, source }) => expectDecodableVideo(router, source, "audio/PCMU"),
  );
});

Deno.test("H.264 and Opus over UDP with Digest authentication", async () => {
  await withCamera(
    { auth: "digest", audio: "opus" },
    (camera) => ({ url: camera.url(), transport: "udp" }),
    async ({ router, source }) => {
      await expectDecodableVideo(router, source, "audio/opus");
      assert.equal(source.status().detail.transport, "udp");
    },
  );
});

Deno.test("a camera sending SPS/PPS only in the SDP gets them before each IDR, and a late subscriber starts at once", async () => {
  await withCamera(
    { video: "h264-sprop-only", gop: 50 },
    (camera) => ({ url: camera.url(), name: "Front door" }),
    async ({ router, source }) => {
      await waitFor(
        "the video track",
        () => trackOf(router, "video") !== undefined,
      );
      const video = trackOf(router, "video")!;
      assert.equal(video.description.label, "Front door");
      assert.equal(source.name, "Front door");
      const first = subscribe(video).output;
      await waitFor("video to flow", () => first.sent.length >= 40);
      assert.ok(first.nalTypes.has(7) && first.nalTypes.has(8));
      // The first IDR is preceded by the parameter sets.
      const scratch: number[] = [];
      const firstIdr = first.sent.findIndex((packet) => {
        const count = h264NalTypesInPayload(packet.payload, scratch);
        return scratch.slice(0, count).includes(5);
      });
      assert.ok(firstIdr > 0);
      const before = new Set<number>();
      for (const packet of first.sent.slice(0, firstIdr)) {
        const count = h264NalTypesInPayload(packet.payload, scratch);
        scratch.slice(0, count).forEach((type) => before.add(type));
      }
      assert.ok(before.has(7) && before.has(8), "SPS and PPS precede the IDR");

      // Mid-GOP (2 s keyframe interval), a new subscriber is sent the cached
      // keyframe and what followed it straight away.
      await new Promise((resolve) => setTimeout(resolve, 700));
      const late = subscribe(video).output;
      assert.ok(late.sent.length > 0, "the cached keyframe is sent at once");
      assert.ok(isKeyframeStart("video/h264", late.sent[0].payload));
      const cached = late.sent.length;
      await waitFor(
        "live packets after the cached ones",
        () => late.sent.length > cached + 20,
      );
      assert.equal(late.sequenceGaps, 0, "cached and live packets join up");
    },
  );
});

Deno.test("single NAL units larger than 1200 bytes are split into FU-A", async () => {
  await withCamera(
    { mtu: 1400, kbps: 3000 },
    (camera) => ({ url: camera.url() }),
    async ({ router }) => {
      await waitFor(
        "the video track",
        () => trackOf(router, "video") !== undefined,
      );
      const output = subscribe(trackOf(router, "video")!).output;
      await waitFor("video to flow", () => output.sent.length >= 200);
      assert.ok(output.sent.every((packet) => packet.payload.length <= 1200));
      assert.ok(output.nalTypes.has(5));
      assert.equal(output.sequenceGaps, 0);
    },
  );
});

Deno.test("a wrong password is reported as 401 and retried", async () => {
  await withCamera(
    { auth: "digest" },
    (camera) => ({ url: camera.url({ user: "admin", password: "wrong" }) }),
    async ({ router, source }) => {
      await waitFor("the error", () => source.status().lastError !== null);
      const status = source.status();
      assert.match(status.lastError!, /^401 .*wrong user name or password/);
      assert.equal(status.state, "retrying");
      assert.ok(status.retryInSeconds !== null && status.retryInSeconds <= 2);
      assert.equal(router.tracks.size, 0);
    },
  );
});

Deno.test("missing credentials and a wrong path are told apart", async () => {
  await withCamera(
    { auth: "basic" },
    (camera) => ({ url: camera.url(null) }),
    async ({ source }) => {
      await waitFor("the error", () => source.status().lastError !== null);
      assert.match(source.status().lastError!, /^401 .*user name and password/);
    },
  );
  await withCamera(
    { auth: "basic" },
    (camera) => ({ url: camera.url(undefined, "/no/such/stream") }),
    async ({ router, source }) => {
      await waitFor("the error", () => source.status().lastError !== null);
      assert.match(source.status().lastError!, /^404 .*wrong path/);
      assert.equal(router.tracks.size, 0);
    },
  );
});

Deno.test("a camera that is off is reported as connection refused", async () => {
  const camera = await startRtspCamera();
  const url = camera.url();
  await camera.stop();
  const router = new Router();
  const source = new CameraSource({ id: "cam1", url }, router, {
    site: SITE,
    nodeId: NODE_ID,
    idleSeconds: 30,
  });
  try {
    source.start();
    await waitFor("the error", () => source.status().lastError !== null);
    assert.match(source.status().lastError!, /connection refused/);
    assert.equal(source.status().state, "retrying");
  } finally {
    await source.stop();
  }
  assert.equal(source.status().state, "stopped");
});

Deno.test("H.265 video is refused with a plain reason; AAC audio is skipped with a notice", async () => {
  await withCamera(
    { video: "h265" },
    (camera) => ({ url: camera.url() }),
    async ({ router, source }) => {
      await waitFor("the error", () => source.status().lastError !== null);
      assert.match(
        source.status().lastError!,
        /H\.265 .*not supported.*H\.264/,
      );
      assert.equal(router.tracks.size, 0);
    },
  );
  await withCamera(
    { audio: "aac" },
    (camera) => ({ url: camera.url() }),
    async ({ router, source }) => {
      await waitFor(
        "the video track",
        () => trackOf(router, "video") !== undefined,
      );
      assert.equal(trackOf(router, "audio"), undefined);
      const notices = source.status().detail.notices as string[];
      assert.ok(notices.some((notice) => /AAC.*audio is skipped/.test(notice)));
    },
  );
});

Deno.test("a camera restarting mid-stream is reconnected and subscribers see one stream", async () => {
  await withCamera(
    { audio: "pcmu" },
    (camera) => ({ url: camera.url() }),
    async ({ camera, router, source }) => {
      await waitFor(
        "the tracks",
        () =>
          trackOf(router, "video") !== undefined &&
          trackOf(router, "audio") !== undefined,
      );
      const video = subscribe(trackOf(router, "video")!).output;
      const audio = subscribe(trackOf(router, "audio")!).output;
      await waitFor(
        "media",
        () => video.sent.length >= 50 && audio.sent.length >= 5,
      );
      const states = new Set<string>();
      const watcher = setInterval(() => states.add(source.status().state), 20);
      try {
        await camera.restart();
        await waitFor("a retry", () => states.has("retrying"), 20_000);
        const beforeVideo = video.sent.length;
        const beforeAudio = audio.sent.length;
        await waitFor(
          "streaming again",
          () =>
            source.status().state === "streaming" &&
            video.sent.length > beforeVideo + 50 &&
            audio.sent.length > beforeAudio + 5,
          30_000,
        );
      } finally {
        clearInterval(watcher);
      }
      assert.equal(source.status().detail.reconnects, 1);
      assert.equal(video.sequenceGaps, 0, "video sequence numbers continue");
      assert.equal(audio.sequenceGaps, 0, "audio sequence numbers continue");
      for (const output of [video, audio]) {
        for (let i = 1; i < output.sent.length; i++) {
          const step =
            (output.sent[i].timestamp - output.sent[i - 1].timestamp) | 0;
          assert.ok(step >= 0, "timestamps never go back");
        }
      }
      // Tracks stayed published throughout: nobody had to resubscribe.
      assert.equal(router.tracks.size, 2);
    },
  );
});

Deno.test("until someone watches, a camera is only described, not streamed", async () => {
  await withCamera(
    {},
    (camera) => ({ url: camera.url() }),
    async ({ router, source }) => {
      await waitFor(
        "the video track",
        () => trackOf(router, "video") !== undefined,
      );
      // Far sooner than the 30 s idle time: no session was set up at all.
      await waitFor("idle", () => source.status().state === "idle", 5000);
      assert.equal(source.status().lastError, null);
      const { output, consumer } = subscribe(trackOf(router, "video")!);
      await waitFor("streaming on demand", () => output.sent.length >= 30);
      assert.equal(source.status().state, "streaming");
      assert.ok(isKeyframeStart("video/h264", output.sent[0].payload));
      consumer.close();
    },
    30,
  );
});

Deno.test("a camera streams only while watched, after announcing its tracks", async () => {
  await withCamera(
    {},
    (camera) => ({ url: camera.url() }),
    async ({ router, source }) => {
      await waitFor(
        "the video track",
        () => trackOf(router, "video") !== undefined,
      );
      // Nobody subscribed: after the idle time the session is torn down, and
      // the track stays announced.
      await waitFor("idle", () => source.status().state === "idle");
      assert.ok(trackOf(router, "video"));
      const { output, consumer } = subscribe(trackOf(router, "video")!);
      await waitFor("streaming on demand", () => output.sent.length >= 30);
      assert.ok(isKeyframeStart("video/h264", output.sent[0].payload));
      consumer.close();
      await waitFor("idle again", () => source.status().state === "idle");
      assert.equal(source.status().lastError, null);
    },
    1,
  );
});
