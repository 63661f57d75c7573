// The SFU end to end: a real Umbrella process on loopback and real werift
// participants speaking the real protocol over a real WebSocket.
import assert from "node:assert/strict";
import { metric, startServer } from "./support/server.ts";
import { waitFor, WeriftClient } from "./support/werift_client.ts";
import { openFiles } from "./support/leak_scenarios.ts";
import {
  type Envelope,
  MediaKind,
  PeerKind,
  PROTOCOL_VERSION,
} from "../proto/messages.ts";
import { decodeEnvelope, encodeEnvelope } from "../proto/codec.ts";

const tracksFrom = (client: WeriftClient, participantId: string) =>
  [...client.received.values()].filter((t) =>
    t.info.participantId === participantId
  );

Deno.test("three participants each receive exactly the other two participants' four tracks, unchanged", async () => {
  const server = await startServer();
  const clients: WeriftClient[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const client = await WeriftClient.connect(server.wsUrl, `p${i}`);
      clients.push(client);
      await client.publish({ audio: true, video: "vp8", tag: i * 16 });
    }
    await waitFor(
      "every participant to receive 4 tracks with media",
      () =>
        clients.every((c) =>
          c.received.size === 4 &&
          [...c.received.values()].every((t) => t.packets >= 20)
        ),
      20_000,
      () => clients.map((c) => c.describe()).join("\n"),
    );
    for (const [i, client] of clients.entries()) {
      assert.equal(
        client.announced.size,
        4,
        `${client.name} is offered exactly 4 tracks`,
      );
      const others = clients.filter((c) => c !== client);
      for (const other of others) {
        const tracks = tracksFrom(client, other.peerId);
        assert.equal(
          tracks.length,
          2,
          `${client.name} receives 2 tracks of ${other.name}`,
        );
        assert.deepEqual(tracks.map((t) => t.info.kind).sort(), [
          MediaKind.Audio,
          MediaKind.Video,
        ]);
      }
      assert.equal(
        tracksFrom(client, client.peerId).length,
        0,
        "nothing is looped back",
      );
      const candidates = client.lastOfferSdp.match(/^a=candidate:.*$/gm) ?? [];
      assert.ok(candidates.length > 0);
      for (const line of candidates) {
        assert.match(
          line,
          / 127\.0\.0\.1 \d+ typ host/,
          "media stays on the pinned address",
        );
      }
      for (const track of client.received.values()) {
        assert.ok(
          track.intact,
          `payload bytes of ${track.info.id} arrive unchanged`,
        );
        const publisher = clients.findIndex((c) =>
          c.peerId === track.info.participantId
        );
        const expectedTag = publisher * 16 +
          (track.info.kind === MediaKind.Video ? 1 : 0);
        assert.deepEqual(
          [...track.tags],
          [expectedTag],
          "each track carries its publisher's media only",
        );
        assert.notEqual(publisher, i);
      }
    }
    assert.equal(await metric(server, "umbrella_tracks"), 6);
    assert.equal(await metric(server, "umbrella_subscriptions"), 12);
    assert.ok(await metric(server, "umbrella_packets_out_total") > 0);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
  }
});

Deno.test("a participant who leaves has its tracks withdrawn from the others", async () => {
  const server = await startServer();
  const [a, b] = [
    await WeriftClient.connect(server.wsUrl, "a"),
    await WeriftClient.connect(server.wsUrl, "b"),
  ];
  try {
    await a.publish({ audio: true, video: "vp8", tag: 0 });
    await waitFor(
      "b to receive a's media",
      () =>
        b.received.size === 2 &&
        [...b.received.values()].every((t) => t.packets > 5),
      undefined,
      () => b.describe(),
    );
    const ids = [...b.announced.keys()];
    await a.close("leaving");
    await waitFor(
      "b to be told a's tracks ended",
      () => ids.every((id) => b.withdrawn.has(id)),
      5000,
    );
    assert.equal(b.announced.size, 0);
    const status = await (await fetch(`${server.origin}/api/status`)).json();
    assert.equal(status.tracks.length, 0);
    assert.deepEqual(status.peers.map((p: { name: string }) => p.name), ["b"]);
  } finally {
    await Promise.all([a.close(), b.close()]);
    await server.stop();
  }
});

Deno.test("participants coming and going leave no peers, tracks or sockets behind", async () => {
  const server = await startServer({ logLevel: "info" });
  const round = async (n: number) => {
    const clients: WeriftClient[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        const client = await WeriftClient.connect(server.wsUrl, `r${n}-${i}`);
        clients.push(client);
        if (i < 2) await client.publish({ audio: true, tag: i * 16 });
      }
      await waitFor(
        "every participant to receive the others' audio",
        () =>
          clients.every((c, i) =>
            c.received.size === (i < 2 ? 1 : 2) &&
            [...c.received.values()].every((t) => t.packets > 5)
          ),
        undefined,
        () => clients.map((c) => c.describe()).join("\n"),
      );
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
    // Leaving is seen at once, but a lost close may take the server's
    // silence watchdog: poll for up to 10 s.
    const statusNow = async () =>
      await (await fetch(`${server.origin}/api/status`)).json();
    const deadline = performance.now() + 10_000;
    let status = await statusNow();
    while (
      (status.peers.length > 0 || status.tracks.length > 0) &&
      performance.now() < deadline
    ) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      status = await statusNow();
    }
    assert.deepEqual(
      [status.peers, status.tracks],
      [[], []],
      "the server forgot everyone",
    );
  };
  try {
    // The first round settles what stays open for good (listeners, the
    // runtime's own descriptors); each later one must give back all it took.
    await round(0);
    const settled = openFiles(server.pid);
    for (let n = 1; n <= 3; n++) await round(n);
    // A closed socket's descriptor may outlive its close event briefly.
    await waitFor(
      `open file descriptors back to ${settled} after 3 more rounds`,
      () => openFiles(server.pid) <= settled,
      5000,
      () => `${openFiles(server.pid)} open`,
    );
  } finally {
    await server.stop();
  }
});

Deno.test("a track unsubscribed while an offer is outstanding is never sent", async () => {
  const server = await startServer();
  const a = await WeriftClient.connect(server.wsUrl, "a");
  const b = await WeriftClient.connect(server.wsUrl, "b", {
    autoSubscribe: false,
  });
  try {
    await a.publish({ audio: true, video: "vp8", tag: 0 });
    await waitFor("b to hear of a's tracks", () => b.announced.size === 2);
    const [audio, video] = [MediaKind.Audio, MediaKind.Video].map((kind) =>
      [...b.announced.values()].find((t) => t.kind === kind)!.id!
    );
    // The first subscription starts an offer; the second arrives while it
    // is outstanding, and is taken back before the answer settles it.
    b.send({ subscribe: { trackIds: [audio] } });
    b.send({ subscribe: { trackIds: [video] } });
    b.send({ unsubscribe: { trackIds: [video] } });
    await waitFor(
      "b to receive audio",
      () => (b.received.get(audio)?.packets ?? 0) > 10,
      undefined,
      () => b.describe(),
    );
    // Room for a late renegotiation to (wrongly) add the video.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(b.received.has(video), false);
    assert.equal(await metric(server, "umbrella_subscriptions"), 1);
  } finally {
    await Promise.all([a.close(), b.close()]);
    await server.stop();
  }
});

Deno.test("a participant whose ICE dies is cleaned up within 10 s and the others are told", async () => {
  const server = await startServer();
  const [a, b] = [
    await WeriftClient.connect(server.wsUrl, "a"),
    await WeriftClient.connect(server.wsUrl, "b"),
  ];
  try {
    await a.publish({ audio: true, video: "vp8", tag: 0 });
    await b.publish({ audio: true, tag: 16 });
    await waitFor(
      "media both ways",
      () => a.received.size === 1 && b.received.size === 2,
      undefined,
      () => `${a.describe()}\n${b.describe()}`,
    );
    const ids = [...b.announced.keys()];
    const cutAt = performance.now();
    await a.killIce();
    await waitFor(
      "a's tracks to be withdrawn",
      () => ids.every((id) => b.withdrawn.has(id)),
      15_000,
    );
    const elapsed = performance.now() - cutAt;
    assert.ok(
      elapsed < 12_000,
      `cleaned up ${Math.round(elapsed)} ms after the cut`,
    );
    await waitFor(
      "a's signalling to be closed",
      () => a.closed !== undefined,
      5000,
    );
    assert.equal(a.closed!.code, 4010);
    assert.match(a.closed!.reason, /nothing received|failed/);
    assert.ok(b.socketOpen, "b stays connected");
  } finally {
    await Promise.all([a.close(), b.close()]);
    await server.stop();
  }
});

Deno.test("hostile frames close only their own connection, with a reason, while media flows on", async () => {
  const server = await startServer();
  const publisher = await WeriftClient.connect(server.wsUrl, "publisher");
  const watcher = await WeriftClient.connect(server.wsUrl, "watcher");
  try {
    await publisher.publish({ audio: true, video: "vp8", tag: 0 });
    await waitFor(
      "watcher receives media",
      () => watcher.received.size === 2,
      undefined,
      () => watcher.describe(),
    );
    const sections = (n: number) =>
      "v=0\r\n" + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n".repeat(n);
    const ids = (prefix: string, n: number) =>
      Array.from({ length: n }, (_, i) => `${prefix}${i}`);
    const cases: [
      string,
      Uint8Array | string | Uint8Array[],
      number,
      RegExp,
    ][] = [
      [
        "garbage bytes",
        Uint8Array.from([0xff, 0xff, 0xff, 0x0f, 0x01]),
        4003,
        /malformed/,
      ],
      ["an empty envelope", new Uint8Array(0), 4003, /empty envelope/],
      ["a text frame", "hello?", 1003, /binary/],
      ["an oversized frame", new Uint8Array(300 * 1024), 1009, /exceeds/],
      [
        "an answer with no offer",
        encodeEnvelope({ answer: { sdp: "v=0\r\n" } }),
        4003,
        /no offer/,
      ],
      [
        "an offer binding one track id twice",
        encodeEnvelope({
          offer: {
            sdp: sections(2),
            tracks: [
              { mid: "0", track: { id: "same" } },
              { mid: "1", track: { id: "same" } },
            ],
          },
        }),
        4003,
        /track id same is repeated/,
      ],
      [
        "an offer with too many media sections",
        encodeEnvelope({ offer: { sdp: sections(81), tracks: [] } }),
        4003,
        /at most 80 media sections/,
      ],
      [
        "a candidate that does not say its connection",
        encodeEnvelope({
          candidate: { candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host" },
        }),
        4003,
        /which connection/,
      ],
      [
        "an overlong track id",
        encodeEnvelope({ subscribe: { trackIds: ["x".repeat(300)] } }),
        4003,
        /at most 256 characters/,
      ],
      [
        "subscriptions beyond the limit",
        [
          encodeEnvelope({ subscribe: { trackIds: ids("a", 256) } }),
          encodeEnvelope({ subscribe: { trackIds: ids("b", 1) } }),
        ],
        4003,
        /at most 256 subscriptions/,
      ],
      [
        "a flood of messages",
        Array.from(
          { length: 1500 },
          (_, nonce) => encodeEnvelope({ ping: { nonce } }),
        ),
        4013,
        /messages a second/,
      ],
    ];
    for (const [what, frame, code, reason] of cases) {
      // It subscribes to nothing, so no message of its own races the close.
      const attacker = await WeriftClient.connect(server.wsUrl, "attacker", {
        autoSubscribe: false,
      });
      for (const each of Array.isArray(frame) ? frame : [frame]) {
        attacker.sendRaw(each);
      }
      await waitFor(
        `the server to close on ${what}`,
        () => attacker.closed !== undefined,
        5000,
      );
      if ((code === 1009 || code === 4013) && attacker.closed!.code !== code) {
        // While a client is still busy sending a large frame or a flood, the
        // TCP close can overtake the close frame on its side; the server's
        // log still holds the reason it gave.
        assert.ok(
          server.logs.some((l) =>
            reason.test(String(l.error ?? l.reason ?? ""))
          ),
          `${what}: closed with ${attacker.closed!.code} and no reason logged`,
        );
        continue;
      }
      assert.equal(attacker.closed!.code, code, what);
      assert.match(attacker.closed!.reason, reason, what);
    }
    const before = [...watcher.received.values()].map((t) => t.packets);
    await waitFor(
      "media to keep flowing to the watcher",
      () =>
        [...watcher.received.values()].every((t, i) =>
          t.packets > before[i] + 10
        ),
    );
    assert.ok(publisher.socketOpen && watcher.socketOpen);
    const health = await (await fetch(`${server.origin}/healthz`)).json();
    assert.equal(health.ok, true);
  } finally {
    await Promise.all([publisher.close(), watcher.close()]);
    await server.stop();
  }
});

Deno.test("an answer for other media sections than were offered is refused as such", async () => {
  const server = await startServer();
  const publisher = await WeriftClient.connect(server.wsUrl, "publisher");
  // A bare socket: it answers the server's offer with what it likes.
  const socket = new WebSocket(server.wsUrl);
  socket.binaryType = "arraybuffer";
  const messages: Envelope[] = [];
  let closed: CloseEvent | undefined;
  socket.onmessage = (event) =>
    messages.push(decodeEnvelope(new Uint8Array(event.data)));
  socket.onclose = (event) => closed = event;
  try {
    await new Promise((resolve) => socket.onopen = resolve);
    socket.send(encodeEnvelope({
      hello: {
        protocolVersion: PROTOCOL_VERSION,
        kind: PeerKind.Client,
        name: "answers-wrongly",
      },
    }));
    await publisher.publish({ audio: true, tag: 0 });
    await waitFor(
      "the publisher's track to be announced",
      () => messages.some((m) => m.announce?.tracks?.length),
    );
    const trackId = messages.find((m) => m.announce)!.announce!.tracks![0].id!;
    socket.send(encodeEnvelope({ subscribe: { trackIds: [trackId] } }));
    await waitFor("an offer", () => messages.some((m) => m.offer));
    socket.send(encodeEnvelope({
      answer: { sdp: "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n" },
    }));
    await waitFor("the server to close", () => closed !== undefined, 5000);
    assert.equal(closed!.code, 4003);
    assert.match(closed!.reason, /media sections \(none\) are not the offer's/);
  } finally {
    socket.close();
    await publisher.close();
    await server.stop();
  }
});

Deno.test("signalling refuses a wrong protocol version or a missing hello with a clear reason", async () => {
  const server = await startServer();
  try {
    for (
      const [message, code, reason] of [
        [
          { hello: { protocolVersion: 9, name: "future" } },
          4002,
          /unsupported protocol version 9; this server speaks 1/,
        ],
        [{ ping: { nonce: 1 } }, 4001, /first message must be hello/],
      ] as const
    ) {
      const socket = new WebSocket(server.wsUrl);
      const closed = Promise.withResolvers<CloseEvent>();
      socket.onopen = () => socket.send(encodeEnvelope(message));
      socket.onclose = closed.resolve;
      const timer = setTimeout(
        () => closed.reject(new Error("not closed within 5 s")),
        5000,
      );
      const event = await closed.promise;
      clearTimeout(timer);
      assert.equal(event.code, code);
      assert.match(event.reason, reason);
    }
  } finally {
    await server.stop();
  }
});

Deno.test("H.264 is forwarded as H.264, and a subscriber that cannot decode it gets a notice", async () => {
  const server = await startServer();
  const publisher = await WeriftClient.connect(server.wsUrl, "camera-person");
  const capable = await WeriftClient.connect(server.wsUrl, "capable");
  const vp8Only = await WeriftClient.connect(server.wsUrl, "vp8-only", {
    receiveVideoCodecs: ["video/VP8"],
  });
  try {
    await publisher.publish({ video: "h264", tag: 0 });
    await waitFor(
      "the capable subscriber to receive H.264",
      () => [...capable.received.values()].some((t) => t.packets > 10),
    );
    const track = [...capable.received.values()][0];
    assert.equal(track.info.mimeType, "video/H264");
    assert.ok(track.intact);
    await waitFor(
      "the VP8-only subscriber to be told",
      () => vp8Only.notices.length > 0,
    );
    assert.equal(vp8Only.notices[0].code, "codec-unsupported");
    assert.match(
      vp8Only.notices[0].text!,
      /cannot receive H\.264 video from camera-person/,
    );
    assert.equal(vp8Only.received.size, 0);
  } finally {
    await Promise.all([publisher.close(), capable.close(), vp8Only.close()]);
    await server.stop();
  }
});

Deno.test("each forwarded stream gets a sender report about once a second, counting what was sent", async () => {
  const server = await startServer();
  const publisher = await WeriftClient.connect(server.wsUrl, "speaker");
  const listener = await WeriftClient.connect(server.wsUrl, "listener");
  try {
    await publisher.publish({ audio: true, video: "vp8", tag: 30 });
    const tracks = () => [...listener.received.values()];
    await waitFor(
      "a first report on both streams",
      () => tracks().length === 2 && tracks().every((t) => t.senderReports > 0),
      15_000,
    );
    const before = tracks().map((t) => t.senderReports);
    const startedMs = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 4000));
    const seconds = (performance.now() - startedMs) / 1000;
    tracks().forEach((track, i) => {
      const reports = track.senderReports - before[i];
      // Once a second: a late timer may skip one, and none comes twice.
      assert.ok(
        reports >= seconds - 2 && reports <= seconds + 1,
        `${reports} reports in ${seconds.toFixed(1)} s on ${
          MediaKind[track.info.kind!]
        }`,
      );
      // What the SFU sent up to the report, which the listener received
      // (but for the first few, before it knew the track).
      assert.ok(
        track.reportedPackets > track.packets / 2 &&
          track.reportedPackets <= track.packets + 10,
        `${track.reportedPackets} reported, ${track.packets} received`,
      );
    });
  } finally {
    await Promise.all([publisher.close(), listener.close()]);
    await server.stop();
  }
});

Deno.test("losses are repaired: publisher-leg losses NACKed upstream once, subscriber NACKs answered from the cache", async () => {
  const server = await startServer();
  const publisher = await WeriftClient.connect(server.wsUrl, "lossy-uplink", {
    outboundLoss: 0.1,
  });
  const subscriber = await WeriftClient.connect(
    server.wsUrl,
    "lossy-downlink",
    { inboundLoss: 0.1 },
  );
  try {
    await publisher.publish({ video: "vp8", tag: 0 });
    await waitFor(
      "some video to arrive",
      () => [...subscriber.received.values()].some((t) => t.packets > 150),
      20_000,
    );
    const sent = publisher.sent.get(1)!;
    const nackedUpstream = await metric(
      server,
      "umbrella_nacks_upstream_total",
      'kind="video"',
    );
    const retransmitted = await metric(
      server,
      "umbrella_retransmissions_total",
      'kind="video"',
    );
    assert.ok(
      nackedUpstream > 0,
      "the SFU NACKs what the publisher's leg lost",
    );
    // About 10% of packets are lost on the uplink; once per packet means the
    // NACKed count stays near that, never a multiple of it.
    assert.ok(
      nackedUpstream < sent * 0.25,
      `NACKed ${nackedUpstream} of ${sent} sent`,
    );
    assert.ok(
      retransmitted > 0,
      "the SFU answers the subscriber's NACKs itself",
    );
    assert.ok(
      retransmitted < sent * 0.5,
      `retransmitted ${retransmitted} for ${sent} sent`,
    );
  } finally {
    await Promise.all([publisher.close(), subscriber.close()]);
    await server.stop();
  }
});

Deno.test("ICE uses only the configured port range and announces the public address", async () => {
  const server = await startServer({
    args: [
      "--min-port",
      "41000",
      "--max-port",
      "41100",
      "--public-ip",
      "203.0.113.7",
    ],
  });
  const publisher = await WeriftClient.connect(server.wsUrl, "publisher");
  const watcher = await WeriftClient.connect(server.wsUrl, "watcher");
  try {
    await publisher.publish({ audio: true, tag: 0 });
    await waitFor(
      "the watcher to receive audio",
      () => [...watcher.received.values()].some((t) => t.packets > 5),
    );
    const candidates = watcher.lastOfferSdp.match(/^a=candidate:.*$/gm) ?? [];
    const hosts = candidates.filter((l) => l.includes("typ host"));
    assert.ok(hosts.length > 0);
    for (const line of hosts) {
      const port = Number(line.split(" ")[5]);
      assert.ok(port >= 41000 && port <= 41100, `port ${port} is in the range`);
    }
    assert.ok(
      candidates.some((l) =>
        / 203\.0\.113\.7 \d+ typ srflx raddr 127\.0\.0\.1 /.test(l)
      ),
      "public address announced",
    );
  } finally {
    await Promise.all([publisher.close(), watcher.close()]);
    await server.stop();
  }
});

Deno.test("publishers are told the bitrate they may use: --max-publish-bitrate, 3 Mbit/s by default", async () => {
  for (
    const [args, expected] of [[[], 3_000_000n], [[
      "--max-publish-bitrate",
      "800",
    ], 800_000n]] as const
  ) {
    const server = await startServer({ args: [...args] });
    const alice = await WeriftClient.connect(server.wsUrl, "alice");
    try {
      await alice.publish({ audio: true, video: "vp8", tag: 0 });
      await waitFor(
        `the video sender to be told ${expected} bit/s`,
        () => alice.bitrateCaps[1] === expected,
        10_000,
        () => String(alice.bitrateCaps),
      );
    } finally {
      await alice.close();
      await server.stop();
    }
  }
});
