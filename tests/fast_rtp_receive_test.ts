// Received RTP taking the short way (media/fast_rtp_receive.ts) between two
// real werift PeerConnections on loopback: what arrives, what werift still
// counts and reports, and what is left to werift's own way.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import dgram from "node:dgram";
import {
  MediaStreamTrack,
  type RTCDtlsTransport,
  RTCPeerConnection,
  RtcpRrPacket,
  RtpHeader,
} from "werift";
import {
  bindFastRtpReceive,
  fastRtpCounts,
  type StreamBinding,
} from "../media/fast_rtp_receive.ts";
import { peerConnectionConfig } from "../media/rtc_config.ts";
import { applyWeriftPatches, sendRtp } from "../media/werift_patches.ts";

const LOOPBACK = { iceAddresses: ["127.0.0.1"], iceServers: [] };

async function waitFor(
  what: string,
  condition: () => boolean,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Delivered {
  seq: number;
  ts: number;
  marker: boolean;
  pt: number;
  payload: string;
}

interface DtlsInternals {
  packetsReceived: number;
  iceTransport: {
    connection: {
      nominated?: { packetsReceived: number };
      protocols: { transport?: { address?: { port: number } } }[];
    };
  };
}

Deno.test("a bound stream's packets go straight to its Track's deliverer; werift keeps counting and reporting them", async () => {
  const status = applyWeriftPatches();
  assert.equal(status.srtp.backend, "libcrypto", status.srtp.fallbackReason);
  const publisher = new RTCPeerConnection(
    peerConnectionConfig(LOOPBACK, "send"),
  );
  const sfu = new RTCPeerConnection(peerConnectionConfig(LOOPBACK, "receive"));
  const forger = dgram.createSocket("udp4");
  try {
    const transceiver = publisher.addTransceiver(
      new MediaStreamTrack({ kind: "video" }),
      { direction: "sendonly" },
    );
    const fast: Delivered[] = [];
    const weriftWay: Delivered[] = [];
    let bound = false;
    sfu.ontrack = ({ track, transceiver: receiving }) => {
      track.onReceiveRtp.subscribe((rtp) => {
        const h = rtp.header;
        weriftWay.push({
          seq: h.sequenceNumber,
          ts: h.timestamp,
          marker: h.marker,
          pt: h.payloadType,
          payload: rtp.payload.toString("hex"),
        });
        if (bound || h.payloadType !== 96) return;
        bound = bindFastRtpReceive({
          dtls: receiving.receiver.dtlsTransport!,
          ssrc: h.ssrc,
          payloadType: 96,
          receiver: receiving.receiver as unknown as StreamBinding["receiver"],
          deliver: (seq, ts, marker, pt, payload) =>
            fast.push({
              seq,
              ts,
              marker,
              pt,
              payload: Buffer.from(payload).toString("hex"),
            }),
        });
      });
    };
    const reports: { highest: number; lost: number }[] = [];
    transceiver.sender.onRtcp.subscribe((packet) => {
      if (packet.type !== RtcpRrPacket.type) return;
      for (const report of (packet as RtcpRrPacket).reports) {
        reports.push({
          highest: report.highestSequence,
          lost: report.packetsLost,
        });
      }
    });
    await publisher.setLocalDescription(await publisher.createOffer());
    await sfu.setRemoteDescription(publisher.localDescription!);
    await sfu.setLocalDescription(await sfu.createAnswer());
    await publisher.setRemoteDescription(sfu.localDescription!);
    await waitFor(
      "both PeerConnections to connect",
      () =>
        publisher.connectionState === "connected" &&
        sfu.connectionState === "connected",
    );
    const publisherDtls = publisher.dtlsTransports[0];
    const sfuDtls = sfu.dtlsTransports[0];
    const sfuInternals = sfuDtls as unknown as DtlsInternals;
    const ssrc = transceiver.sender.ssrc;
    const sent: Delivered[] = [];
    let seq = 1000;
    const send = (pt: number, marker: boolean) => {
      const payload = Buffer.from([seq >> 8, seq & 0xff, pt, 7, 7, 7]);
      const header = new RtpHeader({
        payloadType: pt,
        sequenceNumber: seq,
        timestamp: seq * 3000,
        marker,
        ssrc,
      });
      sendRtp(publisherDtls as RTCDtlsTransport, payload, header);
      sent.push({
        seq,
        ts: seq * 3000,
        marker,
        pt,
        payload: payload.toString("hex"),
      });
      seq++;
    };

    // Until the receiver's SRTP is up the first packets may be lost, so
    // sending goes on until the stream is bound.
    await waitFor("the stream to be bound", () => {
      if (!bound) send(96, false);
      return bound;
    });
    const dtlsBefore = sfuInternals.packetsReceived;
    const pairBefore =
      sfuInternals.iceTransport.connection.nominated!.packetsReceived;
    const firstFast = sent.length;
    const weriftBefore = weriftWay.length;
    for (let i = 0; i < 200; i++) send(96, i % 5 === 4);
    await waitFor("200 packets delivered", () => fast.length >= 200);
    assert.deepEqual(fast.slice(0, 200), sent.slice(firstFast));
    assert.equal(fastRtpCounts(sfuDtls).packets, 200);
    assert.equal(
      weriftWay.length,
      weriftBefore,
      "bound packets no longer take werift's way",
    );
    assert.ok(sfuInternals.packetsReceived - dtlsBefore >= 200);
    assert.ok(
      sfuInternals.iceTransport.connection.nominated!.packetsReceived -
          pairBefore >= 200,
      "the ICE pair's counter (the liveness watchdog's) still rises",
    );

    // werift's receiver reports are made from statistics the short way fed.
    const last = seq - 1;
    await waitFor(
      "a receiver report covering the last packet",
      () => reports.some((r) => r.highest === last),
      5000,
    );
    assert.ok(
      reports.filter((r) => r.highest === last).every((r) => r.lost === 0),
    );

    // Another payload type is not the bound stream's: werift's way.
    send(102, true);
    await waitFor(
      "the other payload type on werift's way",
      () => weriftWay.length > weriftBefore,
    );
    assert.equal(weriftWay.at(-1)!.pt, 102);
    assert.equal(fastRtpCounts(sfuDtls).packets, 200);

    // A forged packet with the bound SSRC and payload type fails SRTP
    // authentication and is dropped; the stream carries on.
    const port = sfuInternals.iceTransport.connection.protocols
      .map((p) => p.transport?.address?.port)
      .find((p) => p !== undefined)!;
    const forged = Buffer.alloc(60, 0x55);
    forged.set([0x80, 96, 0x7f, 0x00, 0, 0, 0, 1]);
    forged.writeUInt32BE(ssrc, 8);
    await new Promise<void>((resolve, reject) =>
      forger.send(forged, port, "127.0.0.1", (e) => e ? reject(e) : resolve())
    );
    send(96, true);
    await waitFor("the next real packet", () => fast.length >= 201);
    assert.deepEqual(fast.slice(200), [sent.at(-1)]);
    assert.equal(fastRtpCounts(sfuDtls).packets, 201);

    // A burst sent in one turn waits in the kernel as a whole: the first
    // datagram wakes the receiver, which reads the rest itself, in order,
    // another payload type among them still going werift's way.
    const burstStart = sent.length;
    const drainedBefore = fastRtpCounts(sfuDtls).drained;
    const weriftBeforeBurst = weriftWay.length;
    for (let i = 0; i < 40; i++) send(i === 20 ? 102 : 96, i % 5 === 4);
    await waitFor(
      "the burst delivered",
      () => fast.length >= 240 && weriftWay.length > weriftBeforeBurst,
    );
    const burst = sent.slice(burstStart);
    assert.deepEqual(
      fast.slice(201, 240),
      burst.filter((packet) => packet.pt === 96),
    );
    assert.deepEqual(weriftWay.slice(weriftBeforeBurst), [burst[20]]);
    assert.ok(
      fastRtpCounts(sfuDtls).drained - drainedBefore >= 30,
      `${fastRtpCounts(sfuDtls).drained - drainedBefore} of 40 drained`,
    );
  } finally {
    forger.close();
    await publisher.close();
    await sfu.close();
  }
});
