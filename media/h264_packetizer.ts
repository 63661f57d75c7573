// Turns a camera's H.264 RTP payloads into ones a browser starts from
// reliably: SPS and PPS precede every IDR (cameras that put them only in the
// SDP's sprop-parameter-sets would otherwise leave a new decoder waiting
// forever), and no payload exceeds what fits a WebRTC packet (cameras use a
// 1400-1500 byte MTU; SRTP and a VPN or PPPoE hop need the margin).
// Only packetization-mode 0/1 units (single NAL, STAP-A, FU-A) exist here;
// describeVideoSupport refuses mode 2 before a stream is set up. Pure logic:
// payloads come from the network, so every read is bounds checked and a
// malformed payload is dropped, never thrown on.

/** Largest RTP payload sent to subscribers. */
export const MAX_WEBRTC_PAYLOAD = 1200;

const SPS = 7;
const PPS = 8;
const IDR = 5;
const STAP_A = 24;
const FU_A = 28;
const NAL_TYPE = 0x1f;
const FU_START = 0x80;
const FU_END = 0x40;
// Real parameter sets are tens of bytes; anything this large is not one.
const MAX_PARAMETER_SET_BYTES = 4096;

/** Receives each output payload; the last one of an input packet carries its
 * marker. Payloads may be subarrays of the input. */
export type H264Emit = (payload: Uint8Array, marker: boolean) => void;

export class H264Packetizer {
  readonly #emit: H264Emit;
  readonly #maxPayload: number;
  #sps: Uint8Array | undefined;
  #pps: Uint8Array | undefined;
  /** SPS and PPS as ready-made payloads, rebuilt only when they change. */
  #injection: Uint8Array[] = [];
  #spsSeen = false;
  #ppsSeen = false;
  #lastVclTimestamp = -1;
  /** Input packets dropped as malformed or of a mode WebRTC lacks. */
  dropped = 0;
  /** How many times SPS and PPS were sent ahead of an IDR. */
  injected = 0;

  constructor(
    emit: H264Emit,
    options: {
      /** From sprop-parameter-sets; in-band ones replace them. */
      parameterSets?: readonly Uint8Array[];
      maxPayload?: number;
    } = {},
  ) {
    this.#emit = emit;
    const maxPayload = options.maxPayload ?? MAX_WEBRTC_PAYLOAD;
    if (!Number.isInteger(maxPayload) || maxPayload < 100) {
      throw new RangeError(
        `maxPayload must be at least 100, got ${maxPayload}`,
      );
    }
    this.#maxPayload = maxPayload;
    for (const unit of options.parameterSets ?? []) {
      const type = unit.length > 0 ? unit[0] & NAL_TYPE : 0;
      if (type === SPS && !this.#sps) this.#setParameterSet(unit);
      else if (type === PPS && !this.#pps) this.#setParameterSet(unit);
    }
  }

  /** Forgets where the stream was, e.g. when the camera reconnects; the
   * parameter sets are kept, the camera will send the same ones. */
  reset(): void {
    this.#spsSeen = false;
    this.#ppsSeen = false;
    this.#lastVclTimestamp = -1;
  }

  /** One payload from the camera. */
  push(payload: Uint8Array, timestamp: number, marker: boolean): void {
    if (payload.length < 1) {
      this.dropped++;
      return;
    }
    const type = payload[0] & NAL_TYPE;
    if (type >= 1 && type <= 23) {
      this.#beforeUnit(type, payload, timestamp);
      sendUnit(payload, marker, this.#maxPayload, this.#emit);
    } else if (type === STAP_A) {
      this.#pushAggregate(payload, timestamp, marker);
    } else if (type === FU_A) {
      this.#pushFragment(payload, timestamp, marker);
    } else {
      this.dropped++;
    }
  }

  #pushAggregate(
    payload: Uint8Array,
    timestamp: number,
    marker: boolean,
  ): void {
    // Validated completely first: half of a broken aggregate is not sent.
    let offset = 1;
    let units = 0;
    while (offset < payload.length) {
      if (offset + 2 > payload.length) break;
      const size = (payload[offset] << 8) | payload[offset + 1];
      if (size === 0 || offset + 2 + size > payload.length) break;
      offset += 2 + size;
      units++;
    }
    if (units === 0 || offset !== payload.length) {
      this.dropped++;
      return;
    }
    const fits = payload.length <= this.#maxPayload;
    offset = 1;
    while (offset < payload.length) {
      const size = (payload[offset] << 8) | payload[offset + 1];
      const unit = payload.subarray(offset + 2, offset + 2 + size);
      offset += 2 + size;
      this.#beforeUnit(unit[0] & NAL_TYPE, unit, timestamp);
      if (!fits) {
        sendUnit(
          unit,
          marker && offset === payload.length,
          this.#maxPayload,
          this.#emit,
        );
      }
    }
    if (fits) this.#emit(payload, marker);
  }

  #pushFragment(payload: Uint8Array, timestamp: number, marker: boolean): void {
    if (payload.length < 3) {
      this.dropped++;
      return;
    }
    const indicator = payload[0];
    const header = payload[1];
    // Parameter sets are never fragmented in practice, so a fragment is
    // only looked at for the picture it starts.
    if (header & FU_START) {
      this.#beforeUnit(header & NAL_TYPE, undefined, timestamp);
    }
    if (payload.length <= this.#maxPayload) {
      this.#emit(payload, marker);
      return;
    }
    fragment(
      indicator,
      header & NAL_TYPE,
      payload.subarray(2),
      (header & FU_START) !== 0,
      (header & FU_END) !== 0,
      marker,
      this.#maxPayload,
      this.#emit,
    );
  }

  /** Notes parameter sets, and puts them ahead of an IDR that starts an
   * access unit without them. unit is undefined for a fragmented one. */
  #beforeUnit(
    type: number,
    unit: Uint8Array | undefined,
    timestamp: number,
  ): void {
    if (type === SPS || type === PPS) {
      if (unit) this.#setParameterSet(unit);
      if (type === SPS) this.#spsSeen = true;
      else this.#ppsSeen = true;
      return;
    }
    if (type < 1 || type > 5) return;
    // Only the first slice of a picture can need them: the parameter sets
    // must not land between slices of one picture.
    if (timestamp === this.#lastVclTimestamp) return;
    this.#lastVclTimestamp = timestamp;
    if (
      type === IDR && !(this.#spsSeen && this.#ppsSeen) &&
      this.#injection.length > 0
    ) {
      for (const parameterSets of this.#injection) {
        this.#emit(parameterSets, false);
      }
      this.injected++;
    }
    this.#spsSeen = false;
    this.#ppsSeen = false;
  }

  #setParameterSet(unit: Uint8Array): void {
    if (unit.length < 2 || unit.length > MAX_PARAMETER_SET_BYTES) return;
    const type = unit[0] & NAL_TYPE;
    const current = type === SPS ? this.#sps : this.#pps;
    if (current && equalBytes(current, unit)) return;
    // A copy: the input may be a view into a large network buffer.
    const copy = unit.slice();
    if (type === SPS) this.#sps = copy;
    else this.#pps = copy;
    this.#rebuildInjection();
  }

  #rebuildInjection(): void {
    const sps = this.#sps;
    const pps = this.#pps;
    this.#injection = [];
    if (!sps || !pps) return;
    if (1 + 2 + sps.length + 2 + pps.length <= this.#maxPayload) {
      const aggregate = new Uint8Array(1 + 2 + sps.length + 2 + pps.length);
      // STAP-A's NRI is the highest of its units'.
      aggregate[0] = Math.max(sps[0] & 0x60, pps[0] & 0x60) | STAP_A;
      let offset = 1;
      for (const unit of [sps, pps]) {
        aggregate[offset] = unit.length >> 8;
        aggregate[offset + 1] = unit.length & 0xff;
        aggregate.set(unit, offset + 2);
        offset += 2 + unit.length;
      }
      this.#injection.push(aggregate);
      return;
    }
    const collect: Uint8Array[] = [];
    const keep = (payload: Uint8Array) => collect.push(payload);
    sendUnit(sps, false, this.#maxPayload, keep);
    sendUnit(pps, false, this.#maxPayload, keep);
    this.#injection = collect;
  }
}

/** A whole NAL unit: as it is when it fits, else as FU-A fragments. */
function sendUnit(
  unit: Uint8Array,
  marker: boolean,
  maxPayload: number,
  emit: H264Emit,
): void {
  if (unit.length <= maxPayload) {
    emit(unit, marker);
    return;
  }
  const nalHeader = unit[0];
  fragment(
    (nalHeader & 0xe0) | FU_A,
    nalHeader & NAL_TYPE,
    unit.subarray(1),
    true,
    true,
    marker,
    maxPayload,
    emit,
  );
}

/** FU-A fragments of body; start/end say whether body begins and ends its
 * NAL unit (a camera's oversized fragment is only part of one). */
function fragment(
  indicator: number,
  type: number,
  body: Uint8Array,
  start: boolean,
  end: boolean,
  marker: boolean,
  maxPayload: number,
  emit: H264Emit,
): void {
  const chunk = maxPayload - 2;
  for (let offset = 0; offset < body.length; offset += chunk) {
    const last = offset + chunk >= body.length;
    const piece = body.subarray(offset, offset + chunk);
    const out = new Uint8Array(2 + piece.length);
    out[0] = indicator;
    out[1] = type | (start && offset === 0 ? FU_START : 0) |
      (end && last ? FU_END : 0);
    out.set(piece, 2);
    emit(out, marker && last);
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
