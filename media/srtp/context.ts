// SRTP and SRTCP (RFC 3711) with the two profiles WebRTC negotiates through
// DTLS-SRTP: AES_CM_128_HMAC_SHA1_80 and AEAD_AES_128_GCM (RFC 7714). One
// SrtpContext holds one direction's session keys and the per-SSRC state;
// every cipher context is created once, and a packet costs one output buffer.
//
// Output is byte-identical to werift 0.25.2's SRTP for the same input, with
// these deliberate differences, all where werift departs from the RFC:
// - The rollover counter is estimated as in RFC 3711 Appendix A on both
//   sides (werift only counts a wrap when the sequence number crosses zero
//   within 100 of it, and counts one whenever sequence number 0 follows
//   any number above 100).
// - Unprotect rejects replayed packets (RFC 3711 §3.3.2), with a 1024-packet
//   window like libwebrtc's, for SRTP and SRTCP alike.
// - Malformed input is rejected with SrtpError, never a RangeError.
import { Buffer } from "node:buffer";
import {
  type CtrCipher,
  type GcmCipher,
  type HmacSha1,
  selectSrtpBackend,
  type SrtpCryptoBackend,
} from "./backend.ts";
import { PacketScratch } from "../packet_scratch.ts";

export const SRTP_AES128_CM_HMAC_SHA1_80 = 0x0001;
export const SRTP_AEAD_AES_128_GCM = 0x0007;
export type SrtpProfile =
  | typeof SRTP_AES128_CM_HMAC_SHA1_80
  | typeof SRTP_AEAD_AES_128_GCM;

export function isSupportedSrtpProfile(
  profile: number,
): profile is SrtpProfile {
  return profile === SRTP_AES128_CM_HMAC_SHA1_80 ||
    profile === SRTP_AEAD_AES_128_GCM;
}

/** Master key and salt lengths (RFC 5764 §4.1.2, RFC 7714 §12). */
export function masterKeyLengths(
  profile: SrtpProfile,
): { key: number; salt: number } {
  return { key: 16, salt: profile === SRTP_AEAD_AES_128_GCM ? 12 : 14 };
}

/** A packet that cannot be authenticated, decrypted or protected. */
export class SrtpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SrtpError";
  }
}

export interface SrtpSessionKeys {
  rtpKey: Uint8Array;
  /** 14 bytes for AES-CM, 12 for GCM. */
  rtpSalt: Uint8Array;
  /** 20 bytes; unused by GCM. */
  rtpAuthKey: Uint8Array;
  rtcpKey: Uint8Array;
  rtcpSalt: Uint8Array;
  rtcpAuthKey: Uint8Array;
}

const LABEL_RTP_KEY = 0, LABEL_RTP_AUTH = 1, LABEL_RTP_SALT = 2;
const LABEL_RTCP_KEY = 3, LABEL_RTCP_AUTH = 4, LABEL_RTCP_SALT = 5;

/** RFC 3711 §4.3 key derivation with a key derivation rate of 0, the only
 * one DTLS-SRTP uses. A GCM master salt (12 bytes) is zero-padded to 14, as
 * libsrtp and werift do (RFC 7714 §11). */
export function deriveSessionKeys(
  profile: SrtpProfile,
  masterKey: Uint8Array,
  masterSalt: Uint8Array,
  backend: SrtpCryptoBackend = selectSrtpBackend().backend,
): SrtpSessionKeys {
  const lengths = masterKeyLengths(profile);
  if (masterKey.length !== lengths.key || masterSalt.length !== lengths.salt) {
    throw new SrtpError(
      `profile ${profile} needs a ${lengths.key}-byte master key and ` +
        `${lengths.salt}-byte master salt, got ${masterKey.length} and ${masterSalt.length}`,
    );
  }
  // The PRF is AES-CM keyed with the master key, started at the counter
  // (master salt XOR label at byte 7) * 2^16.
  const prf = backend.createCtr(masterKey);
  try {
    const saltLength = lengths.salt;
    const derive = (label: number, length: number) => {
      const iv = new Uint8Array(16);
      iv.set(masterSalt);
      iv[7] ^= label;
      const out = new Uint8Array(length);
      prf.apply(iv, new Uint8Array(length), out);
      return out;
    };
    return {
      rtpKey: derive(LABEL_RTP_KEY, 16),
      rtpSalt: derive(LABEL_RTP_SALT, saltLength),
      rtpAuthKey: derive(LABEL_RTP_AUTH, 20),
      rtcpKey: derive(LABEL_RTCP_KEY, 16),
      rtcpSalt: derive(LABEL_RTCP_SALT, saltLength),
      rtcpAuthKey: derive(LABEL_RTCP_AUTH, 20),
    };
  } finally {
    prf.dispose();
  }
}

const RTP_HEADER = 12;
const RTCP_HEADER = 8;
const CM_TAG = 10;
const GCM_TAG = 16;
const SRTCP_INDEX = 4;
const SHA1 = 20;
const SEQ_MODULUS = 0x10000;
const MAX_SRTCP_INDEX = 0x7fffffff;
/** Per-context cap on tracked SSRCs, so an authenticated but abusive peer
 * cannot grow memory by cycling SSRCs; the oldest is forgotten first. */
const MAX_SSRCS = 1024;

/** Packets at most this far behind the newest are checked for replay; older
 * ones are refused (libwebrtc uses the same window). */
export const REPLAY_WINDOW = 1024;

/** Received packet indices (48-bit SRTP or 31-bit SRTCP) within
 * REPLAY_WINDOW of the highest one authenticated so far. */
class ReplayWindow {
  highest: number;
  /** Bit (index mod REPLAY_WINDOW) marks an index already received. */
  readonly #seen = new Uint32Array(REPLAY_WINDOW / 32);

  constructor(first: number) {
    this.highest = first;
    this.#mark(first);
  }

  /** Why `index` must be refused, or undefined when it may be accepted. */
  reject(index: number): string | undefined {
    const behind = this.highest - index;
    if (behind < 0) return undefined;
    if (behind >= REPLAY_WINDOW) return "too old for the replay window";
    const slot = index % REPLAY_WINDOW;
    return (this.#seen[slot >>> 5] & (1 << (slot & 31))) !== 0
      ? "replayed"
      : undefined;
  }

  /** Records an authenticated index that reject() allowed. */
  accept(index: number): void {
    const ahead = index - this.highest;
    if (ahead >= REPLAY_WINDOW) {
      this.#seen.fill(0);
    } else {
      for (let skipped = this.highest + 1; skipped < index; skipped++) {
        const slot = skipped % REPLAY_WINDOW;
        this.#seen[slot >>> 5] &= ~(1 << (slot & 31));
      }
    }
    if (ahead > 0) this.highest = index;
    this.#mark(index);
  }

  #mark(index: number): void {
    const slot = index % REPLAY_WINDOW;
    this.#seen[slot >>> 5] |= 1 << (slot & 31);
  }
}

/** The rollover counter a sequence number most likely belongs to, given the
 * highest index seen so far (RFC 3711 Appendix A); -1 when it would precede
 * the stream's first rollover period. */
function estimateRoc(highestIndex: number, seq: number): number {
  const roc = Math.floor(highestIndex / SEQ_MODULUS);
  const last = highestIndex - roc * SEQ_MODULUS;
  if (last < 0x8000) return seq - last > 0x8000 ? roc - 1 : roc;
  return last - 0x8000 > seq ? roc + 1 : roc;
}

function evictOldest<V>(states: Map<number, V>): void {
  if (states.size >= MAX_SSRCS) {
    states.delete(states.keys().next().value!);
  }
}

/** Length of the RTP header at the start of `packet`, or -1 when it is not
 * an RTP version 2 header that fits in the first `limit` bytes. */
function rtpHeaderLength(packet: Uint8Array, limit: number): number {
  if (limit < RTP_HEADER || packet[0] >> 6 !== 2) return -1;
  let length = RTP_HEADER + 4 * (packet[0] & 0x0f);
  if (packet[0] & 0x10) {
    if (length + 4 > limit) return -1;
    length += 4 + 4 * ((packet[length + 2] << 8) | packet[length + 3]);
  }
  return length <= limit ? length : -1;
}

const readU32 = (b: Uint8Array, o: number) =>
  ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

function writeU32(b: Uint8Array, o: number, value: number): void {
  b[o] = value >>> 24;
  b[o + 1] = value >>> 16;
  b[o + 2] = value >>> 8;
  b[o + 3] = value;
}

/** Compares the first `length` bytes of a at aOffset and b without an early
 * exit, so timing does not reveal how much of a forged tag was right. */
function tagsEqual(
  a: Uint8Array,
  aOffset: number,
  b: Uint8Array,
  length: number,
): boolean {
  let diff = 0;
  for (let i = 0; i < length; i++) diff |= a[aOffset + i] ^ b[i];
  return diff === 0;
}

/** Large enough for any RTP packet protectRtp is given in practice; a
 * larger one gets a scratch of its own. */
const protectScratch = new PacketScratch(2048);

/** One direction of an SRTP session: protect on the sending side, unprotect
 * on the receiving side. Not safe to share between the two directions of a
 * call (each has its own master key). */
export class SrtpContext {
  readonly profile: SrtpProfile;
  readonly backend: SrtpCryptoBackend;
  /** Bytes protectRtp adds to a packet. */
  readonly rtpOverhead: number;
  /** Bytes protectRtcp adds to a packet. */
  readonly rtcpOverhead: number;

  readonly #gcmMode: boolean;
  readonly #rtpSalt: Uint8Array;
  readonly #rtcpSalt: Uint8Array;
  readonly #rtpCtr: CtrCipher | undefined;
  readonly #rtcpCtr: CtrCipher | undefined;
  readonly #rtpHmac: HmacSha1 | undefined;
  readonly #rtcpHmac: HmacSha1 | undefined;
  readonly #rtpGcm: GcmCipher | undefined;
  readonly #rtcpGcm: GcmCipher | undefined;

  /** Highest RTP packet index sent per SSRC. */
  readonly #sent = new Map<number, { highest: number }>();
  #lastSentSsrc = -1;
  #lastSent: { highest: number } | undefined;
  readonly #received = new Map<number, ReplayWindow>();
  /** Last SRTCP index sent per SSRC. */
  readonly #rtcpSent = new Map<number, { index: number }>();
  readonly #rtcpReceived = new Map<number, ReplayWindow>();

  // Per-packet scratch, so the hot path allocates only its output.
  readonly #iv: Uint8Array;
  readonly #digest = new Uint8Array(SHA1);
  readonly #rtcpAad = new Uint8Array(RTCP_HEADER + SRTCP_INDEX);
  #plainRtcpAad = new Uint8Array(0);

  constructor(
    profile: SrtpProfile,
    keys: SrtpSessionKeys,
    backend: SrtpCryptoBackend = selectSrtpBackend().backend,
  ) {
    if (!isSupportedSrtpProfile(profile)) {
      throw new SrtpError(`unsupported SRTP profile ${profile}`);
    }
    this.profile = profile;
    this.backend = backend;
    this.#gcmMode = profile === SRTP_AEAD_AES_128_GCM;
    const saltLength = this.#gcmMode ? 12 : 14;
    if (keys.rtpSalt.length < saltLength || keys.rtcpSalt.length < saltLength) {
      throw new SrtpError(`profile ${profile} needs ${saltLength}-byte salts`);
    }
    this.#rtpSalt = keys.rtpSalt.slice(0, saltLength);
    this.#rtcpSalt = keys.rtcpSalt.slice(0, saltLength);
    this.#iv = new Uint8Array(this.#gcmMode ? 12 : 16);
    if (this.#gcmMode) {
      this.#rtpGcm = backend.createGcm(keys.rtpKey);
      this.#rtcpGcm = backend.createGcm(keys.rtcpKey);
      this.rtpOverhead = GCM_TAG;
      this.rtcpOverhead = GCM_TAG + SRTCP_INDEX;
    } else {
      this.#rtpCtr = backend.createCtr(keys.rtpKey);
      this.#rtcpCtr = backend.createCtr(keys.rtcpKey);
      this.#rtpHmac = backend.createHmacSha1(keys.rtpAuthKey);
      this.#rtcpHmac = backend.createHmacSha1(keys.rtcpAuthKey);
      this.rtpOverhead = CM_TAG;
      this.rtcpOverhead = SRTCP_INDEX + CM_TAG;
    }
  }

  /** A context from DTLS-SRTP master keying material. */
  static fromMasterKey(
    profile: SrtpProfile,
    masterKey: Uint8Array,
    masterSalt: Uint8Array,
    backend: SrtpCryptoBackend = selectSrtpBackend().backend,
  ): SrtpContext {
    return new SrtpContext(
      profile,
      deriveSessionKeys(profile, masterKey, masterSalt, backend),
      backend,
    );
  }

  /** Frees the native cipher contexts now instead of at garbage collection;
   * the context must not be used afterwards. */
  dispose(): void {
    this.#rtpCtr?.dispose();
    this.#rtcpCtr?.dispose();
    this.#rtpHmac?.dispose();
    this.#rtcpHmac?.dispose();
    this.#rtpGcm?.dispose();
    this.#rtcpGcm?.dispose();
  }

  /** Protects a plaintext RTP packet into a new buffer. */
  protectRtp(packet: Uint8Array): Buffer {
    const headerLength = rtpHeaderLength(packet, packet.length);
    if (headerLength < 0) throw new SrtpError("not an RTP packet");
    const scratch = protectScratch.fitting(packet.length + this.rtpOverhead);
    scratch.bytes.set(packet.subarray(0, headerLength));
    return Buffer.from(
      this.sealRtp(scratch, headerLength, packet.subarray(headerLength)),
    );
  }

  /** The low-level protect for callers that write the header themselves:
   * scratch.bytes[0, headerLength) holds the RTP header, `payload` is
   * encrypted after it and the tag appended. Returns the packet's view of
   * the scratch; throws if it would not fit. */
  sealRtp(
    scratch: PacketScratch,
    headerLength: number,
    payload: Uint8Array,
  ): Uint8Array {
    const payloadEnd = headerLength + payload.length;
    const length = payloadEnd + this.rtpOverhead;
    if (length > scratch.size || headerLength < RTP_HEADER) {
      throw new SrtpError(
        `sealRtp: ${length} bytes of header + payload + tag do not fit`,
      );
    }
    const out = scratch.bytes;
    const seq = (out[2] << 8) | out[3];
    const ssrc = readU32(out, 8);
    const roc = this.#sendRoc(ssrc, seq);
    const iv = this.#iv;
    if (this.#gcmMode) {
      this.#rtpGcmIv(ssrc, roc, seq);
      this.#rtpGcm!.seal(
        iv,
        scratch.upTo(headerLength),
        payload,
        scratch.from(headerLength),
        scratch.from(payloadEnd),
      );
      return scratch.upTo(length);
    }
    this.#ctrIv(this.#rtpSalt, ssrc, roc, seq);
    this.#rtpCtr!.apply(iv, payload, scratch.from(headerLength));
    // The MAC covers header, ciphertext and ROC; the ROC goes where the tag
    // will be, so one contiguous update covers all three.
    writeU32(out, payloadEnd, roc);
    const digest = this.#digest;
    this.#rtpHmac!.sign(scratch.upTo(payloadEnd + 4), digest);
    for (let i = 0; i < CM_TAG; i++) out[payloadEnd + i] = digest[i];
    return scratch.upTo(length);
  }

  /** Authenticates and decrypts an SRTP packet into a new buffer holding the
   * RTP packet (padding included). Throws SrtpError for anything that is not
   * an authentic, fresh packet; the input is never modified. */
  unprotectRtp(packet: Uint8Array): Buffer {
    const tagLength = this.rtpOverhead;
    const payloadEnd = packet.length - tagLength;
    const headerLength = rtpHeaderLength(packet, payloadEnd);
    if (headerLength < 0) throw new SrtpError("not an SRTP packet");
    const seq = (packet[2] << 8) | packet[3];
    const ssrc = readU32(packet, 8);
    const window = this.#received.get(ssrc);
    let roc = 0;
    if (window) {
      roc = estimateRoc(window.highest, seq);
      if (roc < 0) throw new SrtpError("SRTP packet from before the stream");
      const refused = window.reject(roc * SEQ_MODULUS + seq);
      if (refused) throw new SrtpError(`SRTP packet ${refused}`);
    }
    let out: Buffer;
    if (this.#gcmMode) {
      out = Buffer.allocUnsafe(payloadEnd);
      const header = packet.subarray(0, headerLength);
      out.set(header);
      this.#rtpGcmIv(ssrc, roc, seq);
      const authentic = this.#rtpGcm!.open(
        this.#iv,
        header,
        packet.subarray(headerLength, payloadEnd),
        out.subarray(headerLength),
        packet.subarray(payloadEnd),
      );
      if (!authentic) throw new SrtpError("SRTP authentication failed");
    } else {
      // Room for the ROC after the packet, so the MAC is one update.
      const scratch = Buffer.allocUnsafe(payloadEnd + 4);
      scratch.set(packet.subarray(0, payloadEnd));
      writeU32(scratch, payloadEnd, roc);
      const digest = this.#digest;
      this.#rtpHmac!.sign(scratch, digest);
      if (!tagsEqual(packet, payloadEnd, digest, CM_TAG)) {
        throw new SrtpError("SRTP authentication failed");
      }
      out = scratch.subarray(0, payloadEnd);
      this.#ctrIv(this.#rtpSalt, ssrc, roc, seq);
      const payload = out.subarray(headerLength);
      this.#rtpCtr!.apply(this.#iv, payload, payload);
    }
    if (packet[0] & 0x20) {
      const padding = out[payloadEnd - 1];
      if (padding === 0 || padding > payloadEnd - headerLength) {
        throw new SrtpError("SRTP packet with invalid padding");
      }
    }
    const index = roc * SEQ_MODULUS + seq;
    if (window) {
      window.accept(index);
    } else {
      evictOldest(this.#received);
      this.#received.set(ssrc, new ReplayWindow(index));
    }
    return out;
  }

  /** Protects a plaintext (compound) RTCP packet into a new buffer, always
   * encrypted, with the next SRTCP index of its first packet's SSRC. */
  protectRtcp(packet: Uint8Array): Buffer {
    const length = packet.length;
    if (length < RTCP_HEADER) throw new SrtpError("RTCP packet too short");
    const ssrc = readU32(packet, 4);
    let sent = this.#rtcpSent.get(ssrc);
    if (!sent) {
      evictOldest(this.#rtcpSent);
      sent = { index: 0 };
      this.#rtcpSent.set(ssrc, sent);
    }
    // First index 1, and 0 after 2^31 - 1, as werift counts.
    const index = sent.index = sent.index >= MAX_SRTCP_INDEX
      ? 0
      : sent.index + 1;
    const out = Buffer.allocUnsafe(length + this.rtcpOverhead);
    for (let i = 0; i < RTCP_HEADER; i++) out[i] = packet[i];
    const body = packet.subarray(RTCP_HEADER);
    if (this.#gcmMode) {
      const aad = this.#rtcpAad;
      for (let i = 0; i < RTCP_HEADER; i++) aad[i] = packet[i];
      writeU32(aad, RTCP_HEADER, (index | 0x80000000) >>> 0);
      this.#rtcpGcmIv(ssrc, index);
      this.#rtcpGcm!.seal(
        this.#iv,
        aad,
        body,
        out.subarray(RTCP_HEADER),
        out.subarray(length),
      );
      writeU32(out, length + GCM_TAG, (index | 0x80000000) >>> 0);
      return out;
    }
    this.#ctrIv(this.#rtcpSalt, ssrc, index >>> 16, index & 0xffff);
    this.#rtcpCtr!.apply(this.#iv, body, out.subarray(RTCP_HEADER));
    writeU32(out, length, (index | 0x80000000) >>> 0);
    const digest = this.#digest;
    this.#rtcpHmac!.sign(out.subarray(0, length + SRTCP_INDEX), digest);
    for (let i = 0; i < CM_TAG; i++) out[length + SRTCP_INDEX + i] = digest[i];
    return out;
  }

  /** Authenticates and (when its E flag is set) decrypts an SRTCP packet
   * into a new buffer. Throws SrtpError like unprotectRtp. */
  unprotectRtcp(packet: Uint8Array): Buffer {
    const length = packet.length;
    if (length < RTCP_HEADER + this.rtcpOverhead) {
      throw new SrtpError("SRTCP packet too short");
    }
    const indexOffset = this.#gcmMode
      ? length - SRTCP_INDEX
      : length - CM_TAG - SRTCP_INDEX;
    const plainEnd = length - this.rtcpOverhead;
    const word = readU32(packet, indexOffset);
    const encrypted = word >= 0x80000000;
    const index = word & MAX_SRTCP_INDEX;
    const ssrc = readU32(packet, 4);
    const window = this.#rtcpReceived.get(ssrc);
    const refused = window?.reject(index);
    if (refused) throw new SrtpError(`SRTCP packet ${refused}`);
    const out = Buffer.allocUnsafe(plainEnd);
    if (this.#gcmMode) {
      this.#rtcpGcmIv(ssrc, index);
      const tag = packet.subarray(plainEnd, indexOffset);
      let authentic: boolean;
      if (encrypted) {
        const aad = this.#rtcpAad;
        for (let i = 0; i < RTCP_HEADER; i++) aad[i] = out[i] = packet[i];
        writeU32(aad, RTCP_HEADER, word);
        authentic = this.#rtcpGcm!.open(
          this.#iv,
          aad,
          packet.subarray(RTCP_HEADER, plainEnd),
          out.subarray(RTCP_HEADER),
          tag,
        );
      } else {
        // Unencrypted SRTCP: the whole packet is authenticated data.
        if (this.#plainRtcpAad.length < plainEnd + SRTCP_INDEX) {
          this.#plainRtcpAad = new Uint8Array(plainEnd + SRTCP_INDEX);
        }
        const aad = this.#plainRtcpAad.subarray(0, plainEnd + SRTCP_INDEX);
        aad.set(packet.subarray(0, plainEnd));
        writeU32(aad, plainEnd, word);
        out.set(packet.subarray(0, plainEnd));
        authentic = this.#rtcpGcm!.open(
          this.#iv,
          aad,
          packet.subarray(0, 0),
          out.subarray(0, 0),
          tag,
        );
      }
      if (!authentic) throw new SrtpError("SRTCP authentication failed");
    } else {
      const digest = this.#digest;
      this.#rtcpHmac!.sign(
        packet.subarray(0, indexOffset + SRTCP_INDEX),
        digest,
      );
      if (!tagsEqual(packet, indexOffset + SRTCP_INDEX, digest, CM_TAG)) {
        throw new SrtpError("SRTCP authentication failed");
      }
      for (let i = 0; i < RTCP_HEADER; i++) out[i] = packet[i];
      const body = packet.subarray(RTCP_HEADER, plainEnd);
      if (encrypted) {
        this.#ctrIv(this.#rtcpSalt, ssrc, index >>> 16, index & 0xffff);
        this.#rtcpCtr!.apply(this.#iv, body, out.subarray(RTCP_HEADER));
      } else {
        out.set(body, RTCP_HEADER);
      }
    }
    if (window) {
      window.accept(index);
    } else {
      evictOldest(this.#rtcpReceived);
      this.#rtcpReceived.set(ssrc, new ReplayWindow(index));
    }
    return out;
  }

  /** The rollover counter for an outgoing packet; the stream's state only
   * moves forward, so retransmissions of older packets keep their ROC. */
  #sendRoc(ssrc: number, seq: number): number {
    // Packets come in runs of one SSRC (a video frame), so the last state
    // used spares most Map lookups.
    let sent = ssrc === this.#lastSentSsrc
      ? this.#lastSent
      : this.#sent.get(ssrc);
    const first = sent === undefined;
    if (sent === undefined) {
      evictOldest(this.#sent);
      sent = { highest: seq };
      this.#sent.set(ssrc, sent);
    }
    this.#lastSentSsrc = ssrc;
    this.#lastSent = sent;
    if (first) return 0;
    // Before the first packet's period there is nothing to go back to;
    // werift also stays at ROC 0 there.
    const roc = Math.max(0, estimateRoc(sent.highest, seq));
    const index = roc * SEQ_MODULUS + seq;
    if (index > sent.highest) sent.highest = index;
    return roc;
  }

  /** RFC 3711 §4.1.1: (salt * 2^16) XOR (SSRC * 2^64) XOR (index * 2^16). */
  #ctrIv(salt: Uint8Array, ssrc: number, roc: number, seq: number): void {
    const iv = this.#iv;
    for (let i = 0; i < 14; i++) iv[i] = salt[i];
    iv[14] = 0;
    iv[15] = 0;
    iv[4] ^= ssrc >>> 24;
    iv[5] ^= ssrc >>> 16;
    iv[6] ^= ssrc >>> 8;
    iv[7] ^= ssrc;
    iv[8] ^= roc >>> 24;
    iv[9] ^= roc >>> 16;
    iv[10] ^= roc >>> 8;
    iv[11] ^= roc;
    iv[12] ^= seq >>> 8;
    iv[13] ^= seq;
  }

  /** RFC 7714 §8.1: (0x0000 || SSRC || ROC || SEQ) XOR salt. */
  #rtpGcmIv(ssrc: number, roc: number, seq: number): void {
    this.#gcmIv(this.#rtpSalt, ssrc, roc >>> 16, ((roc << 16) | seq) >>> 0);
  }

  /** RFC 7714 §9.1: (0x0000 || SSRC || 0x0000 || 0 || index) XOR salt. */
  #rtcpGcmIv(ssrc: number, index: number): void {
    this.#gcmIv(this.#rtcpSalt, ssrc, 0, index);
  }

  /** (0x0000 || ssrc || high || low) XOR salt, with ssrc and low 32 bits
   * wide and high 16; Uint8Array stores keep each value's low 8 bits. */
  #gcmIv(salt: Uint8Array, ssrc: number, high: number, low: number): void {
    const iv = this.#iv;
    iv[0] = salt[0];
    iv[1] = salt[1];
    iv[2] = salt[2] ^ (ssrc >>> 24);
    iv[3] = salt[3] ^ (ssrc >>> 16);
    iv[4] = salt[4] ^ (ssrc >>> 8);
    iv[5] = salt[5] ^ ssrc;
    iv[6] = salt[6] ^ (high >>> 8);
    iv[7] = salt[7] ^ high;
    iv[8] = salt[8] ^ (low >>> 24);
    iv[9] = salt[9] ^ (low >>> 16);
    iv[10] = salt[10] ^ (low >>> 8);
    iv[11] = salt[11] ^ low;
  }

  /** Sets the last SRTCP index sent for an SSRC, so the next protectRtcp of
   * that SSRC uses index + 1 (resuming a stream, or known-answer tests). */
  setRtcpIndex(ssrc: number, index: number): void {
    if (!Number.isInteger(index) || index < 0 || index > MAX_SRTCP_INDEX) {
      throw new RangeError(`SRTCP index out of range: ${index}`);
    }
    const sent = this.#rtcpSent.get(ssrc >>> 0);
    if (sent) sent.index = index;
    else this.#rtcpSent.set(ssrc >>> 0, { index });
  }
}
