// The forwarding path without a network: Track, Consumer and Router driven
// with fake outputs and upstreams.
import assert from "node:assert/strict";
import {
  GenericNack,
  PictureLossIndication,
  RtcpPayloadSpecificFeedback,
  RtcpTransportLayerFeedback,
} from "werift";
import { Consumer } from "../media/consumer.ts";
import { Router, type RouterPeer } from "../media/router.ts";
import { Track } from "../media/track.ts";
import {
  FakeOutput,
  FakeUpstream,
  trackDescription as description,
} from "./support/router_fakes.ts";

const VP8_KEY = Uint8Array.from([0x10, 0x10, 0, 0, 1, 2, 3]);
const VP8_DELTA = Uint8Array.from([0x10, 0x11, 0, 0, 4, 5, 6]);

function setup(kind: "audio" | "video" = "video") {
  const upstream = new FakeUpstream();
  const track = new Track(description(kind), "alice", upstream);
  const output = new FakeOutput();
  const consumer = new Consumer(track, "bob");
  track.addConsumer(consumer);
  consumer.activate(output, 0xabcdef, 97);
  return { upstream, track, output, consumer };
}

Deno.test("video starts at a keyframe, with the subscriber's SSRC and payload type, bytes untouched", () => {
  const { track, output, upstream } = setup();
  assert.equal(
    upstream.keyframeRequests,
    1,
    "a joining subscriber asks for a keyframe",
  );
  track.receive(100, 9000, true, 96, VP8_DELTA, 0);
  assert.equal(
    output.sent.length,
    0,
    "delta frames before a keyframe are useless",
  );
  track.receive(101, 12000, true, 96, VP8_KEY, 33);
  track.receive(102, 15000, true, 96, VP8_DELTA, 66);
  assert.deepEqual(output.sent.map((p) => [p.seq, p.ts, p.ssrc, p.pt]), [
    [101, 12000, 0xabcdef, 97],
    [102, 15000, 0xabcdef, 97],
  ]);
  assert.equal(
    output.sent[0].payload,
    VP8_KEY,
    "the very same bytes, not a copy",
  );
});

Deno.test("audio forwards at once and nothing is sent before the leg is ready", () => {
  const { track, output } = setup("audio");
  output.ready = false;
  track.receive(1, 960, false, 111, Uint8Array.of(1), 0);
  output.ready = true;
  track.receive(2, 1920, false, 111, Uint8Array.of(2), 20);
  assert.deepEqual(output.sent.map((p) => p.seq), [2]);
});

Deno.test("keyframe requests upstream are throttled but a late one is deferred, not dropped", async () => {
  const upstream = new FakeUpstream();
  const track = new Track(description("video"), "alice", upstream);
  // The deferred request fires on the real clock, so the test uses it too.
  const now = performance.now();
  track.requestKeyframe(now);
  track.requestKeyframe(now + 100);
  track.requestKeyframe(now + 200);
  assert.equal(upstream.keyframeRequests, 1);
  await new Promise((resolve) => setTimeout(resolve, 700));
  assert.equal(
    upstream.keyframeRequests,
    2,
    "the requests inside the window become one more",
  );
  track.close();
});

Deno.test("while a subscriber waits for a keyframe, it is asked for again every 500 ms", () => {
  const { track, output, upstream } = setup();
  const start = performance.now();
  assert.equal(upstream.keyframeRequests, 1, "asked once on joining");
  track.receive(1, 0, true, 96, VP8_DELTA, start + 100);
  assert.equal(upstream.keyframeRequests, 1, "not again within 500 ms");
  track.receive(2, 3000, true, 96, VP8_DELTA, start + 600);
  assert.equal(upstream.keyframeRequests, 2, "the first may have been lost");
  track.receive(3, 6000, true, 96, VP8_DELTA, start + 700);
  track.receive(4, 9000, true, 96, VP8_DELTA, start + 1200);
  assert.equal(upstream.keyframeRequests, 3);
  track.receive(5, 12000, true, 96, VP8_KEY, start + 1300);
  track.receive(6, 15000, true, 96, VP8_DELTA, start + 2000);
  assert.equal(upstream.keyframeRequests, 3, "nobody waits any more");
  assert.deepEqual(output.sent.map((p) => p.seq), [5, 6]);
  track.close();
});

Deno.test("NACKs are answered from the cache, deduplicated, and misses are counted", () => {
  const { track, output, consumer } = setup();
  track.receive(10, 0, true, 96, VP8_KEY, 0);
  for (let seq = 11; seq < 20; seq++) {
    track.receive(seq, seq * 3000, true, 96, VP8_DELTA, seq);
  }
  output.sent = [];
  const nack = (lost: number[], now: number) =>
    consumer.handleRtcp(
      new RtcpTransportLayerFeedback({
        feedback: new GenericNack({
          senderSsrc: 1,
          mediaSourceSsrc: 0xabcdef,
          lost,
        }),
      }),
      now,
    );
  nack([12, 15, 40], 1000);
  assert.deepEqual(output.sent.map((p) => p.seq), [12, 15]);
  nack([12], 1050);
  assert.equal(
    output.sent.length,
    2,
    "the same packet is not resent within 100 ms",
  );
  nack([12], 1200);
  assert.equal(output.sent.length, 3, "but may be later");
  assert.equal(consumer.retransmitted, 3);
  assert.equal(consumer.nackMisses, 1, "seq 40 was never received");
});

Deno.test("a PLI from a subscriber becomes a keyframe request upstream", () => {
  const { consumer, upstream } = setup();
  const before = upstream.keyframeRequests;
  consumer.handleRtcp(
    new RtcpPayloadSpecificFeedback({
      feedback: new PictureLossIndication({
        senderSsrc: 1,
        mediaSsrc: 0xabcdef,
      }),
    }),
    10_000,
  );
  assert.equal(upstream.keyframeRequests, before + 1);
});

Deno.test("publisher-leg losses are NACKed upstream once each", () => {
  const { track, upstream } = setup();
  track.receive(1, 0, true, 96, VP8_KEY, 0);
  track.receive(4, 9000, true, 96, VP8_DELTA, 10);
  track.receive(5, 12000, true, 96, VP8_DELTA, 20);
  track.receive(6, 15000, true, 96, VP8_DELTA, 30);
  assert.deepEqual(upstream.nacks.flat(), [2, 3]);
  track.receive(2, 3000, true, 96, VP8_DELTA, 40);
  track.receive(7, 18000, true, 96, VP8_DELTA, 50);
  assert.deepEqual(upstream.nacks.flat(), [2, 3], "never NACKed twice");
});

Deno.test("after a restart the subscriber's sequence numbers and timestamps continue", () => {
  const { track, output, consumer } = setup();
  track.receive(100, 90_000, true, 96, VP8_KEY, 0);
  track.receive(101, 93_000, true, 96, VP8_DELTA, 33);
  consumer.restart(40);
  // The source changes (e.g. another path): unrelated numbering.
  track.receive(5000, 1_000_000, true, 96, VP8_DELTA, 60);
  track.receive(5001, 1_003_000, true, 96, VP8_KEY, 100);
  track.receive(5002, 1_006_000, true, 96, VP8_DELTA, 133);
  assert.deepEqual(output.sent.map((p) => p.seq), [100, 101, 102, 103]);
  const [, , third, fourth] = output.sent;
  assert.ok(
    third.ts > 93_000 && third.ts - 93_000 < 90_000,
    `timestamp continues (${third.ts})`,
  );
  assert.equal(fourth.ts - third.ts, 3000);
});

Deno.test("the router announces tracks to everyone but their publisher, and demand follows subscribers", () => {
  const router = new Router();
  const heard = new Map<string, string[]>();
  const peer = (id: string): RouterPeer => {
    heard.set(id, []);
    return {
      id,
      kind: "client",
      trackAdded: (t) => heard.get(id)!.push(`+${t.id}`),
      trackUpdated: (t) => heard.get(id)!.push(`~${t.id}`),
      trackRemoved: (t) => heard.get(id)!.push(`-${t.id}`),
    };
  };
  router.addPeer(peer("alice"));
  router.addPeer(peer("bob"));
  const upstream = new FakeUpstream();
  const track = new Track(description("video", "v1"), "alice", upstream);
  router.publish(track);
  router.addPeer(peer("carol"));
  assert.deepEqual(heard.get("alice"), []);
  assert.deepEqual(heard.get("bob"), ["+v1"]);
  assert.deepEqual(
    heard.get("carol"),
    ["+v1"],
    "a late joiner hears of existing tracks",
  );
  assert.equal(
    router.subscribable("alice", "v1"),
    undefined,
    "nobody subscribes to their own track",
  );
  const consumer = new Consumer(track, "bob");
  track.addConsumer(consumer);
  consumer.close();
  assert.deepEqual(upstream.demand, [true, false]);
  router.removePeer("alice");
  assert.deepEqual(
    heard.get("bob"),
    ["+v1", "-v1"],
    "a leaving publisher's tracks end",
  );
  assert.ok(track.closed);
});

Deno.test("sender reports map the track's clock onto the subscriber's timestamps", () => {
  const { track, consumer } = setup("audio");
  assert.equal(
    consumer.senderReport(0n, 0),
    undefined,
    "nothing to report before the first packet",
  );
  track.receive(1, 48_000, false, 111, Uint8Array.of(1), 1000);
  const report = consumer.senderReport(0x1_0000_0000n, 1500)!;
  assert.equal(
    report.senderInfo.rtpTimestamp,
    48_000 + 24_000,
    "half a second later on a 48 kHz clock",
  );
  assert.equal(report.senderInfo.packetCount, 1);
  assert.equal(report.ssrc, 0xabcdef);
});
