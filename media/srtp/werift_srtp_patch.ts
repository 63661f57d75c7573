// A clearly separated patch layer that makes werift use media/srtp's SRTP
// (reused cipher contexts, libcrypto through FFI when permitted) instead of
// its own, which builds node:crypto cipher and HMAC objects for every packet.
//
// It depends on these werift 0.25.2 internals (lib/webrtc/src/transport/
// dtls.ts and lib/rtp/src/srtp/), all public members in werift's typings:
// - RTCDtlsTransport.prototype.updateSrtpSession(), which startSrtp() calls
//   once DTLS is up, sets this.srtp and this.srtcp from
//   this.dtls.srtp.srtpProfile and this.dtls.extractSessionKeys(keyLength,
//   saltLength). Only this method is replaced.
// - sendRtp(payload, header) calls this.srtp.encrypt(payload, header) and
//   hands the Buffer it returns to an asynchronous UDP send, so every packet
//   needs a fresh output buffer (node:dgram in Deno reads it later).
// - sendRtcp calls this.srtcp.encrypt(serialized compound packet).
// - startSrtp's receive handler calls this.srtp.decrypt(data) and
//   this.srtcp.decrypt(data), drops the packet only when the error is an
//   instanceof werift's SrtpAuthenticationError (anything else escapes to
//   the ICE data handler), and parses the returned Buffer with
//   RtpPacket.deSerialize / RtcpPacketConverter.deSerialize, which keep
//   views of it: so each decrypted packet needs its own Buffer too.
// - RtpHeader's fields and serialize() (rtp/src/rtp/rtp.ts), which
//   writeRtpHeader reproduces byte for byte without allocating.
// Nothing else reads a transport's srtp/srtcp session (getStats only reads
// the profile), so the replacement objects implement just these methods.
import { Buffer } from "node:buffer";
import {
  RTCDtlsTransport,
  type RtpHeader,
  SrtcpSession,
  SrtpAuthenticationError,
  SrtpSession,
} from "werift";
import { selectSrtpBackend, type SrtpCryptoBackend } from "./backend.ts";
import {
  isSupportedSrtpProfile,
  masterKeyLengths,
  SrtpContext,
  SrtpError,
} from "./context.ts";
import { PacketScratch } from "../packet_scratch.ts";

const ONE_BYTE_PROFILE = 0xbede;
/** The most a header (CSRCs, extensions) and SRTP's tag add to a payload in
 * what this node sends: rewritten headers carry no CSRCs and few
 * extensions. */
export const MAX_RTP_OVERHEAD = 256;
const TWO_BYTE_PROFILE = 0x1000;

/** Where encrypt() seals before copying out. */
const encryptScratch = new PacketScratch(2048);

/** werift's own decrypt failures are SrtpAuthenticationError, the one error
 * its receive path treats as "drop the packet". */
function asWeriftError(error: unknown): unknown {
  return error instanceof SrtpError
    ? new SrtpAuthenticationError(error.message)
    : error;
}

/** Stands in for werift's SrtpSession on a transport (exported for the
 * benchmark and tests; applyFastSrtp installs it). */
export class FastSrtpSession {
  constructor(readonly local: SrtpContext, readonly remote: SrtpContext) {}

  /** For werift's own sends: the packet in a buffer of its own. */
  encrypt(payload: Uint8Array, header: RtpHeader): Buffer {
    const scratch = encryptScratch.fitting(
      rtpHeaderSize(header) + payload.length + this.local.rtpOverhead,
    );
    return Buffer.from(this.encryptInto(scratch, payload, header));
  }

  /** Writes the header straight into `scratch` and seals the payload after
   * it; returns the packet's view of the scratch, for a sender that is done
   * with it before the scratch is reused. Throws if it would not fit. */
  encryptInto(
    scratch: PacketScratch,
    payload: Uint8Array,
    header: RtpHeader,
  ): Uint8Array {
    const headerLength = rtpHeaderSize(header);
    const length = headerLength + payload.length + this.local.rtpOverhead;
    if (length > scratch.size) {
      throw new RangeError(`an SRTP packet of ${length} bytes does not fit`);
    }
    writeRtpHeader(header, scratch.bytes);
    return this.local.sealRtp(scratch, headerLength, payload);
  }

  decrypt(data: Buffer): Buffer {
    try {
      return this.remote.unprotectRtp(data);
    } catch (error) {
      throw asWeriftError(error);
    }
  }
}

/** Stands in for werift's SrtcpSession; shares the SrtpContexts (one per
 * direction) with the transport's FastSrtpSession. */
export class FastSrtcpSession {
  constructor(readonly local: SrtpContext, readonly remote: SrtpContext) {}

  encrypt(rtcp: Buffer): Buffer {
    return this.local.protectRtcp(rtcp);
  }

  decrypt(data: Buffer): Buffer {
    try {
      return this.remote.unprotectRtcp(data);
    } catch (error) {
      throw asWeriftError(error);
    }
  }
}

/** Bytes werift's RtpHeader.serialize would write (its serializeSize). */
function rtpHeaderSize(header: RtpHeader): number {
  let size = 12 + header.csrc.length * 4;
  const extensions = header.extensions;
  if (extensions.length > 0 || header.extension === true) {
    let extensionSize = 4;
    switch (header.extensionProfile) {
      case ONE_BYTE_PROFILE:
        for (let i = 0; i < extensions.length; i++) {
          extensionSize += 1 + extensions[i].payload.length;
        }
        break;
      case TWO_BYTE_PROFILE:
        for (let i = 0; i < extensions.length; i++) {
          extensionSize += 2 + extensions[i].payload.length;
        }
        break;
      default:
        if (extensions.length === 0) {
          throw new RangeError(
            "RTP header extension of a custom profile needs its raw payload",
          );
        }
        extensionSize += extensions[0].payload.length;
    }
    size += Math.floor((extensionSize + 3) / 4) * 4;
  }
  return size;
}

/** Writes the header as werift's RtpHeader.serialize does, including its
 * side effects (extension set when there are extensions, payloadOffset),
 * into the start of `out`; returns the length. Values werift would corrupt
 * or throw on (one-byte extension ids outside 1-14 or lengths outside 1-16,
 * two-byte ones above 255) throw a RangeError. */
export function writeRtpHeader(header: RtpHeader, out: Uint8Array): number {
  const csrc = header.csrc, extensions = header.extensions;
  if (extensions.length > 0) header.extension = true;
  out[0] = ((header.version & 3) << 6) | (header.padding ? 0x20 : 0) |
    (header.extension ? 0x10 : 0) | (csrc.length & 0x0f);
  out[1] = (header.marker ? 0x80 : 0) | (header.payloadType & 0x7f);
  const seq = header.sequenceNumber, timestamp = header.timestamp;
  const ssrc = header.ssrc;
  out[2] = seq >>> 8;
  out[3] = seq;
  out[4] = timestamp >>> 24;
  out[5] = timestamp >>> 16;
  out[6] = timestamp >>> 8;
  out[7] = timestamp;
  out[8] = ssrc >>> 24;
  out[9] = ssrc >>> 16;
  out[10] = ssrc >>> 8;
  out[11] = ssrc;
  let offset = 12;
  for (let i = 0; i < csrc.length; i++, offset += 4) {
    const value = csrc[i];
    out[offset] = value >>> 24;
    out[offset + 1] = value >>> 16;
    out[offset + 2] = value >>> 8;
    out[offset + 3] = value;
  }
  if (header.extension) {
    const profile = header.extensionProfile;
    const lengthAt = offset + 2;
    out[offset] = profile >>> 8;
    out[offset + 1] = profile;
    offset += 4;
    const start = offset;
    if (profile === ONE_BYTE_PROFILE || profile === TWO_BYTE_PROFILE) {
      const oneByte = profile === ONE_BYTE_PROFILE;
      for (let i = 0; i < extensions.length; i++) {
        const { id, payload } = extensions[i];
        const length = payload.length;
        if (oneByte) {
          if (id < 1 || id > 14 || length < 1 || length > 16) {
            throw new RangeError(
              `one-byte RTP header extension ${id} of ${length} bytes`,
            );
          }
          out[offset++] = (id << 4) | (length - 1);
        } else {
          if (id < 0 || id > 255 || length > 255) {
            throw new RangeError(
              `two-byte RTP header extension ${id} of ${length} bytes`,
            );
          }
          out[offset++] = id;
          out[offset++] = length;
        }
        for (let j = 0; j < length; j++) out[offset++] = payload[j];
      }
    } else {
      const payload = extensions[0].payload;
      if (payload.length % 4 !== 0) {
        throw new RangeError(
          "RTP header extension of a custom profile must fill whole words",
        );
      }
      for (let j = 0; j < payload.length; j++) out[offset++] = payload[j];
    }
    const rounded = Math.trunc((offset - start + 3) / 4) * 4;
    out[lengthAt] = (rounded / 4) >>> 8;
    out[lengthAt + 1] = rounded / 4;
    while (offset < start + rounded) out[offset++] = 0;
  }
  header.payloadOffset = offset;
  return offset;
}

export interface FastSrtpStatus {
  /** "libcrypto" or "node". */
  backend: string;
  description: string;
  /** Why libcrypto is not in use, when it is not. */
  fallbackReason?: string;
}

let applied: FastSrtpStatus | undefined;

/** Makes every werift DTLS transport whose SRTP starts from now on use
 * media/srtp. Idempotent: later calls return the first call's status. Pass
 * a backend to force one (tests, benchmarks); by default libcrypto when
 * --allow-ffi is granted and it loads, node:crypto otherwise. */
export function applyFastSrtp(backend?: SrtpCryptoBackend): FastSrtpStatus {
  if (applied) return applied;
  const selection = backend ? { backend } : selectSrtpBackend();
  const proto = RTCDtlsTransport.prototype;
  const original = proto.updateSrtpSession;
  if (typeof original !== "function") {
    throw new Error(
      "werift changed: RTCDtlsTransport.prototype.updateSrtpSession is gone; " +
        "media/srtp/werift_srtp_patch.ts needs updating",
    );
  }
  proto.updateSrtpSession = function (this: RTCDtlsTransport) {
    const profile = this.dtls?.srtp.srtpProfile;
    if (
      !this.dtls || profile === undefined || !isSupportedSrtpProfile(profile)
    ) {
      // werift reports a missing DTLS or profile itself, and would handle a
      // profile this module does not know.
      return original.call(this);
    }
    const lengths = masterKeyLengths(profile);
    const { localKey, localSalt, remoteKey, remoteSalt } = this.dtls
      .extractSessionKeys(lengths.key, lengths.salt);
    const local = SrtpContext.fromMasterKey(
      profile,
      localKey,
      localSalt,
      selection.backend,
    );
    const remote = SrtpContext.fromMasterKey(
      profile,
      remoteKey,
      remoteSalt,
      selection.backend,
    );
    // The replaced sessions are simply dropped, as werift drops its own;
    // their native contexts are freed when they are garbage collected.
    this.srtp = new FastSrtpSession(local, remote) as unknown as SrtpSession;
    this.srtcp = new FastSrtcpSession(local, remote) as unknown as SrtcpSession;
  };
  applied = {
    backend: selection.backend.name,
    description: selection.backend.description,
    ...("fallbackReason" in selection && selection.fallbackReason
      ? { fallbackReason: selection.fallbackReason }
      : {}),
  };
  return applied;
}

/** Whether this transport's SRTP runs through media/srtp (false before its
 * DTLS handshake completes, or when its profile was left to werift). */
export function usesFastSrtp(transport: RTCDtlsTransport): boolean {
  return (transport.srtp as unknown) instanceof FastSrtpSession;
}
