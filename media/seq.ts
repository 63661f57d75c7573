// RTP sequence numbers are 16 bits and wrap every 65536 packets (about a
// minute of high-bitrate video), so ordering must be decided by the shorter
// way round the circle, never by plain comparison.

/** Signed distance a - b the short way round, in -32768..32767. */
export function seqDiff(a: number, b: number): number {
  return ((a - b + 32768) & 0xffff) - 32768;
}

/** Whether a comes after b (taking wrap-around into account). */
export function seqNewer(a: number, b: number): boolean {
  return seqDiff(a, b) > 0;
}

/** Extends 16-bit sequence numbers to unbounded ones, so code downstream can
 * compare and subtract them plainly. Each number is placed relative to the
 * newest seen so far, so a late packet from before a wrap maps just below it
 * rather than 65536 ahead. The first number maps to itself. */
export class SeqUnwrapper {
  #started = false;
  #newestSeq = 0;
  #newestExtended = 0;

  unwrap(seq: number): number {
    seq &= 0xffff;
    if (!this.#started) {
      this.#started = true;
      this.#newestSeq = seq;
      this.#newestExtended = seq;
      return seq;
    }
    const extended = this.#newestExtended + seqDiff(seq, this.#newestSeq);
    if (extended > this.#newestExtended) {
      this.#newestSeq = seq;
      this.#newestExtended = extended;
    }
    return extended;
  }
}
