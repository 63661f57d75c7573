import assert from "node:assert/strict";
import {
  encodeInterleavedFrame,
  InterleavedChannels,
  MAX_INTERLEAVED_PAYLOAD,
} from "../media/rtsp/interleaved.ts";
import {
  type InterleavedFrame,
  RtspProtocolError,
  RtspStreamParser,
} from "../media/rtsp/message.ts";

// A minimal RTCP receiver report (RFC 3550 §6.4.2) with no report blocks.
const RECEIVER_REPORT = Uint8Array.of(
  0x80,
  0xc9,
  0x00,
  0x01,
  0xde,
  0xad,
  0xbe,
  0xef,
);

Deno.test("a frame is '$', channel, big-endian length, payload", () => {
  assert.deepEqual(
    encodeInterleavedFrame(3, RECEIVER_REPORT),
    Uint8Array.of(0x24, 3, 0x00, 0x08, ...RECEIVER_REPORT),
  );
  const long = encodeInterleavedFrame(0, new Uint8Array(0x1234));
  assert.deepEqual(long.subarray(0, 4), Uint8Array.of(0x24, 0, 0x12, 0x34));
  assert.deepEqual(
    encodeInterleavedFrame(255, new Uint8Array(0)),
    Uint8Array.of(0x24, 255, 0, 0),
  );
});

Deno.test("encoded frames read back through the stream parser unchanged", () => {
  const payloads = [
    RECEIVER_REPORT,
    new Uint8Array(MAX_INTERLEAVED_PAYLOAD).fill(7),
    new Uint8Array(0),
  ];
  const parser = new RtspStreamParser();
  payloads.forEach((payload, channel) =>
    parser.push(encodeInterleavedFrame(channel, payload))
  );
  for (const [channel, payload] of payloads.entries()) {
    const frame = parser.next() as InterleavedFrame;
    assert.equal(frame.kind, "frame");
    assert.equal(frame.channel, channel);
    assert.deepEqual(frame.payload, payload);
  }
  assert.equal(parser.next(), null);
});

Deno.test("frames that cannot be encoded are refused", () => {
  for (const channel of [-1, 256, 1.5, NaN]) {
    assert.throws(
      () => encodeInterleavedFrame(channel, RECEIVER_REPORT),
      RtspProtocolError,
    );
  }
  assert.throws(
    () =>
      encodeInterleavedFrame(0, new Uint8Array(MAX_INTERLEAVED_PAYLOAD + 1)),
    /65536 byte packet does not fit/,
  );
});

Deno.test("channels are proposed in even pairs and routed back to their stream", () => {
  const channels = new InterleavedChannels();
  assert.deepEqual(channels.proposePair(), [0, 1]);
  channels.assign(0, [0, 1]);
  assert.deepEqual(channels.proposePair(), [2, 3]);
  channels.assign(1, [2, 3]);
  assert.deepEqual(channels.route(0), { stream: 0, rtcp: false });
  assert.deepEqual(channels.route(1), { stream: 0, rtcp: true });
  assert.deepEqual(channels.route(2), { stream: 1, rtcp: false });
  assert.deepEqual(channels.route(3), { stream: 1, rtcp: true });
  assert.equal(channels.route(4), undefined);
  assert.equal(channels.route(255), undefined);
  assert.equal(channels.rtcpChannel(0), 1);
  assert.equal(channels.rtcpChannel(1), 3);
  assert.equal(channels.rtcpChannel(2), undefined);
  // The per-packet lookup returns the same object every time.
  assert.equal(channels.route(2), channels.route(2));
});

Deno.test("the camera's answer wins over the proposal, and proposals skip what it took", () => {
  const channels = new InterleavedChannels();
  // Asked for 0-1, the camera chose 2-3 (some Dahua firmware does this).
  channels.assign(0, [2, 3]);
  assert.deepEqual(channels.proposePair(), [0, 1]);
  channels.assign(1, [0, 1]);
  assert.deepEqual(channels.proposePair(), [4, 5]);
  // An odd start leaves its neighbours' pairs unusable.
  channels.assign(2, [5, 6]);
  assert.deepEqual(channels.proposePair(), [8, 9]);
  assert.equal(channels.route(5)?.stream, 2);
  assert.equal(channels.route(6)?.rtcp, true);
});

Deno.test("a camera that reuses channels across streams is refused with a clear reason", () => {
  const channels = new InterleavedChannels();
  channels.assign(0, [0, 1]);
  assert.throws(
    () => channels.assign(1, [0, 1]),
    /stream 2 on interleaved channel 0, already used by stream 1/,
  );
  assert.throws(
    () => channels.assign(1, [1, 2]),
    /channel 1, already used by stream 1/,
  );
  assert.throws(
    () => channels.assign(1, [4, 4]),
    /RTP and RTCP of stream 2 on the same interleaved channel 4/,
  );
  assert.throws(
    () => channels.assign(1, [256, 257]),
    /invalid interleaved channel 256/,
  );
  // A refused assignment leaves nothing behind.
  assert.equal(channels.route(2), undefined);
  assert.equal(channels.route(4), undefined);
  channels.assign(1, [2, 3]);
  assert.equal(channels.route(2)?.stream, 1);
});

Deno.test("running out of channels is an error, not a wrap-around", () => {
  const channels = new InterleavedChannels();
  for (let stream = 0; stream < 128; stream++) {
    channels.assign(stream, channels.proposePair());
  }
  assert.deepEqual(channels.route(255), { stream: 127, rtcp: true });
  assert.throws(
    () => channels.proposePair(),
    /all 256 interleaved channels are in use/,
  );
});
