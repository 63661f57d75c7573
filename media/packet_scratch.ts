// A buffer that packets are written into one after another (sealed for
// sending, read from a socket), with the views of it that FFI calls and
// parsers take made once per offset instead of once per packet: each view
// is a heap object, and three or four per forwarded packet were most of the
// forwarding path's garbage and a share of V8's builtin time.

export class PacketScratch {
  readonly bytes: Uint8Array;
  readonly size: number;
  readonly #upTo: (Uint8Array | undefined)[];
  readonly #from: (Uint8Array | undefined)[];

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.size = size;
    this.#upTo = new Array(size + 1);
    this.#from = new Array(size + 1);
  }

  /** bytes[0, end) */
  upTo(end: number): Uint8Array {
    return this.#upTo[end] ??= this.bytes.subarray(0, end);
  }

  /** bytes[start, size) */
  from(start: number): Uint8Array {
    return this.#from[start] ??= this.bytes.subarray(start);
  }

  /** This scratch when `length` bytes fit it, else one of their own (rare:
   * payloads come from datagrams of at most an MTU). */
  fitting(length: number): PacketScratch {
    return length <= this.size ? this : new PacketScratch(length);
  }
}
