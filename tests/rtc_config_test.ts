import assert from "node:assert/strict";
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
