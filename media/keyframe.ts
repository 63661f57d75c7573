// Recognises the first packet of a keyframe from the RTP payload alone, so a
// subscriber that joins or recovers starts forwarding at a point its decoder
// can begin from. Payloads come from the network: every read is bounds
// checked and anything malformed is simply "not a keyframe start".

/** Whether payload is the first RTP packet of a keyframe. mimeTypeLower is
 * the codec's MIME type in lower case; other codecs give false. */
export function isKeyframeStart(
  mimeTypeLower: "video/vp8" | "video/h264" | string,
  payload: Uint8Array,
): boolean {
  if (mimeTypeLower === "video/vp8") return isVp8KeyframeStart(payload);
  if (mimeTypeLower === "video/h264") return isH264KeyframeStart(payload);
  return false;
}

/** RFC 7741: the payload descriptor, then (at the start of partition 0) the
 * VP8 frame tag, whose lowest bit is 0 for a keyframe. */
function isVp8KeyframeStart(payload: Uint8Array): boolean {
  const length = payload.length;
  if (length < 1) return false;
  const first = payload[0];
  const startOfPartition = (first & 0x10) !== 0;
  const partitionIndex = first & 0x07;
  if (!startOfPartition || partitionIndex !== 0) return false;
  let offset = 1;
  if (first & 0x80) {
    if (offset >= length) return false;
    const extensions = payload[offset++];
    if (extensions & 0x80) {
      if (offset >= length) return false;
      // M bit: the picture id is 15 bits (two bytes) instead of 7.
      offset += payload[offset] & 0x80 ? 2 : 1;
    }
    if (extensions & 0x40) offset++; // TL0PICIDX
    if (extensions & 0x30) offset++; // TID/Y/KEYIDX, present if T or K
  }
  const frameTagBytes = 3;
  if (offset + frameTagBytes > length) return false;
  return (payload[offset] & 0x01) === 0;
}

const IDR = 5;
const SPS = 7;
const STAP_A = 24;
const FU_A = 28;

/** Reused by isH264KeyframeStart so the check allocates nothing. */
const nalTypesScratch: number[] = [];

/** RFC 6184: a decoder can start at an SPS (parameter sets precede the IDR)
 * or at an IDR slice. */
function isH264KeyframeStart(payload: Uint8Array): boolean {
  const count = h264NalTypesInPayload(payload, nalTypesScratch);
  for (let i = 0; i < count; i++) {
    const type = nalTypesScratch[i];
    if (type === IDR || type === SPS) return true;
  }
  return false;
}

/** Writes into out (from index 0) the types of the H.264 NAL units that begin
 * in one RTP payload: a single NAL unit, each unit of a STAP-A, or the unit a
 * starting FU-A fragment belongs to. Returns how many; 0 for a continuing
 * FU-A, for modes WebRTC does not use (STAP-B, MTAP, FU-B) and for any
 * malformed payload, since nothing in one can be trusted. */
export function h264NalTypesInPayload(
  payload: Uint8Array,
  out: number[],
): number {
  const length = payload.length;
  if (length < 1) return 0;
  const header = payload[0];
  if (header & 0x80) return 0; // forbidden_zero_bit: the sender flags a damaged unit
  const type = header & 0x1f;
  if (type >= 1 && type <= 23) {
    out[0] = type;
    return 1;
  }
  if (type === STAP_A) {
    let count = 0;
    let offset = 1;
    while (offset < length) {
      if (offset + 2 > length) return 0;
      const size = (payload[offset] << 8) | payload[offset + 1];
      offset += 2;
      if (size === 0 || offset + size > length) return 0;
      const unitHeader = payload[offset];
      if (unitHeader & 0x80) return 0;
      out[count++] = unitHeader & 0x1f;
      offset += size;
    }
    return count;
  }
  if (type === FU_A) {
    if (length < 2) return 0;
    const fuHeader = payload[1];
    const start = (fuHeader & 0x80) !== 0;
    if (!start) return 0;
    out[0] = fuHeader & 0x1f;
    return 1;
  }
  return 0;
}
