import assert from "node:assert/strict";
import {
  addedLatency,
  type CapturedLeg,
  parsePcap,
  type WirePacket,
} from "../bench/wire_latency.ts";

interface Frame {
  atNs: bigint;
  sourcePort: number;
  destinationPort: number;
  /** UDP payload. */
  payload: Uint8Array;
  protocol?: number;
}

function rtp(ssrc: number, seq: number, ts: number, marker = false) {
  const packet = new Uint8Array(12 + 40);
  const view = new DataView(packet.buffer);
  packet[0] = 0x80;
  packet[1] = (marker ? 0x80 : 0) | 96;
  view.setUint16(2, seq & 0xffff);
  view.setUint32(4, ts >>> 0);
  view.setUint32(8, ssrc >>> 0);
  return packet;
}

/** A pcap file as tcpdump writes it on Linux's lo (Ethernet framing),
 * with nanosecond timestamps, each frame cut to `snap` bytes. */
function pcap(frames: Frame[], snap = 96): Uint8Array {
  const records: Uint8Array[] = [];
  const header = new Uint8Array(24);
  const h = new DataView(header.buffer);
  h.setUint32(0, 0xa1b23c4d, true);
  h.setUint16(4, 2, true);
  h.setUint16(6, 4, true);
  h.setUint32(16, snap, true);
  h.setUint32(20, 1, true);
  records.push(header);
  for (const frame of frames) {
    const udpLength = 8 + frame.payload.length;
    const whole = new Uint8Array(14 + 20 + udpLength);
    const v = new DataView(whole.buffer);
    v.setUint16(12, 0x0800);
    whole[14] = 0x45;
    v.setUint16(16, 20 + udpLength);
    whole[14 + 9] = frame.protocol ?? 17;
    v.setUint16(34, frame.sourcePort);
    v.setUint16(36, frame.destinationPort);
    v.setUint16(38, udpLength);
    whole.set(frame.payload, 42);
    const captured = whole.subarray(0, Math.min(snap, whole.length));
    const record = new Uint8Array(16 + captured.length);
    const r = new DataView(record.buffer);
    r.setUint32(0, Number(frame.atNs / 1_000_000_000n), true);
    r.setUint32(4, Number(frame.atNs % 1_000_000_000n), true);
    r.setUint32(8, captured.length, true);
    r.setUint32(12, whole.length, true);
    record.set(captured, 16);
    records.push(record);
  }
  const file = new Uint8Array(records.reduce((n, r) => n + r.length, 0));
  let offset = 0;
  for (const record of records) {
    file.set(record, offset);
    offset += record.length;
  }
  return file;
}

const T0 = 1_764_000_000_000_000_000n;

Deno.test("a loopback capture yields its RTP packets with nanosecond times", () => {
  const stun = new Uint8Array(20); // first byte 0: STUN
  const rtcp = rtp(1, 1, 1);
  rtcp[1] = 200; // a sender report
  const packets = parsePcap(pcap([
    { atNs: T0, sourcePort: 5000, destinationPort: 6000, payload: stun },
    { atNs: T0 + 1n, sourcePort: 5000, destinationPort: 6000, payload: rtcp },
    {
      atNs: T0 + 1_500n,
      sourcePort: 5000,
      destinationPort: 6000,
      payload: rtp(0xdeadbeef, 65535, 0xfffffff0, true),
    },
    {
      atNs: T0 + 2_000n,
      sourcePort: 5000,
      destinationPort: 6000,
      payload: rtp(7, 1, 1),
      protocol: 6, // TCP: not ours
    },
  ]));
  assert.equal(packets.length, 1);
  const [packet] = packets;
  assert.equal(packet.sourcePort, 5000);
  assert.equal(packet.destinationPort, 6000);
  assert.equal(packet.ssrc, 0xdeadbeef);
  assert.equal(packet.sequenceNumber, 65535);
  assert.equal(packet.timestamp, 0xfffffff0);
  assert.equal(packet.atMs, Number(T0 / 1_000_000n) + 0.0015);
});

Deno.test("a capture too short for RTP headers, or not pcap, says so", () => {
  assert.throws(() => parsePcap(new Uint8Array(10)), /not a pcap file/);
  assert.throws(
    () => parsePcap(new TextEncoder().encode("x".repeat(40))),
    /unknown magic/,
  );
  // Cut to 40 bytes, no RTP header survives: nothing to time.
  assert.deepEqual(
    parsePcap(pcap([{
      atNs: T0,
      sourcePort: 1,
      destinationPort: 2,
      payload: rtp(1, 1, 1),
    }], 40)),
    [],
  );
});

/** Two publishers sending in lockstep (ports 5000 and 5002, video tags 1
 * and 3, audio tags 0 and 2), and subscribers that get rewritten copies of
 * the first publisher's streams: A (port 7000) 0.3 ms after each packet
 * plus 0.2 ms per packet of a burst, B (port 7002) 1 ms later than A. */
function scenario() {
  const packets: WirePacket[] = [];
  const sent = (
    atMs: number,
    port: number,
    ssrc: number,
    seq: number,
    ts: number,
    to = 9999,
  ) =>
    packets.push({
      atMs,
      sourcePort: port,
      destinationPort: to,
      ssrc,
      sequenceNumber: seq & 0xffff,
      timestamp: ts >>> 0,
    });
  for (let frame = 0; frame < 30; frame++) {
    const at = frame * 33;
    for (let p = 0; p < 5; p++) {
      const seq = 65530 + frame * 5 + p; // wraps
      const ts = frame * 3000;
      sent(at + p * 0.01, 5000, 0x1111, seq, ts);
      // The other publisher: same rates, so constant offsets to A's
      // stream too, and sent just before A's copies (a "closer" match).
      sent(at + 0.25 + p * 0.2, 5002, 0x3333, seq + 40, ts + 9);
      sent(at + 0.3 + p * 0.2, 40000, 0xa, seq + 1000, ts + 777, 7000);
      sent(at + 1.3 + p * 0.2, 40002, 0xb, seq - 9, ts + 5, 7002);
    }
    // Audio, evenly spaced: every older packet is a consistent pairing.
    sent(at + 5, 5000, 0x2222, frame, frame * 960);
    sent(at + 5.02, 5002, 0x4444, frame + 7, frame * 960 + 3);
    // A's audio copies from the tenth frame on, so that even the first has
    // older source packets in the window to be confused with.
    if (frame >= 10) {
      sent(at + 5.25, 40000, 0xaa, frame + 300, frame * 960 + 1, 7000);
    }
  }
  // A retransmission to B of an early packet: not a latency.
  sent(500, 40002, 0xb, 65530 + 3 - 9, 0 + 5, 7002);
  // A stream to B whose publisher is not captured.
  for (let i = 0; i < 30; i++) sent(i * 20, 40002, 0xccc, i * 7919, i, 7002);
  return packets.sort((a, b) => a.atMs - b.atMs);
}

const PUBLISHERS: CapturedLeg[] = [
  { port: 5000, streams: [{ tag: 0, ssrc: 0x2222 }, { tag: 1, ssrc: 0x1111 }] },
  { port: 5002, streams: [{ tag: 2, ssrc: 0x4444 }, { tag: 3, ssrc: 0x3333 }] },
];
const A: CapturedLeg = {
  port: 7000,
  streams: [{ tag: 1, ssrc: 0xa }, { tag: 0, ssrc: 0xaa }],
};
const B: CapturedLeg = {
  port: 7002,
  streams: [{ tag: 1, ssrc: 0xb }, { tag: 6, ssrc: 0xccc }],
};

Deno.test("forwarded copies are paired with their source and timed", () => {
  const result = addedLatency(scenario(), PUBLISHERS, [A, B]);
  assert.equal(result.unmatchedStreams, 1);
  // A: 150 video copies at 0.3-1.1 ms and 20 audio at 0.25; B: 150 at 1.3-2.1.
  assert.equal(result.histogram.total, 150 + 20 + 150);
  assert.ok(Math.abs(result.medianBySink[0]! - 0.67) < 0.05);
  assert.ok(Math.abs(result.medianBySink[1]! - 1.7) < 0.05);
  const p50 = result.histogram.quantile(0.5)!;
  assert.ok(p50 > 0.9 && p50 < 1.5, `p50 ${p50}`);
  const p99 = result.histogram.quantile(0.99)!;
  assert.ok(p99 >= 2.0 && p99 < 2.4, `p99 ${p99}`);
  // A's audio alone: its own packets, not ones 33 ms older.
  const audio = addedLatency(scenario(), PUBLISHERS, [{
    port: 7000,
    streams: [{ tag: 0, ssrc: 0xaa }],
  }]);
  assert.equal(audio.histogram.total, 20);
  assert.ok(Math.abs(audio.medianBySink[0]! - 0.25) < 0.01);
});

Deno.test("a subscriber not captured, or a publisher not named, times nothing", () => {
  assert.equal(
    addedLatency(scenario(), PUBLISHERS, [{ ...A, port: 7004 }]).histogram
      .total,
    0,
  );
  const sourceless = addedLatency(scenario(), [PUBLISHERS[1]], [A]);
  assert.equal(sourceless.histogram.total, 0);
  assert.equal(sourceless.unmatchedStreams, 2);
  assert.deepEqual(sourceless.medianBySink, [null]);
});
