import assert from "node:assert/strict";
import type { Buffer } from "node:buffer";
import dgram from "node:dgram";
import dns from "node:dns";
import {
  ReceiverEstimatedMaxBitrate,
  RTCPeerConnection,
  type RTCPeerConnectionConfig,
} from "werift";
import { applyWeriftPatches } from "../media/werift_patches.ts";
import {
  DEFAULT_PUBLISH_BITRATE_BPS,
  rembPacket,
} from "../media/webrtc_peer.ts";
import {
  addPublicAddressCandidates,
  iceAddressConfig,
  peerConnectionConfig,
} from "../media/rtc_config.ts";

Deno.test("pinned ICE addresses are the only ones gathered, and loopback pins keep checks on loopback", () => {
  const config = iceAddressConfig(["127.0.0.1"]);
  assert.equal(config.iceUseIpv4, false, "no interface discovery");
  assert.equal(config.iceUseIpv6, false);
  assert.deepEqual(config.iceAdditionalHostAddresses, ["127.0.0.1"]);
  assert.equal(config.iceInterfaceAddresses?.udp4, "127.0.0.1");
  const filter = config.iceFilterCandidatePair!;
  // deno-lint-ignore no-explicit-any
  const pair = (host: string) => ({ remoteCandidate: { host } }) as any;
  assert.equal(filter(pair("127.0.0.1")), true);
  assert.equal(filter(pair("192.0.2.2")), false);
  const lan = iceAddressConfig(["192.168.1.1", "10.0.0.1"]);
  assert.equal(
    lan.iceInterfaceAddresses?.udp4,
    undefined,
    "two IPv4 pins share a wildcard socket",
  );
  assert.equal(lan.iceFilterCandidatePair, undefined);
  assert.deepEqual(iceAddressConfig([]), {
    iceUseIpv4: true,
    iceUseIpv6: true,
  });
});

Deno.test("no STUN server unless configured", () => {
  const config = peerConnectionConfig(
    { iceAddresses: [], iceServers: [] },
    "send",
  );
  assert.deepEqual(config.iceServers, []);
});

Deno.test("a public address is added as a reflexive candidate of each host candidate", () => {
  const sdp = [
    "v=0",
    "a=candidate:abc 1 udp 2116026367 192.168.1.5 40000 typ host generation 0 ufrag x",
    "a=candidate:def 1 udp 2116026367 203.0.113.7 40002 typ host generation 0 ufrag x",
    "a=end-of-candidates",
  ].join("\r\n");
  const out = addPublicAddressCandidates(sdp, "203.0.113.7").split("\r\n");
  assert.deepEqual(out.filter((l) => l.includes("srflx")), [
    "a=candidate:abcn 1 udp 2099249151 203.0.113.7 40000 typ srflx raddr 192.168.1.5 rport 40000 generation 0 ufrag x",
  ]);
  assert.equal(addPublicAddressCandidates(sdp, undefined), sdp);
});

/** Names werift resolves while `body` runs. */
async function lookupsDuring(body: () => Promise<void>): Promise<string[]> {
  const hosts: string[] = [];
  const promises = dns.promises as { lookup: (...a: unknown[]) => unknown };
  const callbacks = dns as unknown as { lookup: (...a: unknown[]) => unknown };
  const [lookup, lookupCallback] = [promises.lookup, callbacks.lookup];
  promises.lookup = (host, ...rest) => {
    hosts.push(String(host));
    return lookup.call(dns.promises, host, ...rest);
  };
  callbacks.lookup = (host, ...rest) => {
    hosts.push(String(host));
    return lookupCallback.call(dns, host, ...rest);
  };
  try {
    await body();
  } finally {
    promises.lookup = lookup;
    callbacks.lookup = lookupCallback;
  }
  return hosts;
}

async function gather(config: RTCPeerConnectionConfig): Promise<string> {
  const pc = new RTCPeerConnection(config);
  try {
    pc.addTransceiver("audio", { direction: "sendonly" });
    await pc.setLocalDescription(await pc.createOffer());
    for (let i = 0; i < 100 && pc.iceGatheringState !== "complete"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(pc.iceGatheringState, "complete");
    return pc.localDescription!.sdp;
  } finally {
    await pc.close();
  }
}

Deno.test("with no STUN server configured, gathering asks no one (werift's public default is gone)", async () => {
  applyWeriftPatches();
  const network = { iceAddresses: ["127.0.0.1"], iceServers: [] };
  let sdp = "";
  const hosts = await lookupsDuring(async () => {
    sdp = await gather(peerConnectionConfig(network, "send"));
  });
  assert.deepEqual(hosts, []);
  assert.match(sdp, /typ host/);
  assert.doesNotMatch(sdp, /typ srflx/);
});

Deno.test("a configured STUN server is still asked", async () => {
  applyWeriftPatches();
  const stun = dgram.createSocket("udp4");
  await new Promise<void>((resolve) =>
    stun.bind(0, "127.0.0.1", () => resolve())
  );
  const requests: number[] = [];
  // A STUN message starts with type 0x0001 (binding request).
  stun.on("message", (data: Buffer) => requests.push(data.readUInt16BE(0)));
  try {
    const network = {
      iceAddresses: ["127.0.0.1"],
      iceServers: [{ urls: `stun:127.0.0.1:${stun.address().port}` }],
    };
    await gather(peerConnectionConfig(network, "send"));
    assert.ok(requests.includes(0x0001), `requests: ${requests}`);
  } finally {
    stun.close();
  }
});

Deno.test("a REMB carries the bitrate in 18 bits of mantissa and names the streams", () => {
  for (
    const bps of [0, 150_000, DEFAULT_PUBLISH_BITRATE_BPS, 2 ** 40 + 12345]
  ) {
    const packet = rembPacket(bps, [1, 0xffffffff]);
    const parsed = ReceiverEstimatedMaxBitrate.deSerialize(packet.serialize());
    assert.ok(parsed.brMantissa <= 0x3ffff);
    const decoded = Number(parsed.bitrate);
    assert.ok(
      decoded <= bps && decoded >= bps * 0.9999,
      `${bps} came back as ${decoded}`,
    );
    assert.deepEqual(parsed.ssrcFeedbacks, [1, 0xffffffff]);
    assert.equal(parsed.ssrcNum, 2);
  }
});
