// werift's RTCP header reader, replaced in media/werift_patches.ts by one
// that reads the bit fields with shifts: every field of every header byte
// as RFC 3550 defines it, and whole compound packets as werift writes them.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  GenericNack,
  RtcpHeader,
  RtcpPacketConverter,
  RtcpReceiverInfo,
  RtcpRrPacket,
  RtcpSenderInfo,
  RtcpSrPacket,
  RtcpTransportLayerFeedback,
  RtpHeader,
} from "werift";
import { applyWeriftPatches } from "../media/werift_patches.ts";

applyWeriftPatches();

Deno.test("every first byte of an RTCP header gives version, padding and count", () => {
  // The replacement is in place (werift's reader goes through getBit).
  assert.doesNotMatch(String(RtcpHeader.deSerialize), /getBit/);
  for (let first = 0; first < 256; first++) {
    for (const [type, length] of [[200, 6], [201, 0], [205, 0xffff]]) {
      const header = RtcpHeader.deSerialize(
        Buffer.from([first, type, length >> 8, length & 0xff]),
      );
      assert.equal(header.version, Math.floor(first / 64));
      assert.equal(header.padding, Math.floor(first / 32) % 2 === 1);
      assert.equal(header.count, first % 32);
      assert.equal(header.type, type);
      assert.equal(header.length, length);
    }
  }
  assert.throws(
    () => RtcpHeader.deSerialize(Buffer.from([0x80, 200, 0])),
    RangeError,
  );
});

Deno.test("compound RTCP packets read back as werift wrote them", () => {
  const report = new RtcpReceiverInfo({
    ssrc: 0x01020304,
    fractionLost: 12,
    packetsLost: 345,
    highestSequence: 70000,
    jitter: 9,
    lsr: 0xaabbccdd,
    dlsr: 77,
  });
  const sr = new RtcpSrPacket({
    ssrc: 0x11223344,
    senderInfo: new RtcpSenderInfo({
      ntpTimestamp: 0x0102030405060708n,
      rtpTimestamp: 90000,
      packetCount: 1000,
      octetCount: 1_200_000,
    }),
    reports: [report],
  });
  const rr = new RtcpRrPacket({ ssrc: 0x55667788, reports: [report, report] });
  const nack = new RtcpTransportLayerFeedback({
    feedback: new GenericNack({
      senderSsrc: 1,
      mediaSourceSsrc: 2,
      lost: [100, 101, 105, 130],
    }),
  });
  const packets = RtcpPacketConverter.deSerialize(
    Buffer.concat([sr.serialize(), rr.serialize(), nack.serialize()]),
  );
  assert.deepEqual(packets.map((p) => p.type), [200, 201, 205]);
  const [readSr, readRr, readNack] = packets as [
    RtcpSrPacket,
    RtcpRrPacket,
    RtcpTransportLayerFeedback,
  ];
  assert.equal(readSr.ssrc, 0x11223344);
  assert.equal(readSr.reports[0].packetsLost, 345);
  assert.equal(readRr.reports.length, 2);
  assert.equal(readRr.reports[1].highestSequence, 70000);
  assert.deepEqual((readNack.feedback as GenericNack).lost, [
    100,
    101,
    105,
    130,
  ]);
  // The RTP header reader is werift's own, untouched.
  assert.equal(
    RtpHeader.deSerialize(
      Buffer.from([0x80, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]),
    ).payloadType,
    0x60,
  );
});
