// Overload protection: the decisions (send queue, shedding order,
// hysteresis, admission) without a network, the UDP send patch on
// loopback, and a real server that refuses a new participant at capacity
// while an existing one keeps receiving.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import dgram from "node:dgram";
import { RtcpReceiverInfo, RtcpRrPacket, UdpTransport } from "werift";
import { Consumer } from "../media/consumer.ts";
import {
  type Admission,
  DEFAULT_MAX_PENDING_SENDS,
  limitsFor,
  OverloadController,
  OverloadMonitor,
  SendQueue,
  sendQueue,
  SHED_RANKS,
  SHED_STEPS,
  shedRank,
  tiebreakFor,
  VideoShedding,
} from "../media/overload.ts";
import { Router } from "../media/router.ts";
import { Track } from "../media/track.ts";
import { TrunkRouting } from "../media/trunk_routing.ts";
import { applyWeriftPatches } from "../media/werift_patches.ts";
import { decodeEnvelope, encodeEnvelope } from "../proto/codec.ts";
import { MediaKind, PeerKind, PROTOCOL_VERSION } from "../proto/messages.ts";
import { ConfigError, loadConfig } from "../server/config.ts";
import {
  CloseCode,
  type SignalChannel,
  SignallingSession,
} from "../server/session.ts";
import {
  FakeOutput,
  FakeUpstream,
  trackDescription,
} from "./support/router_fakes.ts";
import { metric, startServer } from "./support/server.ts";
import { waitFor, WeriftClient } from "./support/werift_client.ts";

const AT_CAPACITY = "this server is at capacity; try again in a moment";

// ---- the send queue ----

Deno.test("the send queue counts up to its cap, drops beyond it and remembers its peaks", () => {
  const queue = new SendQueue(3);
  assert.deepEqual([1, 2, 3, 4, 5].map(() => queue.acquire()), [
    true,
    true,
    true,
    false,
    false,
  ]);
  assert.equal(queue.pending, 3);
  assert.equal(queue.dropped, 2);
  queue.release(3);
  assert.equal(queue.pending, 0);
  assert.equal(queue.takePeak(), 3, "the peak outlives the burst");
  assert.equal(queue.takePeak(), 0, "and is reset by reading it");
  queue.acquire();
  assert.equal(queue.takePeak(), 1);
  assert.equal(queue.takePeak(), 1, "what is still pending is the next peak");
  assert.equal(queue.highest, 3);
});

// ---- which video is shed first ----

Deno.test("worse reception ranks higher, and equal reception is split by a stable tie-break", () => {
  const tiebreak = tiebreakFor("subscriber-a");
  assert.equal(tiebreakFor("subscriber-a"), tiebreak, "stable");
  const ranks = [0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1].map((
    loss,
  ) => shedRank(loss, tiebreak));
  for (let i = 1; i < ranks.length; i++) {
    assert.ok(ranks[i] >= ranks[i - 1], `loss order kept at ${i}`);
  }
  assert.equal(ranks[0], ranks[1], "under 1% loss is no worse than none");
  assert.ok(ranks.at(-1)! < SHED_RANKS);
  const tiebreaks = new Set(
    Array.from({ length: 64 }, (_, i) => tiebreakFor(`p${i}`)),
  );
  assert.ok(tiebreaks.size > 1, "subscribers spread over the tie-breaks");
  // Loss outweighs any tie-break.
  assert.ok(shedRank(0.01, 0) > shedRank(0, 7));
});

Deno.test("shedding a share of video takes the worst-ranked subscriptions first, never protected ones", () => {
  const shedding = new VideoShedding();
  const ranks = [0, 3, 8, 40, 40].map((rank) => shedding.enter("any", rank));
  shedding.protect("trunk");
  assert.equal(shedding.enter("trunk", 63), -1, "a trunk is never ranked");
  assert.equal(shedding.paused, 0);
  assert.equal(shedding.cutoff, SHED_RANKS, "nothing is shed at first");

  shedding.shed(1 / 8);
  assert.equal(shedding.cutoff, 40, "the two worst share a rank");
  assert.equal(shedding.paused, 2);
  shedding.shed(3 / 5);
  assert.equal(shedding.cutoff, 8);
  assert.equal(shedding.paused, 3);
  shedding.shed(1);
  assert.equal(shedding.cutoff, 0);
  assert.equal(shedding.paused, 5, "all of them, the trunk aside");
  shedding.shed(0);
  assert.equal(shedding.cutoff, SHED_RANKS);

  shedding.move(ranks[0], 50);
  shedding.shed(1 / 5);
  assert.equal(shedding.cutoff, 50, "a subscription that got worse goes first");
  for (const rank of [50, ...ranks.slice(1)]) shedding.leave(rank);
  shedding.shed(1);
  assert.equal(shedding.paused, 0, "everyone left");
});

Deno.test("a simulcast subscription is first held on its lowest layer and paused one step later; any other is paused at once", () => {
  const shedding = new VideoShedding();
  const plain = [40, 8].map((rank) => shedding.enter("any", rank));
  const layered = [40, 3].map((rank) => shedding.enter("any", rank, true));
  shedding.shed(1 / 8);
  assert.equal(shedding.cutoff, 40, "the two worst share a rank");
  assert.equal(shedding.pauseCutoff, SHED_RANKS);
  assert.equal(shedding.paused, 1, "the plain one");
  assert.equal(shedding.lowered, 1, "the simulcast one");
  shedding.shed(2 / 8);
  assert.equal(shedding.pauseCutoff, 40);
  assert.equal(shedding.paused, 2, "a step later the simulcast one too");
  assert.equal(shedding.lowered, 0);
  shedding.shed(6 / 8);
  assert.equal(shedding.cutoff, 8);
  assert.equal(shedding.paused, 3, "both plain ones, the worse simulcast one");
  assert.equal(shedding.lowered, 0, "the better one is not shed yet");
  shedding.shed(1);
  assert.equal(shedding.paused, 4, "at the last step, everything");
  shedding.move(layered[1], 50, true);
  shedding.shed(1 / 8);
  assert.equal(shedding.cutoff, 50, "the one that got worse goes first");
  assert.equal(shedding.lowered, 1);
  assert.equal(shedding.paused, 0);
  plain.forEach((rank) => shedding.leave(rank));
  shedding.leave(layered[0], true);
  shedding.leave(50, true);
  shedding.shed(1);
  assert.equal(shedding.paused + shedding.lowered, 0, "everyone left");
});

// ---- hysteresis ----

const testLimits = () => ({
  maxPendingSends: 800,
  pressurePendingSends: 200,
  calmPendingSends: 100,
  pressureLagMs: 150,
  calmLagMs: 40,
});

Deno.test("pressure from pending sends sheds once it lasts half a second, then one step per five ticks up to everything", () => {
  const controller = new OverloadController(testLimits());
  controller.tick(0, 199);
  assert.equal(controller.overloaded, false);
  for (let i = 0; i < 4; i++) controller.tick(0, 200);
  assert.equal(
    controller.overloaded,
    false,
    "a burst that drains is no overload",
  );
  controller.tick(0, 0);
  for (let i = 0; i < 4; i++) controller.tick(0, 200);
  assert.equal(controller.overloaded, false, "and the count starts over");
  controller.tick(0, 200);
  assert.equal(controller.shedSteps, 1, "five ticks of pressure in a row");
  assert.equal(controller.overloaded, true);
  for (let i = 0; i < 4; i++) controller.tick(0, 5000);
  assert.equal(controller.shedSteps, 1, "the step gets time to take effect");
  controller.tick(0, 5000);
  assert.equal(controller.shedSteps, 2);
  for (let i = 0; i < 100; i++) controller.tick(0, 5000);
  assert.equal(controller.shedSteps, SHED_STEPS);
  assert.equal(controller.shedFraction, 1);
});

Deno.test("shedding falls one step per two seconds of calm, and in-between load holds it", () => {
  const controller = new OverloadController(testLimits());
  for (let i = 0; i < 10; i++) controller.tick(0, 300);
  assert.equal(controller.shedSteps, 2);
  for (let i = 0; i < 100; i++) controller.tick(0, 150);
  assert.equal(controller.shedSteps, 2, "neither pressure nor calm: hold");
  for (let i = 0; i < 19; i++) controller.tick(0, 100);
  assert.equal(controller.shedSteps, 2);
  controller.tick(0, 0);
  assert.equal(controller.shedSteps, 1, "twenty calm ticks lower one step");
  for (let i = 0; i < 10; i++) controller.tick(0, 0);
  controller.tick(0, 150);
  for (let i = 0; i < 19; i++) controller.tick(0, 0);
  assert.equal(controller.shedSteps, 1, "the calm run starts over");
  controller.tick(0, 0);
  assert.equal(controller.shedSteps, 0);
  assert.equal(controller.overloaded, false);
});

Deno.test("event loop lag counts once it lasts: a single stall does not shed", () => {
  const controller = new OverloadController(testLimits());
  controller.tick(400, 0);
  assert.equal(controller.overloaded, false, "one stall is smoothed away");
  for (let i = 0; i < 10 && !controller.overloaded; i++) {
    controller.tick(400, 0);
  }
  assert.equal(controller.overloaded, true, "a loop that stays late sheds");
  assert.ok(controller.lagMs >= 150);
  for (let i = 0; i < 200; i++) controller.tick(0, 0);
  assert.equal(controller.overloaded, false, "and recovers when it catches up");
  assert.ok(controller.lagMs < 40);
});

Deno.test("datagrams the kernel refuses are pressure while they last, and calm needs none", () => {
  const controller = new OverloadController(testLimits());
  for (let i = 0; i < 4; i++) controller.tick(0, 0, 3);
  assert.equal(controller.overloaded, false, "a moment of refusals passes");
  controller.tick(0, 0, 1);
  assert.equal(controller.overloaded, true, "half a second of them sheds");
  for (let i = 0; i < 19; i++) controller.tick(0, 0, 0);
  controller.tick(0, 0, 1);
  for (let i = 0; i < 19; i++) controller.tick(0, 0, 0);
  assert.equal(controller.shedSteps, 1, "a refusal resets the calm count");
  controller.tick(0, 0, 0);
  assert.equal(controller.overloaded, false);
});

Deno.test("the default limits scale with --max-pending-sends", () => {
  const limits = limitsFor(DEFAULT_MAX_PENDING_SENDS);
  assert.equal(limits.pressurePendingSends, DEFAULT_MAX_PENDING_SENDS / 4);
  assert.ok(limits.calmPendingSends < limits.pressurePendingSends);
  const tiny = limitsFor(1);
  assert.equal(tiny.pressurePendingSends, 1, "any send is pressure");
  assert.equal(tiny.calmPendingSends, 0);
});

// ---- admission ----

/** A monitor with a queue of its own, recording when it is overloaded. */
function testMonitor() {
  const queue = new SendQueue();
  const changes: boolean[] = [];
  const monitor = new OverloadMonitor(
    testLimits(),
    (overloaded) => changes.push(overloaded),
    queue,
    new VideoShedding(),
  );
  /** Ticks with sends piling up, until it sheds. */
  const overload = () => {
    for (let tick = 0; tick < 5; tick++) {
      for (let i = 0; i < 300; i++) queue.acquire();
      monitor.tick(0);
      queue.release(300);
    }
  };
  return { queue, changes, monitor, overload };
}

Deno.test("joins are refused while overloaded, with one warning per episode", () => {
  const { queue, changes, monitor, overload } = testMonitor();
  assert.equal(queue.limit, 800, "the monitor sets the cap");
  const calmDown = () => {
    for (let i = 0; i < 200 && monitor.controller.overloaded; i++) {
      monitor.tick(0);
    }
  };
  assert.equal(monitor.admit(), "admit");
  overload();
  const answers: Admission[] = [monitor.admit(), monitor.admit()];
  calmDown();
  answers.push(monitor.admit());
  overload();
  answers.push(monitor.admit(), monitor.admit());
  assert.deepEqual(answers, [
    "refuse-and-warn",
    "refuse",
    "admit",
    "refuse-and-warn",
    "refuse",
  ]);
  assert.deepEqual(changes, [true, false, true]);
  const stats = monitor.stats();
  assert.equal(stats.joinsRefused, 4);
  assert.equal(stats.overloaded, true);
  assert.equal(stats.pendingSendsHighest, 300);
  assert.equal(stats.pendingSendsLimit, 800);
  monitor.stop();
});

Deno.test("a calm monitor checks once a second, and ten times a second at any sign of load", () => {
  const { queue, monitor } = testMonitor();
  const periods: number[] = [];
  for (let i = 0; i < 50; i++) periods.push(monitor.tick(0));
  assert.deepEqual(new Set(periods.slice(0, 49)), new Set([100]));
  assert.equal(periods[49], 1000, "slow after 5 s of calm");
  assert.equal(monitor.tick(5), 1000, "a few ms late is still calm");
  // A timer a second late: the event loop was busy. Fast again until the
  // smoothed lag has settled and 50 calm ticks followed.
  assert.equal(monitor.tick(1000), 100);
  let fast = 1;
  while (fast < 200 && monitor.tick(0) === 100) fast++;
  assert.ok(fast > 50 && fast < 200, `${fast} fast ticks`);
  // Sends piling up bring the fast ticks back at once.
  for (let i = 0; i < 300; i++) queue.acquire();
  assert.equal(monitor.tick(0), 100);
  queue.release(300);
  monitor.stop();
});

Deno.test("stopping the monitor lifts shedding and admits again; start and stop repeat harmlessly", () => {
  const { changes, monitor, overload } = testMonitor();
  assert.equal(monitor.stats().watching, false);
  monitor.start();
  monitor.start();
  assert.equal(monitor.stats().watching, true);
  overload();
  assert.equal(monitor.admit(), "refuse-and-warn");
  assert.ok(monitor.stats().shedFraction > 0);
  monitor.stop();
  monitor.stop();
  const stats = monitor.stats();
  assert.equal(stats.watching, false);
  assert.equal(stats.overloaded, false);
  assert.equal(stats.shedFraction, 0);
  assert.equal(stats.lagSeconds, 0);
  assert.equal(monitor.admit(), "admit");
  assert.deepEqual(changes, [true, false]);
});

// ---- a subscription being shed ----

const VP8_KEY = Uint8Array.from([0x10, 0x10, 0, 0, 1, 2, 3]);
const VP8_DELTA = Uint8Array.from([0x10, 0x11, 0, 0, 4, 5, 6]);
const SECOND = 1000;

function subscribe(
  track: Track,
  subscriberId: string,
  shedding: VideoShedding,
) {
  const output = new FakeOutput();
  const consumer = new Consumer(track, subscriberId, shedding);
  track.addConsumer(consumer);
  consumer.activate(output, 0x1234, 97);
  return { consumer, output };
}

const receiverReport = (ssrc: number, fractionLost: number) =>
  new RtcpRrPacket({
    ssrc: 1,
    reports: [new RtcpReceiverInfo({ ssrc, fractionLost })],
  });

Deno.test("a paused video subscription resumes at a keyframe with no gap in its sequence numbers", () => {
  const shedding = new VideoShedding();
  const upstream = new FakeUpstream();
  const track = new Track(trackDescription("video"), "alice", upstream);
  const { output } = subscribe(track, "bob", shedding);
  track.receive(100, 0, true, 96, VP8_KEY, 0);
  track.receive(101, 3000, true, 96, VP8_DELTA, 33);
  assert.deepEqual(output.seqs, [100, 101]);

  shedding.shed(1);
  track.receive(102, 6000, true, 96, VP8_DELTA, 66);
  track.receive(103, 9000, true, 96, VP8_KEY, 99);
  assert.deepEqual(output.seqs, [100, 101], "nothing while paused");
  assert.equal(shedding.packetsShed, 2);
  const requestsBefore = upstream.keyframeRequests;

  shedding.shed(0);
  track.receive(104, 12000, true, 96, VP8_DELTA, 10 * SECOND);
  assert.equal(
    upstream.keyframeRequests,
    requestsBefore + 1,
    "resuming asks for a keyframe",
  );
  track.receive(105, 15000, true, 96, VP8_DELTA, 10 * SECOND + 33);
  assert.deepEqual(output.seqs, [100, 101], "no delta frame before it");
  track.receive(106, 18000, true, 96, VP8_KEY, 10 * SECOND + 66);
  track.receive(107, 21000, true, 96, VP8_DELTA, 10 * SECOND + 99);
  assert.deepEqual(
    output.seqs,
    [100, 101, 102, 103],
    "the stream continues where it stopped, so there is nothing to NACK",
  );
  track.close();
});

Deno.test("audio is never paused, and neither is a protected subscriber's video", () => {
  const shedding = new VideoShedding();
  shedding.protect("trunk");
  const audio = new Track(
    trackDescription("audio"),
    "alice",
    new FakeUpstream(),
  );
  const video = new Track(
    trackDescription("video"),
    "alice",
    new FakeUpstream(),
  );
  const listener = subscribe(audio, "bob", shedding);
  const trunk = subscribe(video, "trunk", shedding);
  shedding.shed(1);
  audio.receive(1, 960, false, 111, Uint8Array.of(1), 0);
  video.receive(1, 0, true, 96, VP8_KEY, 0);
  assert.deepEqual(listener.output.seqs, [1]);
  assert.deepEqual(trunk.output.seqs, [1]);
  assert.equal(shedding.packetsShed, 0);
  audio.close();
  video.close();
});

Deno.test("the subscriber that reports loss is shed before one that does not", () => {
  const shedding = new VideoShedding();
  const track = new Track(
    trackDescription("video"),
    "alice",
    new FakeUpstream(),
  );
  const lossy = subscribe(track, "lossy", shedding);
  const fine = subscribe(track, "fine", shedding);
  // Tie-breaks differ by subscriber; the loss must outweigh them.
  lossy.consumer.handleRtcp(receiverReport(0x1234, 26), 0); // about 10%
  fine.consumer.handleRtcp(receiverReport(0x1234, 0), 0);
  shedding.shed(1 / SHED_STEPS);
  track.receive(1, 0, true, 96, VP8_KEY, 0);
  assert.deepEqual(lossy.output.seqs, [], "the lossy one is paused");
  assert.deepEqual(fine.output.seqs, [1]);
  // A paused stream reports no loss; it must not jump the queue back.
  lossy.consumer.handleRtcp(receiverReport(0x1234, 0), SECOND);
  shedding.shed(1 / SHED_STEPS);
  track.receive(2, 3000, true, 96, VP8_DELTA, 33);
  assert.deepEqual(lossy.output.seqs, []);
  assert.deepEqual(fine.output.seqs, [1, 2]);
  track.close();
  shedding.shed(1);
  assert.equal(shedding.paused, 0, "closed subscriptions leave the ranks");
});

// ---- the signalling side ----

class FakeChannel implements SignalChannel {
  open = true;
  sent: Uint8Array[] = [];
  closed: { code: number; reason: string } | undefined;
  onmessage: ((data: Uint8Array | string) => void) | null = null;
  onclose: ((code: number, reason: string) => void) | null = null;
  send(data: Uint8Array) {
    this.sent.push(data);
  }
  close(code: number, reason: string) {
    this.open = false;
    this.closed = { code, reason };
  }
}

Deno.test("while overloaded a participant's hello is refused with 4012 and a trunk's is not", async () => {
  const router = new Router();
  const context = {
    router,
    trunks: new TrunkRouting(router, "0123456789abcdef"),
    nodeId: "0123456789abcdef",
    site: "home",
    version: "test",
    network: { iceAddresses: ["127.0.0.1"], iceServers: [] },
    publishBitrateBps: 3_000_000,
    admission: { admit: (): Admission => "refuse" },
  };
  const hello = (kind: PeerKind, nodeId?: string) =>
    encodeEnvelope({
      hello: { protocolVersion: PROTOCOL_VERSION, kind, name: "x", nodeId },
    });
  const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

  for (const kind of [PeerKind.Browser, PeerKind.Client]) {
    const channel = new FakeChannel();
    new SignallingSession(channel, context, { remote: "test" });
    channel.onmessage!(hello(kind));
    await settle();
    assert.deepEqual(channel.closed, {
      code: CloseCode.atCapacity,
      reason: AT_CAPACITY,
    });
    assert.equal(router.peers.size, 0);
  }

  const channel = new FakeChannel();
  const trunk = new SignallingSession(channel, context, { remote: "test" });
  channel.onmessage!(hello(PeerKind.Node, "fedcba9876543210"));
  await settle();
  assert.equal(channel.closed, undefined);
  assert.ok(decodeEnvelope(channel.sent[0]).hello, "the node is greeted");
  assert.ok(router.peers.has(trunk.id));
  trunk.close(CloseCode.normal, "test done");
});

// ---- configuration ----

Deno.test("--max-pending-sends is read from flag, environment and file, and checked", async () => {
  const load = (args: string[], env: Record<string, string> = {}) =>
    loadConfig(["--data-dir", "/tmp/umbrella-unused", ...args], env);
  assert.equal(
    (await load([])).maxPendingSends,
    DEFAULT_MAX_PENDING_SENDS,
  );
  assert.equal(
    (await load([], { UMBRELLA_MAX_PENDING_SENDS: "64" })).maxPendingSends,
    64,
  );
  assert.equal(
    (await load(["--max-pending-sends", "1"], {
      UMBRELLA_MAX_PENDING_SENDS: "64",
    })).maxPendingSends,
    1,
    "the flag wins",
  );
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/config.json`;
    await Deno.writeTextFile(file, JSON.stringify({ maxPendingSends: 500 }));
    assert.equal((await load(["--config", file])).maxPendingSends, 500);
    await Deno.writeTextFile(file, JSON.stringify({ maxPendingSends: 2.5 }));
    await assert.rejects(
      load(["--config", file]),
      new ConfigError(
        'config file key "maxPendingSends": 2.5 is not a number of datagrams (expected an integer from 1 to 1000000)',
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  for (const value of ["0", "-5", "many", "1000001"]) {
    await assert.rejects(
      load([], { UMBRELLA_MAX_PENDING_SENDS: value }),
      new ConfigError(
        `UMBRELLA_MAX_PENDING_SENDS: "${value}" is not a number of datagrams (expected an integer from 1 to 1000000)`,
      ),
    );
  }
});

// ---- werift's UDP sends, on loopback ----

/** A patched werift UDP transport and a loopback receiver that records each
 * datagram's second byte; without `native` it sends through node:dgram, as
 * it does without FFI. */
async function loopbackTransport(native: boolean) {
  applyWeriftPatches();
  const receiver = dgram.createSocket("udp4");
  await new Promise<void>((resolve) =>
    receiver.bind(0, "127.0.0.1", () => resolve())
  );
  const marks: number[] = [];
  receiver.on("message", (data: Buffer) => marks.push(data[1]));
  const transport = await UdpTransport.init(
    "udp4",
    {
      interfaceAddresses: { udp4: "127.0.0.1" },
    } as Parameters<typeof UdpTransport.init>[1],
  );
  const patched = transport as unknown as { nativeSocket?: { close(): void } };
  if (!native) {
    patched.nativeSocket?.close();
    patched.nativeSocket = undefined;
  }
  return {
    transport,
    patched,
    marks,
    to: ["127.0.0.1", receiver.address().port] as [string, number],
    async close() {
      receiver.close();
      if (!transport.closed) await transport.close();
    },
  };
}

/** An RTP-looking datagram (first byte 0x80) marked with `mark`. */
function media(mark = 0): Buffer {
  const data = Buffer.alloc(100, 0x80);
  data[1] = mark;
  return data;
}

Deno.test("werift's UDP sends go straight to the kernel where FFI allows: nothing waits", async () => {
  assert.equal(applyWeriftPatches().udpFallbackReason, undefined);
  const { transport, patched, marks, to, close } = await loopbackTransport(
    true,
  );
  const pending = sendQueue.pending;
  try {
    for (let i = 0; i < 20; i++) await transport.send(media(i), to);
    assert.equal(sendQueue.pending, pending, "no send waits for the loop");
    await waitFor("the datagrams to arrive", () => marks.length === 20, 5000);
    assert.deepEqual(marks, [...Array(20).keys()], "in order, unchanged");
    assert.ok(patched.nativeSocket, "sends went through a native sender");
    await transport.close();
    assert.equal(patched.nativeSocket, undefined, "closed with its socket");
  } finally {
    await close();
  }
});

Deno.test("on node:dgram, UDP sends are counted until sent, dropped beyond the cap, and released on close", async () => {
  const { transport, marks, to, close } = await loopbackTransport(false);
  const limit = sendQueue.limit;
  const dropped = sendQueue.dropped;
  const pending = sendQueue.pending;
  try {
    sendQueue.limit = pending + 5;
    const stun = Buffer.alloc(20, 0);
    // Sends complete on a later turn of the event loop, so a burst in one
    // turn queues up.
    for (let i = 0; i < 12; i++) await transport.send(media(), to);
    assert.equal(sendQueue.pending, pending + 5);
    assert.equal(sendQueue.dropped, dropped + 7);
    await transport.send(stun, to);
    assert.equal(sendQueue.dropped, dropped + 7, "upkeep is never dropped");
    await waitFor(
      "the queued datagrams to be sent and received",
      () => sendQueue.pending === pending && marks.length === 6,
      5000,
    );
    for (let i = 0; i < 3; i++) await transport.send(media(), to);
    assert.equal(sendQueue.pending, pending + 3);
    await transport.close();
    assert.equal(
      sendQueue.pending,
      pending,
      "a closed socket's unsent datagrams leave the count",
    );
  } finally {
    sendQueue.limit = limit;
    await close();
  }
});

Deno.test("on node:dgram, a burst from one turn leaves in order", async () => {
  const { transport, marks, to, close } = await loopbackTransport(false);
  try {
    // Deno 2.9's node:dgram alone would deliver these 9, 8, ..., 0.
    for (let i = 0; i < 10; i++) transport.send(media(i), to);
    await waitFor("the burst", () => marks.length === 10, 5000);
    assert.deepEqual(marks, [...Array(10).keys()]);
  } finally {
    await close();
  }
});

// ---- a real server at capacity ----

Deno.test("a node watches its load only while a session is open", async () => {
  const server = await startServer();
  try {
    assert.equal(await metric(server, "umbrella_overload_watching"), 0);
    const client = await WeriftClient.connect(server.wsUrl, "someone");
    assert.equal(await metric(server, "umbrella_overload_watching"), 1);
    await client.close();
    let watching = 1;
    for (let polls = 0; polls < 50 && watching !== 0; polls++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      watching = await metric(server, "umbrella_overload_watching");
    }
    assert.equal(watching, 0, "still watching after the last session left");
  } finally {
    await server.stop();
  }
});

Deno.test("at capacity (node:dgram sends) a new participant is refused with the reason while an existing one keeps receiving", async () => {
  // Without FFI, sends queue in node:dgram; with room for one datagram,
  // any fan-out is pressure: the server is overloaded as soon as media
  // flows, and the cap bounds the queue.
  const server = await startServer({
    denoFlags: ["--deny-ffi"],
    env: { UMBRELLA_MAX_PENDING_SENDS: "1" },
  });
  const clients: WeriftClient[] = [];
  try {
    const publisher = await WeriftClient.connect(server.wsUrl, "publisher");
    clients.push(publisher);
    const viewer = await WeriftClient.connect(server.wsUrl, "viewer");
    clients.push(viewer);
    await publisher.publish({ audio: true, video: "vp8", tag: 0 });
    const audio = () =>
      [...viewer.received.values()].find((t) => t.info.kind === MediaKind.Audio)
        ?.packets ?? 0;
    await waitFor("the viewer to receive audio", () => audio() > 10, 20_000);
    for (
      let polls = 0;
      polls < 100 && await metric(server, "umbrella_overloaded") !== 1;
      polls++
    ) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(await metric(server, "umbrella_overloaded"), 1);
    await assert.rejects(
      WeriftClient.connect(server.wsUrl, "late"),
      new Error(
        `closed before hello: ${CloseCode.atCapacity} ${AT_CAPACITY}`,
      ),
    );

    const heard = audio();
    await waitFor(
      "the existing viewer to keep receiving audio",
      () => audio() >= heard + 25,
      20_000,
    );
    assert.ok(viewer.socketOpen && publisher.socketOpen);
    assert.ok(await metric(server, "umbrella_joins_refused_total") >= 1);
    assert.equal(await metric(server, "umbrella_pending_sends_limit"), 1);
    assert.ok(
      await metric(server, "umbrella_pending_sends_max") <= 1,
      "the queue never held more than its cap",
    );
    assert.ok(
      server.logs.some((entry) =>
        entry.level === "warn" &&
        entry.msg === "refusing new participants: this server is overloaded"
      ),
    );
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
  }
});
