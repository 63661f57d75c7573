// Simulcast without a network: the layer choice, VP8 picture ids kept
// continuous, and a subscription moving between a group's layers through
// the router.
import assert from "node:assert/strict";
import { RtcpReceiverInfo, RtcpRrPacket, type RtpHeader } from "werift";
import { Consumer } from "../media/consumer.ts";
import {
  CONGESTED_LOSS,
  FAILED_LAYER_HOLD_MS,
  FIRST_UPGRADE_HOLD_MS,
  LayerSelector,
  type LayerStatus,
  UPGRADE_HOLD_MS,
} from "../media/layer_selection.ts";
import { VideoShedding } from "../media/overload.ts";
import { Router } from "../media/router.ts";
import { Track } from "../media/track.ts";
import { locateVp8Ids, Vp8PictureIds } from "../media/vp8_picture_ids.ts";
import {
  FakeOutput,
  FakeUpstream,
  trackDescription,
} from "./support/router_fakes.ts";

const flowing: LayerStatus[] = ["flowing", "flowing", "flowing"];

Deno.test("a subscription starts on the best flowing layer it may have, else the best", () => {
  const selector = new LayerSelector(0);
  assert.equal(selector.initial(flowing, Infinity, 0), 2);
  assert.equal(selector.initial(flowing, 1, 0), 1);
  assert.equal(
    selector.initial(["flowing", "flowing", "stalled"], Infinity, 0),
    1,
  );
  assert.equal(selector.initial(["idle", "idle", "idle"], Infinity, 0), 2);
  assert.equal(
    selector.initial(["flowing", "flowing", "idle"], Infinity, 0),
    1,
    "one flowing gives a picture at once",
  );
  assert.equal(selector.initial(["stalled", "stalled"], Infinity, 0), -1);
});

Deno.test("loss steps down at once; a clean link steps up after a hold that doubles when the step fails", () => {
  const selector = new LayerSelector(0);
  let now = 0;
  selector.onReport(CONGESTED_LOSS, now);
  assert.equal(selector.choose(2, flowing, Infinity, now), 1);
  assert.equal(
    selector.choose(1, flowing, Infinity, now),
    1,
    "one step a report",
  );
  now += UPGRADE_HOLD_MS - 1;
  selector.onReport(0, now);
  assert.equal(selector.choose(1, flowing, Infinity, now), 1, "still holding");
  now += 1;
  assert.equal(
    selector.choose(1, flowing, Infinity, now),
    2,
    "clean for the hold",
  );
  // The step up brings loss back at once: the next try waits twice as long.
  now += 1000;
  selector.onReport(0.3, now);
  assert.equal(selector.choose(2, flowing, Infinity, now), 1);
  now += UPGRADE_HOLD_MS;
  assert.equal(selector.choose(1, flowing, Infinity, now), 1);
  now += UPGRADE_HOLD_MS;
  assert.equal(selector.choose(1, flowing, Infinity, now), 2);
  // Moderate loss neither steps down nor lets it step up.
  selector.onReport(0.05, now);
  assert.equal(selector.choose(2, flowing, Infinity, now + 60_000), 2);
  assert.equal(selector.choose(0, flowing, Infinity, now + 1), 0);
});

Deno.test("the first step up comes soon: browsers add their higher layers a few seconds in", () => {
  const selector = new LayerSelector(0);
  assert.equal(
    selector.choose(0, flowing, Infinity, FIRST_UPGRADE_HOLD_MS - 1),
    0,
  );
  assert.equal(selector.choose(0, flowing, Infinity, FIRST_UPGRADE_HOLD_MS), 1);
});

Deno.test("a stalled layer is left at once, for the best below it or else the nearest above", () => {
  const selector = new LayerSelector(0);
  assert.equal(
    selector.choose(2, ["flowing", "flowing", "stalled"], Infinity, 0),
    1,
  );
  assert.equal(
    selector.choose(0, ["stalled", "stalled", "flowing"], Infinity, 0),
    2,
  );
  assert.equal(
    selector.choose(1, ["stalled", "stalled", "stalled"], Infinity, 0),
    1,
    "nowhere better to go",
  );
});

Deno.test("the subscriber's cap moves it down at once and bounds every step up", () => {
  const selector = new LayerSelector(0);
  assert.equal(selector.choose(2, flowing, 0, 0), 0);
  assert.equal(selector.choose(0, flowing, 0, 100_000), 0);
  assert.equal(selector.choose(0, flowing, 5, 100_000), 1);
});

Deno.test("a layer whose switch failed is skipped for a while", () => {
  const selector = new LayerSelector(0);
  selector.switchFailed(2, 10_000);
  assert.equal(selector.choose(1, flowing, Infinity, 10_000), 1);
  assert.equal(
    selector.choose(1, flowing, Infinity, 10_000 + FAILED_LAYER_HOLD_MS),
    2,
  );
});

/** A VP8 payload descriptor with a 15-bit picture id and TL0PICIDX, then
 * a frame tag (keyframe or not) and a body byte. */
function vp8(pictureId: number, tl0: number, keyframe: boolean): Uint8Array {
  return Uint8Array.from([
    0x90, // X, S, partition 0
    0xc0, // I, L
    0x80 | (pictureId >> 8),
    pictureId & 0xff,
    tl0,
    keyframe ? 0x00 : 0x01,
    0,
    0,
    0xee,
  ]);
}

const pictureIdOf = (payload: Uint8Array) =>
  ((payload[2] & 0x7f) << 8) | payload[3];

Deno.test("VP8 ids: found in every descriptor shape, and a truncated one is refused", () => {
  const located = { pictureIdAt: -1, pictureIdBits: 0, tl0At: -1 };
  assert.equal(locateVp8Ids(vp8(300, 7, true), located), true);
  assert.deepEqual(located, { pictureIdAt: 2, pictureIdBits: 15, tl0At: 4 });
  assert.equal(
    locateVp8Ids(Uint8Array.from([0x90, 0x80, 0x05, 1]), located),
    true,
  );
  assert.deepEqual(located, { pictureIdAt: 2, pictureIdBits: 7, tl0At: -1 });
  assert.equal(locateVp8Ids(Uint8Array.from([0x10, 1, 2]), located), true);
  assert.equal(located.pictureIdAt, -1);
  assert.equal(
    locateVp8Ids(Uint8Array.from([0x90, 0xc0, 0x80]), located),
    false,
  );
  assert.equal(locateVp8Ids(new Uint8Array(0), located), false);
});

Deno.test("VP8 ids: untouched until a rebase, then continued from the last sent, wrapping", () => {
  const ids = new Vp8PictureIds();
  const first = vp8(0x7ffe, 255, true);
  assert.equal(ids.rewrite(first, true), first, "no offset: the same bytes");
  const second = vp8(0x7fff, 255, false);
  ids.rewrite(second, true);
  // Another source whose ids are elsewhere.
  const switched = vp8(1000, 40, true);
  ids.rebase(switched);
  const out = ids.rewrite(switched, true);
  assert.notEqual(out, switched, "a copy: the original is shared");
  assert.equal(pictureIdOf(out), 0, "0x7fff + 1 wraps to 0");
  assert.equal(out[4], 0, "TL0PICIDX 255 + 1 wraps to 0");
  assert.equal(out[8], 0xee, "the rest is copied");
  assert.equal(pictureIdOf(switched), 1000, "the shared payload is untouched");
  assert.equal(pictureIdOf(ids.rewrite(vp8(1001, 40, false), true)), 1);
  // A retransmission of an older packet does not move the last id.
  assert.equal(pictureIdOf(ids.rewrite(vp8(999, 39, false), false)), 0x7fff);
  ids.rebase(vp8(5, 1, true));
  assert.equal(pictureIdOf(ids.rewrite(vp8(5, 1, true), true)), 2);
});

class CopyingOutput extends FakeOutput {
  override sendRtp(payload: Uint8Array, header: RtpHeader) {
    super.sendRtp(payload.slice(), header);
  }
}

/** A publisher's three layers in a router, each with a clock of its own. */
function simulcastSetup() {
  const router = new Router();
  const upstreams = [0, 1, 2].map(() => new FakeUpstream());
  // Added highest first: the router orders them by layer.
  const layers = [2, 1, 0].map((layer) => {
    const description = trackDescription("video", `alice:cam/${layer}`);
    description.simulcast = { group: "alice:cam", layer };
    const track = new Track(description, "alice", {
      requestKeyframe: () => upstreams[layer].requestKeyframe(),
      sendNack: (lost) => upstreams[layer].sendNack(lost),
    });
    router.publish(track);
    return track;
  }).reverse();
  return { router, layers, upstreams };
}

/** Feeds each layer one frame (one packet) at `frame`, a keyframe or not
 * as `keyframe` says, nothing where it says null; layer L's sequence
 * numbers start at 1000·L, its timestamps at 10^6·L, its picture ids at
 * 100·L. */
function feedFrame(
  layers: Track[],
  frame: number,
  keyframe: (boolean | null)[],
  nowMs: number,
) {
  layers.forEach((track, layer) => {
    if (keyframe[layer] === null) return;
    track.receive(
      (1000 * layer + frame) & 0xffff,
      (1_000_000 * layer + 3000 * frame) >>> 0,
      true,
      96,
      vp8(100 * layer + frame, layer, keyframe[layer]!),
      nowMs,
    );
  });
}

/** Bob subscribes to the group through its lowest layer's id, on a leg
 * that is up. */
function subscribeBob(layers: Track[], shedding?: VideoShedding) {
  const consumer = Consumer.adaptive(layers[0], "bob", Infinity, shedding);
  consumer.track.addConsumer(consumer);
  const output = new CopyingOutput();
  consumer.activate(output, 0x1234, 97);
  return { consumer, output };
}

Deno.test("the router keeps a group's layers in order and drops them as they end", () => {
  const { router, layers } = simulcastSetup();
  assert.deepEqual(layers.map((t) => t.description.simulcast?.layer), [
    0,
    1,
    2,
  ]);
  assert.equal(layers[0].layers, layers[2].layers, "one shared list");
  assert.deepEqual(layers[0].layers!.map((t) => t.id), layers.map((t) => t.id));
  router.unpublish(layers[2].id);
  assert.deepEqual(layers[0].layers!.map((t) => t.id), [
    layers[0].id,
    layers[1].id,
  ]);
});

Deno.test("a subscription moves down at a keyframe of the lower layer, in one unbroken stream", () => {
  const { layers, upstreams } = simulcastSetup();
  let now = performance.now();
  // Every layer has flowed recently.
  feedFrame(layers, 0, [false, false, false], now);
  const { consumer, output } = subscribeBob(layers);
  assert.equal(consumer.track, layers[2], "starts on the top layer");
  now += 33;
  feedFrame(layers, 1, [true, true, true], now);
  now += 33;
  feedFrame(layers, 2, [false, false, false], now);
  assert.deepEqual(output.sent.map((p) => p.seq), [2001, 2002]);
  const keyframeAsks = upstreams[0].keyframeRequests;
  consumer.setMaxLayer(0, now);
  assert.equal(
    consumer.track,
    layers[2],
    "still on the top layer until layer 0's keyframe",
  );
  assert.equal(
    upstreams[0].keyframeRequests,
    keyframeAsks + 1,
    "asked for one",
  );
  now += 33;
  feedFrame(layers, 3, [false, false, false], now);
  now += 33;
  feedFrame(layers, 4, [true, false, false], now);
  now += 33;
  feedFrame(layers, 5, [false, false, false], now);
  assert.equal(consumer.track, layers[0]);
  assert.equal(consumer.layer, 0);
  assert.equal(layers[2].consumers.length, 0);
  assert.deepEqual(
    output.sent.map((p) => p.seq),
    [2001, 2002, 2003, 2004, 2005],
    "sequence numbers run on across the switch",
  );
  const ts = output.sent.map((p) => p.ts);
  for (let i = 1; i < ts.length; i++) {
    assert.ok(((ts[i] - ts[i - 1]) | 0) > 0, `timestamps move forward: ${ts}`);
  }
  assert.deepEqual(
    output.sent.map((p) => pictureIdOf(p.payload)),
    [201, 202, 203, 204, 205],
    "picture ids run on too",
  );
  assert.equal(output.sent[3].payload[8], 0xee);
  assert.equal(
    layers[0].totals().packetsOut,
    2,
    "each layer counts what it sent",
  );
  assert.equal(layers[2].totals().packetsOut, 3);
});

Deno.test("a switch keeps the media clock where sender reports give it", () => {
  const { layers } = simulcastSetup();
  let now = performance.now();
  feedFrame(layers, 0, [false, false, false], now);
  // Layer L's RTP time t·90 + 10^6·L corresponds to wall time t.
  layers.forEach((track, layer) =>
    track.onSenderReport(0, 1_000_000 * layer + 90 * now, now)
  );
  const { consumer, output } = subscribeBob(layers);
  now += 33;
  feedFrame(layers, 1, [true, true, true], now);
  consumer.setMaxLayer(1, now);
  now += 33;
  feedFrame(layers, 2, [false, true, false], now);
  assert.equal(consumer.track, layers[1]);
  const [top, middle] = output.sent;
  // Frames 1 and 2 are 3000 apart on every layer's clock; the reports say
  // the layers' clocks differ by exactly 10^6.
  assert.equal((middle.ts - top.ts) >>> 0, 3000);
});

Deno.test("a layer that stops flowing is left, and a target that never sends a keyframe is given up", () => {
  const { layers } = simulcastSetup();
  let now = performance.now();
  feedFrame(layers, 0, [true, true, true], now);
  const { consumer, output } = subscribeBob(layers);
  for (let frame = 1; frame < 10; frame++) {
    now += 100;
    feedFrame(layers, frame, [frame === 1, frame === 1, frame === 1], now);
  }
  assert.equal(consumer.track, layers[2]);
  // The publisher stops its top layer (as browsers do on a short uplink).
  for (let frame = 10; frame < 30; frame++) {
    now += 100;
    feedFrame(layers, frame, [false, false, null], now);
    consumer.adaptLayer(now);
  }
  assert.equal(layers[1].joining.length, 1, "waits on layer 1 for a keyframe");
  // None comes in time: layer 1 is given up for now and layer 0 tried.
  for (let frame = 30; frame < 80; frame++) {
    now += 100;
    feedFrame(layers, frame, [frame === 79, false, null], now);
    consumer.adaptLayer(now);
  }
  assert.equal(layers[1].joining.length, 0);
  assert.equal(consumer.track, layers[0], output.seqs.join());
  assert.equal(layers[2].consumers.length, 0);
});

Deno.test("a subscriber's losses step it down a layer", () => {
  const { layers } = simulcastSetup();
  let now = performance.now();
  feedFrame(layers, 0, [true, true, true], now);
  const { consumer } = subscribeBob(layers);
  now += 33;
  feedFrame(layers, 1, [true, true, true], now);
  assert.equal(consumer.track, layers[2]);
  consumer.handleRtcp(
    new RtcpRrPacket({
      reports: [
        new RtcpReceiverInfo({
          ssrc: 0x1234,
          fractionLost: 64, // 25%
          packetsLost: 10,
          highestSequence: 0,
          jitter: 0,
          lsr: 0,
          dlsr: 0,
        }),
      ],
    }),
    now,
  );
  assert.equal(layers[1].joining.length, 1, "heading for layer 1");
  now += 33;
  feedFrame(layers, 2, [false, true, false], now);
  assert.equal(consumer.track, layers[1]);
});

Deno.test("a plain track gives a plain subscription", () => {
  const track = new Track(
    trackDescription("video"),
    "alice",
    new FakeUpstream(),
  );
  const consumer = Consumer.adaptive(track, "bob", 0);
  assert.equal(consumer.track, track);
  assert.equal(consumer.layer, -1);
});

Deno.test("shed under overload, a simulcast subscription drops to its lowest layer and goes on; paused only a step later", async () => {
  const { layers } = simulcastSetup();
  const shedding = new VideoShedding();
  let now = performance.now();
  feedFrame(layers, 0, [true, true, true], now);
  const { consumer, output } = subscribeBob(layers, shedding);
  let frame = 1;
  const next = (keyframe: (boolean | null)[]) => {
    now += 33;
    feedFrame(layers, frame++, keyframe, now);
  };
  next([true, true, true]);
  assert.equal(consumer.track, layers[2]);

  // The first step of shedding, and Bob is the only one to shed.
  shedding.shed(1 / 8);
  assert.equal(shedding.lowered, 1);
  assert.equal(shedding.paused, 0);
  next([false, false, false]);
  // It moves after the packet that found it shed has gone out.
  await Promise.resolve();
  assert.equal(layers[0].joining.length, 1, "heading for the lowest layer");
  next([true, false, false]);
  assert.equal(consumer.track, layers[0]);
  next([false, false, false]);
  assert.equal(shedding.packetsShed, 0, "nothing was held back");
  assert.deepEqual(
    output.sent.map((p) => p.seq),
    [2001, 2002, 2003, 2004],
    "one unbroken stream",
  );
  // Its own layer choice keeps it there while it is shed.
  consumer.adaptLayer(now + 60_000);
  assert.equal(layers[1].joining.length + layers[2].joining.length, 0);

  // The next step pauses it.
  shedding.shed(2 / 8);
  assert.equal(shedding.paused, 1);
  assert.equal(shedding.lowered, 0);
  next([true, true, true]);
  assert.equal(output.sent.length, 4, "paused");
  assert.equal(shedding.packetsShed, 1);

  // Calm again: it resumes at a keyframe of its layer, where it was.
  shedding.shed(0);
  next([false, false, false]);
  next([true, false, false]);
  assert.equal(consumer.track, layers[0]);
  assert.deepEqual(output.sent.map((p) => p.seq).slice(4), [2005]);
});
