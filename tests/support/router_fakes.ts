// Fakes around the router's Track and Consumer, for tests of forwarding
// without a network: a track description, an upstream that records what is
// asked of it, and an output that records what is sent.
import type { RtpHeader } from "werift";
import type { RtpOutput } from "../../media/consumer.ts";
import type { TrackDescription } from "../../media/track.ts";

export const trackDescription = (
  kind: "audio" | "video",
  id = `t-${kind}`,
): TrackDescription => ({
  id,
  kind,
  mimeType: kind === "video" ? "video/VP8" : "audio/opus",
  fmtp: "",
  clockRate: kind === "video" ? 90000 : 48000,
  channels: kind === "video" ? 0 : 2,
  participantId: "alice",
  participantName: "Alice",
  site: "home",
  originNodeId: "n1",
  path: ["n1"],
  source: "participant",
  label: "",
  muted: false,
});

export class FakeUpstream {
  keyframeRequests = 0;
  nacks: number[][] = [];
  demand: boolean[] = [];
  requestKeyframe() {
    this.keyframeRequests++;
  }
  sendNack(lost: number[]) {
    this.nacks.push(lost);
  }
  setDemand(wanted: boolean) {
    this.demand.push(wanted);
  }
}

export interface Sent {
  seq: number;
  ts: number;
  ssrc: number;
  pt: number;
  marker: boolean;
  payload: Uint8Array;
}

export class FakeOutput implements RtpOutput {
  ready = true;
  sent: Sent[] = [];
  /** Sequence numbers sent, in order. */
  get seqs(): number[] {
    return this.sent.map((packet) => packet.seq);
  }
  sendRtp(payload: Uint8Array, header: RtpHeader) {
    this.sent.push({
      seq: header.sequenceNumber,
      ts: header.timestamp,
      ssrc: header.ssrc,
      pt: header.payloadType,
      marker: header.marker,
      payload,
    });
  }
}
