// The SFU's own copy of a track's recent packets, so subscribers' NACKs are
// answered here instead of travelling to the publisher. It only holds
// references to packets the receive path allocated anyway, in a fixed ring,
// so a put or get never allocates.
import { seqDiff } from "./seq.ts";

export interface CachedPacket {
  payload: Uint8Array;
  timestamp: number;
  marker: boolean;
  payloadType: number;
}

export class PacketCache {
  readonly capacity: number;
  readonly #mask: number;
  /** The 16-bit sequence number held in each slot, -1 when empty. Slots of
   * seqs skipped over are emptied as the newest advances, so every filled
   * slot holds a seq less than capacity behind the newest: one left over
   * from a previous lap of the 16-bit space can never be returned. */
  readonly #seqs: Int32Array;
  readonly #packets: (CachedPacket | undefined)[];
  #newest = -1;

  constructor(capacity = 1024) {
    if (
      !Number.isInteger(capacity) || capacity < 1 || capacity > 32768 ||
      (capacity & (capacity - 1)) !== 0
    ) {
      throw new RangeError(
        `PacketCache capacity must be a power of two up to 32768, got ${capacity}`,
      );
    }
    this.capacity = capacity;
    this.#mask = capacity - 1;
    this.#seqs = new Int32Array(capacity).fill(-1);
    this.#packets = new Array(capacity).fill(undefined);
  }

  put(seq: number, packet: CachedPacket): void {
    seq &= 0xffff;
    if (this.#newest < 0) {
      this.#newest = seq;
    } else {
      const ahead = seqDiff(seq, this.#newest);
      // Further behind than the ring reaches is not a late packet (keeping
      // it would evict a newer one to no use) but the source starting over.
      if (ahead >= this.capacity || ahead <= -this.capacity) {
        this.clear();
        this.#newest = seq;
      } else if (ahead > 0) {
        for (let skipped = 1; skipped < ahead; skipped++) {
          this.#empty((this.#newest + skipped) & this.#mask);
        }
        this.#newest = seq;
      }
    }
    const slot = seq & this.#mask;
    this.#seqs[slot] = seq;
    this.#packets[slot] = packet;
  }

  /** The packet with this sequence number, or undefined when it never came or
   * has fallen out of the ring. */
  get(seq: number): CachedPacket | undefined {
    seq &= 0xffff;
    const slot = seq & this.#mask;
    return this.#seqs[slot] === seq ? this.#packets[slot] : undefined;
  }

  /** Forgets every packet. Call it when the source restarts: its new packets
   * may reuse recent sequence numbers, and a NACK must not get an old one. */
  clear(): void {
    this.#seqs.fill(-1);
    this.#packets.fill(undefined);
    this.#newest = -1;
  }

  #empty(slot: number): void {
    this.#seqs[slot] = -1;
    this.#packets[slot] = undefined;
  }
}
