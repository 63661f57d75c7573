// Encodes and decodes signalling frames. The .proto text is part of the
// module graph, so the server, the browser bundle and a compiled binary all
// read the same schema with no file beside them.
import protobuf from "protobufjs";
import schemaText from "./umbrella.proto" with { type: "text" };
import type { Envelope, EnvelopeKind } from "./messages.ts";

/** Frames above this size are refused before decoding. SDP with many
 * m-lines is the largest legitimate message; 256 KiB leaves ample room for
 * a participant's. */
export const MAX_FRAME_BYTES = 256 * 1024;
/** A trunk's offer binds every track watched across its link (up to 1024,
 * at several hundred bytes of SDP each), so another node may send more. */
export const MAX_NODE_FRAME_BYTES = 1024 * 1024;

const root = protobuf.parse(schemaText, { keepCase: false }).root;
const EnvelopeType = root.lookupType("umbrella.v1.Envelope");

export class ProtocolError extends Error {
  override name = "ProtocolError";
}

export function encodeEnvelope(message: Envelope): Uint8Array {
  const problem = EnvelopeType.verify(message);
  if (problem) throw new ProtocolError(`invalid message: ${problem}`);
  return EnvelopeType.encode(message).finish();
}

/** Decodes one frame; throws ProtocolError with a reason fit for a
 * WebSocket close frame on anything that is not exactly one Envelope. */
export function decodeEnvelope(
  frame: Uint8Array,
  maxBytes = MAX_FRAME_BYTES,
): Envelope {
  if (frame.byteLength > maxBytes) {
    throw new ProtocolError(
      `frame of ${frame.byteLength} bytes exceeds the ${maxBytes} byte limit`,
    );
  }
  let decoded: protobuf.Message;
  try {
    decoded = EnvelopeType.decode(frame);
  } catch (error) {
    throw new ProtocolError(
      `malformed protobuf: ${(error as Error).message}`,
    );
  }
  const envelope = EnvelopeType.toObject(decoded, {
    longs: Number,
    enums: Number,
    defaults: false,
    arrays: true,
    oneofs: false,
  }) as Envelope;
  if (envelopeKind(envelope) === undefined) {
    throw new ProtocolError("empty envelope: no known message in it");
  }
  return envelope;
}

export function envelopeKind(envelope: Envelope): EnvelopeKind | undefined {
  for (const key in envelope) {
    const value = envelope[key as EnvelopeKind];
    if (value !== undefined && value !== null) return key as EnvelopeKind;
  }
  return undefined;
}
