// Synthetic media for test and benchmark peers. Every payload is a real codec
// payload (a VP8 descriptor or an H.264 NAL header, with keyframes where a
// decoder expects them) followed by a body that is a pure function of
// (tag, counter) and carries the send time, so a receiver can prove the SFU
// delivered the bytes unchanged and measure latency through it.

const MAGIC = 0x554d4231; // "UMB1"
/** Bytes before the body: 1 codec byte(s) are prepended by the caller. */
const BODY_HEADER = 4 + 4 + 4 + 8;

export type SyntheticCodec = "opus" | "vp8" | "h264";

export interface PayloadInfo {
  tag: number;
  counter: number;
  sentAtMs: number;
  intact: boolean;
}

/** A 32-bit tag naming a track in tests (e.g. participant * 16 + track). */
export function writeBody(
  out: Uint8Array,
  offset: number,
  tag: number,
  counter: number,
  sentAtMs: number,
): void {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint32(offset, MAGIC);
  view.setUint32(offset + 4, tag);
  view.setUint32(offset + 8, counter);
  view.setFloat64(offset + 12, sentAtMs);
  let x = (tag * 2654435761 + counter * 40503) >>> 0;
  for (let i = offset + BODY_HEADER; i < out.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
}

export function readBody(
  payload: Uint8Array,
  offset: number,
): PayloadInfo | undefined {
  if (payload.length < offset + BODY_HEADER) return undefined;
  const view = new DataView(
    payload.buffer,
    payload.byteOffset,
    payload.byteLength,
  );
  if (view.getUint32(offset) !== MAGIC) return undefined;
  const tag = view.getUint32(offset + 4);
  const counter = view.getUint32(offset + 8);
  const sentAtMs = view.getFloat64(offset + 12);
  let x = (tag * 2654435761 + counter * 40503) >>> 0;
  let intact = true;
  for (let i = offset + BODY_HEADER; i < payload.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    if (payload[i] !== x >>> 24) {
      intact = false;
      break;
    }
  }
  return { tag, counter, sentAtMs, intact };
}

/** Offset of the synthetic body inside a payload of the given codec. */
export function bodyOffset(codec: SyntheticCodec): number {
  // VP8: 1-byte descriptor + 3-byte frame tag; H.264: 1-byte NAL header.
  return codec === "vp8" ? 4 : codec === "h264" ? 1 : 0;
}

/** One packet's payload (each synthetic video frame is one packet). */
export function makePayload(
  codec: SyntheticCodec,
  size: number,
  keyframe: boolean,
  tag: number,
  counter: number,
  sentAtMs: number,
): Uint8Array {
  const offset = bodyOffset(codec);
  const payload = new Uint8Array(Math.max(size, offset + BODY_HEADER));
  if (codec === "vp8") {
    payload[0] = 0x10; // S=1, partition 0
    // Frame tag: bit 0 is the inverse keyframe flag (P), show_frame set.
    payload[1] = keyframe ? 0x10 : 0x11;
    payload[2] = 0;
    payload[3] = 0;
  } else if (codec === "h264") {
    payload[0] = keyframe ? 0x65 : 0x41; // IDR slice : non-IDR slice
  }
  writeBody(payload, offset, tag, counter, sentAtMs);
  return payload;
}

/** H.264 SPS and PPS as sent before an IDR (constrained baseline 3.1). */
export const H264_PARAMETER_SETS = [
  Uint8Array.from([0x67, 0x42, 0xe0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8]),
  Uint8Array.from([0x68, 0xce, 0x38, 0x80]),
];
