// Publisher media shaped like a real call, unlike the test client's one packet
// per frame: VP8 at 30 fps in bursts of several 1200-byte packets per frame
// (one RTP timestamp, marker on the last), larger keyframes every few seconds
// and on PLI, and Opus-sized audio at 50 packets/s. Payloads carry the tag,
// a per-packet counter and the send time (tests/support/media_payload.ts).
import { Buffer } from "node:buffer";
import {
  MediaStreamTrack,
  type RTCPeerConnection,
  type RTCRtpTransceiver,
  RtpHeader,
  RtpPacket,
} from "werift";
import { makePayload } from "../tests/support/media_payload.ts";
import { supportedCodecs } from "../media/rtc_config.ts";
import type { TaggedStream } from "./wire_latency.ts";

export interface MediaProfile {
  videoFps: number;
  videoPacketsPerFrame: number;
  keyframePacketsPerFrame: number;
  keyframeIntervalFrames: number;
  videoPacketBytes: number;
  audioPacketsPerSecond: number;
  audioPacketBytes: number;
}

/** About 1.5 Mbit/s of video and 40 kbit/s of audio. */
export const REALISTIC_MEDIA: MediaProfile = {
  videoFps: 30,
  videoPacketsPerFrame: 5,
  keyframePacketsPerFrame: 15,
  keyframeIntervalFrames: 90,
  videoPacketBytes: 1200,
  audioPacketsPerSecond: 50,
  audioPacketBytes: 100,
};

/** Average packets per second of one published video track. */
export function videoPacketsPerSecond(profile: MediaProfile): number {
  const perInterval = (profile.keyframeIntervalFrames - 1) *
      profile.videoPacketsPerFrame + profile.keyframePacketsPerFrame;
  return perInterval / profile.keyframeIntervalFrames * profile.videoFps;
}

/** Wall-clock milliseconds with sub-millisecond resolution; processes on one
 * machine agree on it, so receivers can subtract a sender's stamp. */
export const wallClockMs = () => performance.timeOrigin + performance.now();

const VP8_CONTINUATION = 0x00; // payload descriptor with S=0

interface OutgoingStream {
  kind: "audio" | "video";
  track: MediaStreamTrack;
  transceiver: RTCRtpTransceiver;
  tag: number;
  sequenceNumber: number;
  timestamp: number;
  frames: number;
  packets: number;
  keyframeWanted: boolean;
}

export class MediaSource {
  readonly #profile: MediaProfile;
  readonly #streams: OutgoingStream[] = [];
  #timers: ReturnType<typeof setInterval>[] = [];

  /** Adds a send-only audio (tag) and VP8 video (tag + 1) transceiver. */
  constructor(pc: RTCPeerConnection, tag: number, profile: MediaProfile) {
    this.#profile = profile;
    const codecs = supportedCodecs();
    for (const kind of ["audio", "video"] as const) {
      const track = new MediaStreamTrack({ kind });
      const transceiver = pc.addTransceiver(track, { direction: "sendonly" });
      const mime = kind === "audio" ? "audio/opus" : "video/vp8";
      transceiver.setCodecPreferences(
        codecs[kind].filter((c) => c.mimeType.toLowerCase() === mime),
      );
      const stream: OutgoingStream = {
        kind,
        track,
        transceiver,
        tag: kind === "audio" ? tag : tag + 1,
        sequenceNumber: Math.floor(Math.random() * 65536),
        timestamp: Math.floor(Math.random() * 2 ** 32),
        frames: 0,
        packets: 0,
        keyframeWanted: true,
      };
      transceiver.sender.onPictureLossIndication.subscribe(() => {
        stream.keyframeWanted = true;
      });
      this.#streams.push(stream);
    }
  }

  /** Track bindings for an Umbrella offer: mid → track id and label. */
  get bindings(): { mid: string; id: string; kind: "audio" | "video" }[] {
    return this.#streams.map((s) => ({
      mid: s.transceiver.mid!,
      id: s.track.uuid,
      kind: s.kind,
    }));
  }

  start(): void {
    const profile = this.#profile;
    for (const stream of this.#streams) {
      if (stream.kind === "audio") {
        this.#timers.push(setInterval(
          () => this.#sendAudio(stream),
          1000 / profile.audioPacketsPerSecond,
        ));
      } else {
        this.#timers.push(setInterval(
          () => this.#sendVideoFrame(stream),
          1000 / profile.videoFps,
        ));
      }
    }
  }

  stop(): void {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
  }

  /** Each stream's tag and the SSRC it is sent with. */
  get streams(): TaggedStream[] {
    return this.#streams.map((s) => ({
      tag: s.tag,
      ssrc: s.transceiver.sender.ssrc,
    }));
  }

  /** Packets sent so far, by tag. */
  sent(): Record<number, number> {
    const sent: Record<number, number> = {};
    for (const stream of this.#streams) sent[stream.tag] = stream.packets;
    return sent;
  }

  #sendAudio(stream: OutgoingStream): void {
    const payload = makePayload(
      "opus",
      this.#profile.audioPacketBytes,
      false,
      stream.tag,
      stream.packets,
      wallClockMs(),
    );
    this.#write(stream, payload, false);
    stream.timestamp = (stream.timestamp +
      48000 / this.#profile.audioPacketsPerSecond) >>> 0;
  }

  #sendVideoFrame(stream: OutgoingStream): void {
    const profile = this.#profile;
    const keyframe = stream.keyframeWanted ||
      stream.frames % profile.keyframeIntervalFrames === 0;
    stream.keyframeWanted = false;
    const count = keyframe
      ? profile.keyframePacketsPerFrame
      : profile.videoPacketsPerFrame;
    const sentAtMs = wallClockMs();
    for (let i = 0; i < count; i++) {
      const payload = makePayload(
        "vp8",
        profile.videoPacketBytes,
        keyframe,
        stream.tag,
        stream.packets,
        sentAtMs,
      );
      // Only a frame's first packet starts the VP8 partition and carries the
      // frame tag that marks a keyframe.
      if (i > 0) payload[0] = VP8_CONTINUATION;
      this.#write(stream, payload, i === count - 1);
    }
    stream.frames++;
    stream.timestamp = (stream.timestamp + 90000 / profile.videoFps) >>> 0;
  }

  #write(stream: OutgoingStream, payload: Uint8Array, marker: boolean): void {
    stream.sequenceNumber = (stream.sequenceNumber + 1) & 0xffff;
    stream.packets++;
    const header = new RtpHeader({
      sequenceNumber: stream.sequenceNumber,
      timestamp: Math.floor(stream.timestamp),
      marker,
      payloadType: 0, // werift's writeRtp sets the negotiated one
    });
    stream.track.writeRtp(new RtpPacket(header, Buffer.from(payload)));
  }
}
