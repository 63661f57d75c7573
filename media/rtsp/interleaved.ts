// TCP-interleaved media (RFC 2326 §10.12): each stream SETUP over TCP claims
// a pair of channel numbers, RTP on the first and RTCP on the second, and
// every packet travels as '$', channel, 16-bit length, data. Receiving is the
// stream parser's job (message.ts); this file frames what we send (RTCP
// receiver reports) and maps received channels back to streams.
import { RtspProtocolError } from "./message.ts";

/** Largest payload a frame can carry: the length field is 16 bits. */
export const MAX_INTERLEAVED_PAYLOAD = 0xffff;

export function encodeInterleavedFrame(
  channel: number,
  payload: Uint8Array,
): Uint8Array {
  if (!Number.isInteger(channel) || channel < 0 || channel > 255) {
    throw new RtspProtocolError(`invalid interleaved channel ${channel}`);
  }
  if (payload.length > MAX_INTERLEAVED_PAYLOAD) {
    throw new RtspProtocolError(
      `a ${payload.length} byte packet does not fit an interleaved frame`,
    );
  }
  const frame = new Uint8Array(4 + payload.length);
  frame[0] = 0x24;
  frame[1] = channel;
  frame[2] = payload.length >> 8;
  frame[3] = payload.length & 0xff;
  frame.set(payload, 4);
  return frame;
}

export interface ChannelRoute {
  /** Index of the stream in SETUP order. */
  stream: number;
  rtcp: boolean;
}

/**
 * Which stream each interleaved channel belongs to. Cameras may answer a
 * SETUP with other channels than the ones asked for, so the answer is what
 * gets recorded; a camera that puts two streams on one channel cannot be
 * demultiplexed and is refused.
 */
export class InterleavedChannels {
  // Indexed by channel; routes are created once at SETUP so the per-packet
  // lookup allocates nothing.
  readonly #routes: (ChannelRoute | undefined)[] = new Array(256);

  /** The lowest free even pair, to ask for in the next SETUP. */
  proposePair(): [number, number] {
    for (let channel = 0; channel < 256; channel += 2) {
      if (!this.#routes[channel] && !this.#routes[channel + 1]) {
        return [channel, channel + 1];
      }
    }
    throw new RtspProtocolError("all 256 interleaved channels are in use");
  }

  /** Records the channels the camera answered for a stream's SETUP. */
  assign(stream: number, [rtp, rtcp]: readonly [number, number]): void {
    for (const channel of [rtp, rtcp]) {
      if (!Number.isInteger(channel) || channel < 0 || channel > 255) {
        throw new RtspProtocolError(`invalid interleaved channel ${channel}`);
      }
      const taken = this.#routes[channel];
      if (taken) {
        throw new RtspProtocolError(
          `the camera put stream ${
            stream + 1
          } on interleaved channel ${channel}, already used by stream ${
            taken.stream + 1
          }`,
        );
      }
    }
    if (rtp === rtcp) {
      throw new RtspProtocolError(
        `the camera put RTP and RTCP of stream ${
          stream + 1
        } on the same interleaved channel ${rtp}`,
      );
    }
    this.#routes[rtp] = { stream, rtcp: false };
    this.#routes[rtcp] = { stream, rtcp: true };
  }

  /** The stream a received frame belongs to; undefined for unclaimed channels. */
  route(channel: number): ChannelRoute | undefined {
    return this.#routes[channel];
  }

  /** The channel to send RTCP for a stream on, if it was set up. */
  rtcpChannel(stream: number): number | undefined {
    const channel = this.#routes.findIndex((route) =>
      route?.stream === stream && route.rtcp
    );
    return channel < 0 ? undefined : channel;
  }
}
