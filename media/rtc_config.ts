// How Umbrella's werift PeerConnections are configured: which addresses and
// ports ICE uses, which codecs are offered, and the 1:1 NAT address.
import {
  type RTCPeerConnectionConfig,
  RTCRtpCodecParameters,
  useNACK,
  usePLI,
  useREMB,
  useSdesMid,
  useSdesRTPStreamId,
} from "werift";

export interface IceServer {
  urls: string;
  username?: string;
  credential?: string;
}

export interface MediaNetworkOptions {
  /** Addresses to gather host candidates on; empty = every non-loopback
   * interface. Loopback addresses are allowed (tests, single-host setups). */
  iceAddresses: string[];
  /** Announced in addition to host candidates, for a 1:1 NAT. */
  publicIp?: string;
  portRange?: [number, number];
  /** STUN/TURN servers; none by default, so nothing is sent to outside hosts. */
  iceServers: IceServer[];
}

// goog-remb: Umbrella tells publishers how much they may send (see
// media/webrtc_peer.ts, DEFAULT_PUBLISH_BITRATE_BPS).
const videoFeedback = () => [useNACK(), usePLI(), useREMB()];

// Payload types follow Chromium's numbering so forwarded RTP rarely needs a
// different payload type on each leg (it is rewritten per subscriber anyway).
export function supportedCodecs() {
  return {
    audio: [
      new RTCRtpCodecParameters({
        mimeType: "audio/opus",
        clockRate: 48000,
        channels: 2,
        payloadType: 111,
        parameters: "minptime=10;useinbandfec=1",
      }),
      new RTCRtpCodecParameters({
        mimeType: "audio/PCMU",
        clockRate: 8000,
        channels: 1,
        payloadType: 0,
      }),
      new RTCRtpCodecParameters({
        mimeType: "audio/PCMA",
        clockRate: 8000,
        channels: 1,
        payloadType: 8,
      }),
    ],
    video: [
      new RTCRtpCodecParameters({
        mimeType: "video/VP8",
        clockRate: 90000,
        payloadType: 96,
        rtcpFeedback: videoFeedback(),
      }),
      ...[
        [102, "42001f"],
        [106, "42e01f"],
        [112, "4d001f"],
        [114, "640c1f"],
      ].map(([payloadType, profile]) =>
        new RTCRtpCodecParameters({
          mimeType: "video/H264",
          clockRate: 90000,
          payloadType: payloadType as number,
          rtcpFeedback: videoFeedback(),
          parameters:
            `level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=${profile}`,
        })
      ),
    ],
  };
}

const isLoopback = (address: string) =>
  address.startsWith("127.") || address === "::1";

export type PeerConnectionRole = "send" | "receive";

export function peerConnectionConfig(
  options: MediaNetworkOptions,
  role: PeerConnectionRole,
): RTCPeerConnectionConfig {
  return {
    iceServers: options.iceServers,
    icePortRange: options.portRange,
    ...iceAddressConfig(options.iceAddresses),
    codecs: supportedCodecs(),
    // Forwarded packets carry no header extensions (the publisher's ids mean
    // nothing on another leg); received ones may carry the mid for demuxing
    // and, for simulcast video, the RTP stream id that names the layer.
    headerExtensions: role === "receive"
      ? { audio: [useSdesMid()], video: [useSdesMid(), useSdesRTPStreamId()] }
      : { audio: [], video: [] },
  };
}

/** Gathering exactly on the pinned addresses. werift discovers interfaces
 * itself and, when its interface filter matches none of them (loopback is
 * never among them), falls back to all; so discovery is switched off and the
 * pinned addresses are given as the only host addresses. */
export function iceAddressConfig(
  addresses: string[],
): Partial<RTCPeerConnectionConfig> {
  if (addresses.length === 0) return { iceUseIpv4: true, iceUseIpv6: true };
  const ipv4 = addresses.filter((a) => !a.includes(":"));
  const ipv6 = addresses.filter((a) => a.includes(":"));
  const loopbackOnly = addresses.every(isLoopback);
  return {
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: addresses,
    // A socket binds to one address per family; with several, it binds to
    // all of that family and only the pinned ones are announced.
    iceInterfaceAddresses: {
      udp4: ipv4.length === 1 ? ipv4[0] : undefined,
      udp6: ipv6.length === 1 ? ipv6[0] : undefined,
    },
    // Media pinned to loopback never checks a remote address elsewhere.
    iceFilterCandidatePair: loopbackOnly
      ? (pair) => isLoopback(pair.remoteCandidate.host)
      : undefined,
  };
}

/** Adds a server-reflexive candidate with the public address for every host
 * candidate in the SDP, so peers behind the same 1:1 NAT mapping can reach
 * us without STUN. */
export function addPublicAddressCandidates(
  sdp: string,
  publicIp: string | undefined,
): string {
  if (!publicIp) return sdp;
  const lines = sdp.split("\r\n");
  const out: string[] = [];
  for (const line of lines) {
    out.push(line);
    const match = line.match(
      /^a=candidate:(\S+) (\d+) (udp|tcp) (\d+) (\S+) (\d+) typ host(.*)$/i,
    );
    if (!match || match[5] === publicIp) continue;
    const [, foundation, component, transport, priority, address, port, rest] =
      match;
    // Lower priority than the host candidate so LAN peers keep the direct path.
    const reflexivePriority = Math.max(1, Number(priority) - 0x1000000);
    out.push(
      `a=candidate:${foundation}n ${component} ${transport} ${reflexivePriority} ${publicIp} ${port} typ srflx raddr ${address} rport ${port}${
        rest.replace(/ (raddr|rport) \S+/g, "")
      }`,
    );
  }
  return out.join("\r\n");
}
