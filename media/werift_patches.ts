// A clearly separated patch layer over werift's NACK handling, applied once
// at start-up. werift's receiver re-NACKs every missing packet every 5 ms and
// its sender retransmits every listed packet every time, with no dedup or rate
// limit and 16-bit comparisons without wrap-around: under load that grows
// memory without bound. Umbrella answers NACKs itself (media/consumer.ts) and
// NACKs publishers once per lost packet (media/nack_generator.ts), so both of
// werift's paths are switched off here while "nack" stays negotiated in SDP.
import {
  GenericNack,
  RtcpTransportLayerFeedback,
  RTCRtpReceiver,
  RTCRtpSender,
} from "werift";

let applied = false;

export function applyWeriftPatches(): void {
  if (applied) return;
  applied = true;

  // The receiver's NackHandler only runs when this getter finds "nack" in the
  // codec's feedback; PLI support is looked up separately and is untouched.
  Object.defineProperty(RTCRtpReceiver.prototype, "nackEnabled", {
    configurable: true,
    get: () => undefined,
  });

  // The sender still sees every RTCP packet through onRtcp, where the
  // consumer handles NACKs; only the built-in retransmission is skipped.
  const handleRtcpPacket = RTCRtpSender.prototype.handleRtcpPacket;
  RTCRtpSender.prototype.handleRtcpPacket = function (
    this: RTCRtpSender,
    packet: Parameters<typeof handleRtcpPacket>[0],
  ) {
    if (
      packet.type === RtcpTransportLayerFeedback.type &&
      (packet as RtcpTransportLayerFeedback).feedback?.count ===
        GenericNack.count
    ) {
      this.onRtcp.execute(packet);
      return;
    }
    handleRtcpPacket.call(this, packet);
  };
}
