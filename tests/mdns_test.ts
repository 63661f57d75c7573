// mDNS: DNS message coding and reply planning as pure logic; the responder
// and resolver over real multicast inside a private network namespace (this
// file re-runs itself there with a scenario name, see the end).
import assert from "node:assert/strict";
import dgram from "node:dgram";
import {
  addressRecord,
  decodeDnsMessage,
  DNS_CLASS_IN,
  DNS_FLAG_AUTHORITATIVE,
  DNS_FLAG_RESPONSE,
  DNS_TYPE_A,
  DNS_TYPE_AAAA,
  DNS_TYPE_ANY,
  DnsFormatError,
  type DnsMessage,
  type DnsQuestion,
  type DnsRecord,
  encodeDnsMessage,
  recordAddress,
  sameDnsName,
} from "../server/dns_message.ts";
import { MdnsResponder, planMdnsReply, resolveMdns } from "../server/mdns.ts";
import { digMdns, playScenario, runScenarioInNetns } from "./support/netns.ts";

const DNS_TYPE_PTR = 12;
const DNS_CLASS_CH = 3;
const HOST = "umbrella-test.local";

function message(parts: Partial<DnsMessage>): DnsMessage {
  return {
    id: 0,
    flags: 0,
    questions: [],
    answers: [],
    authorities: [],
    additionals: [],
    ...parts,
  };
}

function question(
  name: string,
  type = DNS_TYPE_A,
  unicastResponse = false,
): DnsQuestion {
  return { name, type, class: DNS_CLASS_IN, unicastResponse };
}

function header(counts: [number, number, number, number], flags = 0) {
  return [
    0,
    0,
    flags >> 8,
    flags & 0xff,
    ...counts.flatMap((n) => [n >> 8, n]),
  ];
}

function expectFormatError(packet: number[] | Uint8Array, pattern?: RegExp) {
  assert.throws(
    () => decodeDnsMessage(Uint8Array.from(packet)),
    (error: unknown) =>
      error instanceof DnsFormatError &&
      (pattern === undefined || pattern.test(error.message)),
  );
}

// Deterministic pseudo-random bytes (mulberry32), so a failing fuzz case
// is reproducible.
function randomSource(seed: number) {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SAMPLE_RESPONSE = encodeDnsMessage(message({
  flags: DNS_FLAG_RESPONSE | DNS_FLAG_AUTHORITATIVE,
  questions: [question(HOST, DNS_TYPE_ANY, true)],
  answers: [
    addressRecord(HOST, "192.0.2.7", 120, true),
    addressRecord(HOST, "2001:db8::7", 120, true),
  ],
  additionals: [addressRecord("other.local", "10.0.0.1", 10, false)],
}));

/** Packets no well-behaved sender makes: each must be rejected, never crash. */
function hostilePackets(): Uint8Array[] {
  const packets: number[][] = [
    [],
    [0, 1, 2],
    header([0, 0, 0, 0]).slice(0, 11),
    // Counts promising far more than the packet holds.
    header([0xffff, 0xffff, 0xffff, 0xffff]),
    // A name pointing at itself, forwards, and a loop through two names.
    [...header([1, 0, 0, 0]), 0xc0, 12, 0, 1, 0, 1],
    [...header([1, 0, 0, 0]), 0xc0, 20, 0, 1, 0, 1, 0, 0, 1, 97, 0],
    [
      ...header([2, 0, 0, 0]),
      ...[1, 97, 0xc0, 22, 0, 1, 0, 1],
      ...[1, 98, 0xc0, 12, 0, 1, 0, 1],
    ],
    // Reserved label types 0x40 and 0x80.
    [...header([1, 0, 0, 0]), 0x41, 97, 0, 0, 1, 0, 1],
    [...header([1, 0, 0, 0]), 0x81, 97, 0, 0, 1, 0, 1],
    // A label running past the end, and a name with no terminator.
    [...header([1, 0, 0, 0]), 63, 97, 97],
    [...header([1, 0, 0, 0]), 1, 97],
    // A name over 255 bytes, directly and through pointers.
    [
      ...header([1, 0, 0, 0]),
      ...Array.from({ length: 5 }, () => [63, ...new Array(63).fill(97)])
        .flat(),
      0,
      0,
      1,
      0,
      1,
    ],
    [
      ...header([2, 0, 0, 0]),
      ...Array.from({ length: 3 }, () => [63, ...new Array(63).fill(97)])
        .flat(),
      0,
      0,
      1,
      0,
      1,
      ...Array.from({ length: 2 }, () => [63, ...new Array(63).fill(98)])
        .flat(),
      0xc0,
      12,
      0,
      1,
      0,
      1,
    ],
    // A record whose data length runs past the end.
    [
      ...header([0, 1, 0, 0], DNS_FLAG_RESPONSE),
      ...[1, 97, 0, 0, 1, 0, 1, 0, 0, 0, 120, 0xff, 0xff, 1, 2, 3, 4],
    ],
  ];
  return packets.map((packet) => Uint8Array.from(packet));
}

/** Random packets and damaged copies of a real one. */
function fuzzPackets(count: number): Uint8Array[] {
  const random = randomSource(6762);
  const packets: Uint8Array[] = [];
  for (let length = 0; length < SAMPLE_RESPONSE.length; length++) {
    packets.push(SAMPLE_RESPONSE.slice(0, length));
  }
  for (let i = 0; i < count; i++) {
    if (i % 2 === 0) {
      packets.push(
        Uint8Array.from(
          { length: Math.floor(random() * 80) },
          () => Math.floor(random() * 256),
        ),
      );
    } else {
      const damaged = SAMPLE_RESPONSE.slice();
      for (let flips = 1 + Math.floor(random() * 4); flips > 0; flips--) {
        damaged[Math.floor(random() * damaged.length)] = Math.floor(
          random() * 256,
        );
      }
      packets.push(damaged);
    }
  }
  return packets;
}

Deno.test("DNS messages survive an encode/decode round trip", () => {
  const decoded = decodeDnsMessage(SAMPLE_RESPONSE);
  assert.equal(decoded.flags, DNS_FLAG_RESPONSE | DNS_FLAG_AUTHORITATIVE);
  assert.deepEqual(decoded.questions, [question(HOST, DNS_TYPE_ANY, true)]);
  assert.deepEqual(
    decoded.answers.map((record) => [
      record.name,
      record.type,
      record.class,
      record.cacheFlush,
      record.ttl,
      recordAddress(record),
    ]),
    [
      [HOST, DNS_TYPE_A, DNS_CLASS_IN, true, 120, "192.0.2.7"],
      [HOST, DNS_TYPE_AAAA, DNS_CLASS_IN, true, 120, "2001:db8::7"],
    ],
  );
  assert.equal(decoded.additionals[0].cacheFlush, false);
  assert.equal(recordAddress(decoded.additionals[0]), "10.0.0.1");
  assert.deepEqual(encodeDnsMessage(decoded), SAMPLE_RESPONSE);
});

Deno.test("DNS names: compression pointers, escaped dots, UTF-8, case", () => {
  // "b.local" at 12, then "a" + pointer to it: the usual compression.
  const packet = Uint8Array.from([
    ...header([2, 0, 0, 0]),
    ...[1, 98, 5, ...new TextEncoder().encode("local"), 0, 0, 1, 0, 1],
    ...[1, 97, 0xc0, 12, 0, 28, 0x80, 1],
  ]);
  const decoded = decodeDnsMessage(packet);
  assert.deepEqual(decoded.questions, [
    question("b.local"),
    question("a.b.local", DNS_TYPE_AAAA, true),
  ]);

  const odd = message({
    questions: [question("dotted\\.label.caf\u00e9.local")],
  });
  const oddWire = encodeDnsMessage(odd);
  assert.equal(oddWire[12], 12, "first label keeps its dot");
  assert.deepEqual(decodeDnsMessage(oddWire).questions, odd.questions);

  assert.ok(sameDnsName("Umbrella-TEST.Local", HOST));
  assert.ok(!sameDnsName("umbrella-test\\.local", HOST));
  assert.ok(!sameDnsName("\u00c9.local", "\u00e9.local"));
  assert.deepEqual(
    decodeDnsMessage(encodeDnsMessage(message({
      questions: [question("absolute.local.")],
    }))).questions[0].name,
    "absolute.local",
  );
});

Deno.test("DNS encoding rejects names DNS cannot carry", () => {
  for (
    const name of [
      `${"a".repeat(64)}.local`,
      "double..dot.local",
      ".leading.local",
      Array.from({ length: 5 }, () => "a".repeat(60)).join("."),
    ]
  ) {
    assert.throws(
      () => encodeDnsMessage(message({ questions: [question(name)] })),
      DnsFormatError,
      name,
    );
  }
});

Deno.test("address records convert every IPv6 spelling", () => {
  for (
    const [text, canonical] of [
      ["::1", "::1"],
      ["::", "::"],
      ["fe80::1", "fe80::1"],
      ["2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["1::", "1::"],
      ["::ffff:192.0.2.1", "::ffff:c000:201"],
      ["64:ff9b::10.0.0.1", "64:ff9b::a00:1"],
    ]
  ) {
    const record = addressRecord(HOST, text, 120, true);
    assert.equal(record.data.length, 16, text);
    assert.equal(recordAddress(record), canonical, text);
  }
  assert.deepEqual(
    [...addressRecord(HOST, "10.1.2.3", 120, true).data],
    [10, 1, 2, 3],
  );
  for (const bad of ["", "host", "1.2.3", "fe80::1%eth0", "::g"]) {
    assert.throws(() => addressRecord(HOST, bad, 120, true), TypeError, bad);
  }
  const shortA: DnsRecord = {
    ...addressRecord(HOST, "10.1.2.3", 120, true),
    data: Uint8Array.of(1, 2, 3),
  };
  assert.equal(recordAddress(shortA), undefined);
});

Deno.test("hostile DNS packets are rejected with DnsFormatError", () => {
  const patterns = [
    /truncated/,
    /truncated/,
    /truncated/,
    /truncated/,
    /backwards/,
    /backwards/,
    /backwards/,
    /label type 0x40/,
    /label type 0x80/,
    /truncated/,
    /truncated/,
    /longer than 255/,
    /longer than 255/,
    /truncated/,
  ];
  const packets = hostilePackets();
  assert.equal(packets.length, patterns.length);
  packets.forEach((packet, i) => expectFormatError(packet, patterns[i]));
});

Deno.test("random and damaged packets decode or fail only with DnsFormatError", () => {
  let rejected = 0;
  for (const packet of fuzzPackets(20_000)) {
    try {
      decodeDnsMessage(packet);
    } catch (error) {
      assert.ok(error instanceof DnsFormatError, String(error));
      rejected++;
    }
  }
  assert.ok(rejected > 0);
});

Deno.test("resolveMdns refuses names outside .local", async () => {
  for (const name of ["example.com", "local", "studio.localhost"]) {
    await assert.rejects(resolveMdns(name), /not a \.local name/);
  }
});

Deno.test("MdnsResponder refuses a hostname that is not one label", async () => {
  for (const hostname of ["", "studio.local", "a\\b", "x".repeat(64)]) {
    await assert.rejects(
      MdnsResponder.start({ hostname, addresses: () => [] }),
      /one DNS label/,
    );
  }
  await assert.rejects(
    MdnsResponder.start({
      hostname: "studio",
      addresses: () => [],
      interfaceAddress: "::1",
    }),
    /must be IPv4/,
  );
});

const ADDRESSES = ["192.0.2.7", "2001:db8::7"];

Deno.test("a multicast query gets a multicast answer with cache-flush and TTL 120", () => {
  const reply = planMdnsReply(
    message({ id: 99, questions: [question("Umbrella-Test.LOCAL")] }),
    5353,
    HOST,
    ADDRESSES,
  );
  assert.ok(reply);
  assert.equal(reply.unicast, false);
  assert.equal(reply.response.id, 0);
  assert.equal(
    reply.response.flags,
    DNS_FLAG_RESPONSE | DNS_FLAG_AUTHORITATIVE,
  );
  assert.deepEqual(reply.response.questions, []);
  assert.deepEqual(reply.response.answers, [
    addressRecord(HOST, "192.0.2.7", 120, true),
  ]);
  assert.deepEqual(reply.response.additionals, [
    addressRecord(HOST, "2001:db8::7", 120, true),
  ]);
});

Deno.test("a QU query gets a unicast answer; ANY and AAAA are answered", () => {
  const reply = planMdnsReply(
    message({ questions: [question(HOST, DNS_TYPE_ANY, true)] }),
    5353,
    HOST,
    ADDRESSES,
  );
  assert.equal(reply?.unicast, true);
  assert.deepEqual(reply.response.answers.map(recordAddress), ADDRESSES);
  assert.deepEqual(reply.response.additionals, []);

  const ipv6 = planMdnsReply(
    message({ questions: [question(HOST, DNS_TYPE_AAAA)] }),
    5353,
    HOST,
    ADDRESSES,
  );
  assert.deepEqual(ipv6?.response.answers.map(recordAddress), [
    "2001:db8::7",
  ]);
});

Deno.test("a legacy unicast query gets its id and question back, TTL 10, no cache-flush", () => {
  const asked = question(HOST, DNS_TYPE_A, true);
  const reply = planMdnsReply(
    message({ id: 0x1234, questions: [asked] }),
    40_000,
    HOST,
    ADDRESSES,
  );
  assert.equal(reply?.unicast, true);
  assert.equal(reply.response.id, 0x1234);
  assert.deepEqual(reply.response.questions, [
    { ...asked, unicastResponse: false },
  ]);
  assert.deepEqual(reply.response.answers, [
    addressRecord(HOST, "192.0.2.7", 10, false),
  ]);
});

Deno.test("queries for anything else go unanswered", () => {
  const unanswered: [DnsMessage, string[]][] = [
    [message({ questions: [question("other.local")] }), ADDRESSES],
    [message({ questions: [question("umbrella-test\\.local")] }), ADDRESSES],
    [message({ questions: [question(HOST, DNS_TYPE_PTR)] }), ADDRESSES],
    [
      message({
        questions: [{ ...question(HOST), class: DNS_CLASS_CH }],
      }),
      ADDRESSES,
    ],
    [
      message({ flags: DNS_FLAG_RESPONSE, questions: [question(HOST)] }),
      ADDRESSES,
    ],
    // Opcode 5 (UPDATE) is not a query.
    [message({ flags: 5 << 11, questions: [question(HOST)] }), ADDRESSES],
    [message({ questions: [question(HOST, DNS_TYPE_AAAA)] }), ["192.0.2.7"]],
    [message({ questions: [question(HOST)] }), ["not-an-ip", "fe80::1%eth0"]],
  ];
  for (const [query, addresses] of unanswered) {
    assert.equal(
      planMdnsReply(query, 5353, HOST, addresses),
      undefined,
      JSON.stringify(query),
    );
  }
});

Deno.test("known answers with half their TTL left are not repeated", () => {
  const known = (ttl: number) =>
    message({
      questions: [question(HOST, DNS_TYPE_ANY)],
      answers: [addressRecord(HOST, "192.0.2.7", ttl, false)],
    });
  assert.deepEqual(
    planMdnsReply(known(60), 5353, HOST, ADDRESSES)?.response.answers.map(
      recordAddress,
    ),
    ["2001:db8::7"],
  );
  assert.deepEqual(
    planMdnsReply(known(59), 5353, HOST, ADDRESSES)?.response.answers.map(
      recordAddress,
    ),
    ADDRESSES,
  );
  assert.equal(
    planMdnsReply(
      message({
        questions: [question(HOST)],
        answers: [addressRecord(HOST, "192.0.2.7", 120, true)],
      }),
      5353,
      HOST,
      ADDRESSES,
    ),
    undefined,
  );
});

// ---- Real multicast, inside a private network namespace -----------------

const inNamespace = (scenario: string) =>
  runScenarioInNetns(import.meta.url, scenario, {
    permissions: ["--allow-net", "--allow-sys", "--allow-run=dig"],
    timeoutMs: 60_000,
  });

Deno.test("mDNS resolves a responder's name and times out on unknown names", () =>
  inNamespace("resolve"));

Deno.test("mDNS responder speaks QM, QU, legacy unicast and announces", () =>
  inNamespace("wire"));

Deno.test("mDNS responder survives hostile packets", () =>
  inNamespace("hostile"));

Deno.test("dig (an independent DNS client) resolves the responder's name", () =>
  inNamespace("dig"));

async function openSocket(
  port: number,
  address: string,
  joinGroup: boolean,
): Promise<
  { socket: dgram.Socket; next: (awaited: string) => Promise<DnsMessage> }
> {
  const socket = dgram.createSocket({ type: "udp4", reuseAddr: true });
  const inbox: DnsMessage[] = [];
  let waiting: ((message: DnsMessage) => void) | undefined;
  socket.on("message", (packet) => {
    const decoded = decodeDnsMessage(packet);
    if (!(decoded.flags & DNS_FLAG_RESPONSE)) return;
    if (waiting) {
      waiting(decoded);
      waiting = undefined;
    } else {
      inbox.push(decoded);
    }
  });
  await new Promise<void>((resolve) => socket.bind(port, address, resolve));
  if (joinGroup) socket.addMembership("224.0.0.251", "127.0.0.1");
  socket.setMulticastInterface("127.0.0.1");
  const next = (awaited: string) => {
    const queued = inbox.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise<DnsMessage>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no ${awaited} within 3 s`)),
        3000,
      );
      waiting = (message) => {
        clearTimeout(timer);
        resolve(message);
      };
    });
  };
  return { socket, next };
}

function send(socket: dgram.Socket, packet: Uint8Array, address: string) {
  return new Promise<void>((resolve) =>
    socket.send(packet, 5353, address, () => resolve())
  );
}

function answersOf(response: DnsMessage) {
  return response.answers.map((record) => ({
    name: record.name,
    address: recordAddress(record),
    ttl: record.ttl,
    cacheFlush: record.cacheFlush,
  }));
}

const scenarios: Record<string, () => Promise<void>> = {
  async resolve() {
    const responders = await Promise.all([
      MdnsResponder.start({
        hostname: "umbrella-test",
        addresses: () => ["::1", "127.0.0.1"],
      }),
      MdnsResponder.start({
        hostname: "umbrella-v6",
        addresses: () => ["fd00::6"],
      }),
    ]);
    try {
      assert.equal(await resolveMdns(HOST), "127.0.0.1");
      assert.equal(await resolveMdns("UMBRELLA-TEST.local."), "127.0.0.1");
      assert.equal(await resolveMdns("umbrella-v6.local"), "fd00::6");
      assert.equal(
        await resolveMdns("nobody-here.local", { timeoutMs: 500 }),
        undefined,
      );
    } finally {
      responders.forEach((responder) => responder.close());
    }
    assert.equal(
      await resolveMdns(HOST, { timeoutMs: 500 }),
      undefined,
      "a closed responder no longer answers",
    );
  },

  async wire() {
    // Opened before the responder starts, to catch its announcement.
    const bystander = await openSocket(5353, "0.0.0.0", true);
    // Bound to the unicast address, so it can only receive unicast.
    const unicastQuerier = await openSocket(5353, "127.0.0.1", false);
    const legacyQuerier = await openSocket(0, "0.0.0.0", false);
    const responder = await MdnsResponder.start({
      hostname: "umbrella-test",
      // 192.0.2.7 is on no interface of the namespace, so queries arriving
      // on loopback are answered with 127.0.0.1 only.
      addresses: () => ["192.0.2.7", "127.0.0.1"],
    });
    try {
      const expected = [{
        name: HOST,
        address: "127.0.0.1",
        ttl: 120,
        cacheFlush: true,
      }];
      const announcement = await bystander.next("announcement");
      assert.equal(announcement.id, 0);
      assert.deepEqual(announcement.questions, []);
      assert.deepEqual(answersOf(announcement), expected);

      await send(
        unicastQuerier.socket,
        encodeDnsMessage(
          message({ questions: [question(HOST, DNS_TYPE_A, true)] }),
        ),
        "224.0.0.251",
      );
      assert.deepEqual(
        answersOf(await unicastQuerier.next("QU answer")),
        expected,
      );

      const legacyQuery = message({ id: 0xbeef, questions: [question(HOST)] });
      await send(
        legacyQuerier.socket,
        encodeDnsMessage(legacyQuery),
        "224.0.0.251",
      );
      const legacy = await legacyQuerier.next("legacy answer");
      assert.equal(legacy.id, 0xbeef);
      assert.deepEqual(legacy.questions, legacyQuery.questions);
      assert.deepEqual(answersOf(legacy), [{
        ...expected[0],
        ttl: 10,
        cacheFlush: false,
      }]);

      // A QM query is answered to the group. The announcement may have
      // used up this second's multicast of the record, so ask again until
      // the answer comes, as real queriers do.
      const multicastQuery = encodeDnsMessage(
        message({ questions: [question(HOST)] }),
      );
      const multicastAnswer = bystander.next("QM answer");
      const retry = setInterval(
        () => send(unicastQuerier.socket, multicastQuery, "224.0.0.251"),
        400,
      );
      try {
        await send(unicastQuerier.socket, multicastQuery, "224.0.0.251");
        assert.deepEqual(answersOf(await multicastAnswer), expected);
      } finally {
        clearInterval(retry);
      }
    } finally {
      responder.close();
      bystander.socket.close();
      unicastQuerier.socket.close();
      legacyQuerier.socket.close();
    }
  },

  async hostile() {
    const responder = await MdnsResponder.start({
      hostname: "umbrella-test",
      addresses: () => ["127.0.0.1"],
    });
    const attacker = dgram.createSocket("udp4");
    try {
      await new Promise<void>((resolve) => attacker.bind(0, resolve));
      attacker.setMulticastInterface("127.0.0.1");
      for (const packet of [...hostilePackets(), ...fuzzPackets(2000)]) {
        // Flip the response bit off so the responder decodes each one.
        if (packet.length > 2) packet[2] &= 0x7f;
        await send(attacker, packet, "127.0.0.1");
        await send(attacker, packet, "224.0.0.251");
      }
      assert.equal(await resolveMdns(HOST), "127.0.0.1");
    } finally {
      attacker.close();
      responder.close();
    }
  },

  async dig() {
    const responder = await MdnsResponder.start({
      hostname: "umbrella-test",
      addresses: () => ["127.0.0.1"],
    });
    try {
      const text = await digMdns(HOST);
      assert.match(text, /status: NOERROR/);
      assert.match(
        text,
        /^umbrella-test\.local\.\s+10\s+IN\s+A\s+127\.0\.0\.1$/m,
        text,
      );
    } finally {
      responder.close();
    }
  },
};

if (import.meta.main) await playScenario(scenarios);
