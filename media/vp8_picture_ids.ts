// A VP8 subscriber's decoder follows frames by the picture id and TL0PICIDX
// in each payload descriptor (RFC 7741), not only by RTP sequence numbers.
// When its stream switches source (another simulcast layer, another trunk
// route) those ids jump, and libwebrtc may then take the new frames for old
// ones or wait for references it will never get. So, like the sequence
// numbers, they are rebased to continue from the last ones sent. Payloads
// are shared by every subscriber of a track, so a rewritten one is a copy in
// a scratch buffer, made only while an offset applies.
import { PacketScratch } from "./packet_scratch.ts";

/** Where a payload descriptor's ids are, as read by locate(). */
interface Located {
  /** Offset of the picture id, or -1 if absent. */
  pictureIdAt: number;
  /** 15 or 7 (bits of the picture id). */
  pictureIdBits: number;
  /** Offset of TL0PICIDX, or -1 if absent. */
  tl0At: number;
}

/** Finds the picture id and TL0PICIDX in a VP8 payload descriptor; false
 * for a payload too short to hold what its flags announce. */
export function locateVp8Ids(payload: Uint8Array, out: Located): boolean {
  out.pictureIdAt = -1;
  out.tl0At = -1;
  const length = payload.length;
  if (length < 1) return false;
  if ((payload[0] & 0x80) === 0) return true; // no extensions: no ids
  if (length < 2) return false;
  const extensions = payload[1];
  let offset = 2;
  if (extensions & 0x80) {
    if (offset >= length) return false;
    const wide = (payload[offset] & 0x80) !== 0;
    out.pictureIdAt = offset;
    out.pictureIdBits = wide ? 15 : 7;
    offset += wide ? 2 : 1;
  }
  if (extensions & 0x40) {
    if (offset >= length) return false;
    out.tl0At = offset;
    offset++;
  }
  return offset <= length;
}

function readPictureId(payload: Uint8Array, at: number, bits: number): number {
  return bits === 15
    ? ((payload[at] & 0x7f) << 8) | payload[at + 1]
    : payload[at] & 0x7f;
}

function writePictureId(
  payload: Uint8Array,
  at: number,
  bits: number,
  id: number,
): void {
  if (bits === 15) {
    payload[at] = 0x80 | ((id >> 8) & 0x7f);
    payload[at + 1] = id & 0xff;
  } else {
    payload[at] = id & 0x7f;
  }
}

const pictureIdMask = (bits: number) => bits === 15 ? 0x7fff : 0x7f;

/** Rewritten payloads live here until sent; sending seals them into the
 * SRTP scratch synchronously, so one buffer serves every subscriber. */
const scratch = new PacketScratch(1500);

/** A packet goes to its subscribers one after another, and payloads are
 * never changed once received: the descriptor is read once per packet, not
 * once per subscriber. */
const located: Located = { pictureIdAt: -1, pictureIdBits: 15, tl0At: -1 };
let locatedPayload: Uint8Array | undefined;
let locatedWell = false;

function locate(payload: Uint8Array): boolean {
  if (payload !== locatedPayload) {
    locatedWell = locateVp8Ids(payload, located);
    locatedPayload = payload;
  }
  return locatedWell;
}

export class Vp8PictureIds {
  #pictureIdOffset = 0;
  #tl0Offset = 0;
  /** The newest ids sent, or -1 before any. */
  #lastPictureId = -1;
  #lastTl0 = -1;

  /** A new run of packets starts with `payload` (a keyframe's first): its
   * ids are made to follow the last ones sent. */
  rebase(payload: Uint8Array): void {
    if (!locate(payload)) return;
    if (located.pictureIdAt >= 0 && this.#lastPictureId >= 0) {
      const bits = located.pictureIdBits;
      const id = readPictureId(payload, located.pictureIdAt, bits);
      this.#pictureIdOffset = (this.#lastPictureId + 1 - id) &
        pictureIdMask(bits);
    }
    if (located.tl0At >= 0 && this.#lastTl0 >= 0) {
      this.#tl0Offset = (this.#lastTl0 + 1 - payload[located.tl0At]) & 0xff;
    }
  }

  /** The payload to send: `payload` itself while no offset applies, else a
   * rewritten copy valid until the next call. `newest` says the packet is
   * the newest sent so far (not a retransmission), so its ids are the ones
   * the next run continues from. */
  rewrite(payload: Uint8Array, newest: boolean): Uint8Array {
    if (!locate(payload)) return payload;
    const pictureIdAt = located.pictureIdAt;
    const tl0At = located.tl0At;
    let out = payload;
    if (
      (this.#pictureIdOffset !== 0 && pictureIdAt >= 0) ||
      (this.#tl0Offset !== 0 && tl0At >= 0)
    ) {
      out = scratch.fitting(payload.length).upTo(payload.length);
      out.set(payload);
    }
    if (pictureIdAt >= 0) {
      const bits = located.pictureIdBits;
      const id = (readPictureId(payload, pictureIdAt, bits) +
        this.#pictureIdOffset) & pictureIdMask(bits);
      if (out !== payload) writePictureId(out, pictureIdAt, bits, id);
      if (newest) this.#lastPictureId = id;
    }
    if (tl0At >= 0) {
      const tl0 = (payload[tl0At] + this.#tl0Offset) & 0xff;
      if (out !== payload) out[tl0At] = tl0;
      if (newest) this.#lastTl0 = tl0;
    }
    return out;
  }
}
