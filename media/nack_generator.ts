// Decides which packets the SFU NACKs on the publisher's leg. Each lost packet
// is NACKed once: the SFU is one hop from the publisher, and repeating NACKs
// for packets that are not coming (the publisher's own history is bounded)
// only multiplies upstream traffic when the link is already struggling.
// State is a fixed ring indexed by sequence number, so per-packet calls
// never allocate.
import { seqDiff } from "./seq.ts";

export interface NackGeneratorOptions {
  /** How many sequence numbers behind the newest are tracked (power of two,
   * at most 32768). A packet further behind is ignored, and a hole further
   * behind is given up on, NACKed or not. */
  window?: number;
  /** A forward jump leaving more than this many packets missing is not loss
   * worth repairing but the source starting over (or an outage that only a
   * keyframe can end); must be less than window. */
  maxGap?: number;
  /** A hole this many sequence numbers behind the newest packet is taken as
   * lost; nearer ones are held in case the packet was merely reordered. */
  reorderPackets?: number;
  /** A hole this old (ms) is taken as lost however few packets came since,
   * for callers that also poll takeNacks from a timer. */
  reorderMs?: number;
}

// Two packets is enough hold for the reordering networks actually produce
// (mostly adjacent swaps) while costing a loss at most a couple of packet
// intervals of extra recovery latency; 5 ms bounds the hold when packets are
// sparse, and is small next to any round trip.
const DEFAULTS = { window: 512, maxGap: 256, reorderPackets: 2, reorderMs: 5 };

const HOLE_PENDING = 1;
const HOLE_NACKED = 2;

export class NackGenerator {
  readonly #window: number;
  readonly #mask: number;
  readonly #maxGap: number;
  readonly #reorderPackets: number;
  readonly #reorderMs: number;
  /** Per slot: 0 (nothing outstanding), HOLE_PENDING or HOLE_NACKED. The ring
   * is rewritten as the newest advances, so a slot always describes the one
   * extended seq in the window that maps to it. */
  readonly #holes: Uint8Array;
  readonly #detectedAtMs: Float64Array;
  #started = false;
  /** The newest seq, extended past 16 bits; every other seq is placed
   * relative to it (rather than through a SeqUnwrapper, which a single stray
   * packet would move). */
  #newest = 0;
  #pending = 0;
  /** No pending hole is older than this, so takeNacks scans from here. */
  #scanFrom = 0;
  /** The 16-bit seq of an out-of-window packet not yet known to be a
   * restart (-1: none). A restart needs a second such packet continuing from
   * it, so one stray or very late packet cannot reset the state. */
  #stray = -1;
  #nacked = 0;
  #recovered = 0;

  constructor(options: NackGeneratorOptions = {}) {
    const window = options.window ?? DEFAULTS.window;
    const maxGap = options.maxGap ?? DEFAULTS.maxGap;
    const reorderPackets = options.reorderPackets ?? DEFAULTS.reorderPackets;
    const reorderMs = options.reorderMs ?? DEFAULTS.reorderMs;
    if (
      !Number.isInteger(window) || window < 2 || window > 32768 ||
      (window & (window - 1)) !== 0
    ) {
      throw new RangeError(
        `NackGenerator window must be a power of two in 2..32768, got ${window}`,
      );
    }
    if (!Number.isInteger(maxGap) || maxGap < 0 || maxGap >= window) {
      throw new RangeError(
        `NackGenerator maxGap must be an integer in 0..window-1, got ${maxGap}`,
      );
    }
    if (!Number.isInteger(reorderPackets) || reorderPackets < 1) {
      throw new RangeError(
        `NackGenerator reorderPackets must be a positive integer, got ${reorderPackets}`,
      );
    }
    if (!(reorderMs >= 0)) {
      throw new RangeError(
        `NackGenerator reorderMs must be >= 0, got ${reorderMs}`,
      );
    }
    this.#window = window;
    this.#mask = window - 1;
    this.#maxGap = maxGap;
    this.#reorderPackets = reorderPackets;
    this.#reorderMs = reorderMs;
    this.#holes = new Uint8Array(window);
    this.#detectedAtMs = new Float64Array(window);
  }

  /** Seqs NACKed so far, each counted once. */
  get nacked(): number {
    return this.#nacked;
  }

  /** NACKed seqs that arrived afterwards. Holes filled before being NACKed
   * were reordering, not loss, and are not counted. */
  get recovered(): number {
    return this.#recovered;
  }

  /** Records one received packet. Returns true when the stream jumped too far
   * to repair (a restart): the caller should request a keyframe. */
  onPacket(seq: number, nowMs: number): boolean {
    seq &= 0xffff;
    if (!this.#started) {
      this.#started = true;
      this.#newest = seq;
      return false;
    }
    const ahead = seqDiff(seq, this.#newest);
    const extended = this.#newest + ahead;
    if (ahead > 0 && ahead - 1 <= this.#maxGap) {
      this.#stray = -1;
      this.#advance(extended, nowMs);
      return false;
    }
    if (ahead <= 0 && ahead > -this.#window) {
      this.#stray = -1;
      if (ahead < 0) this.#fill(extended);
      return false;
    }
    const previousStray = this.#stray;
    this.#stray = seq;
    if (previousStray < 0) return false;
    const continues = seqDiff(seq, previousStray);
    if (continues > 0 && continues - 1 <= this.#maxGap) {
      this.#restart(extended);
      return true;
    }
    return false;
  }

  /** Writes the seqs to NACK now into out (oldest first, from index 0) and
   * returns how many. Each seq is returned once in the generator's life. */
  takeNacks(nowMs: number, out: number[]): number {
    if (this.#pending === 0) return 0;
    const holes = this.#holes;
    const mask = this.#mask;
    const lostIfAtMost = this.#newest - this.#reorderPackets;
    let count = 0;
    let firstStillHeld = NaN;
    for (
      let extended = Math.max(this.#scanFrom, this.#newest - this.#window + 1);
      extended < this.#newest;
      extended++
    ) {
      const slot = extended & mask;
      if (holes[slot] !== HOLE_PENDING) continue;
      if (
        extended <= lostIfAtMost ||
        nowMs - this.#detectedAtMs[slot] >= this.#reorderMs
      ) {
        holes[slot] = HOLE_NACKED;
        out[count++] = extended & 0xffff;
        if (--this.#pending === 0) break;
      } else if (Number.isNaN(firstStillHeld)) {
        firstStillHeld = extended;
      }
    }
    if (this.#pending > 0) this.#scanFrom = firstStillHeld;
    this.#nacked += count;
    return count;
  }

  #advance(extended: number, nowMs: number): void {
    const holes = this.#holes;
    const mask = this.#mask;
    if (this.#pending === 0) this.#scanFrom = this.#newest + 1;
    for (let missing = this.#newest + 1; missing < extended; missing++) {
      const slot = missing & mask;
      if (holes[slot] !== HOLE_PENDING) this.#pending++;
      holes[slot] = HOLE_PENDING;
      this.#detectedAtMs[slot] = nowMs;
    }
    const slot = extended & mask;
    if (holes[slot] === HOLE_PENDING) this.#pending--;
    holes[slot] = 0;
    this.#newest = extended;
  }

  #fill(extended: number): void {
    const slot = extended & this.#mask;
    const hole = this.#holes[slot];
    if (hole === HOLE_PENDING) this.#pending--;
    else if (hole === HOLE_NACKED) this.#recovered++;
    this.#holes[slot] = 0;
  }

  #restart(extended: number): void {
    this.#holes.fill(0);
    this.#pending = 0;
    this.#newest = extended;
    this.#stray = -1;
  }
}

/** Encodes seqs as RFC 4585 Generic NACK FCI entries: each pair is a packet
 * id plus a bitmask of the 16 seqs after it (bit i set: PID + i + 1 lost).
 * Ascending input (as takeNacks gives) packs minimally; any order is still
 * encoded completely. Returns the number of pairs written. */
export function packGenericNack(
  seqs: ArrayLike<number>,
  count: number,
  outPids: number[],
  outBlps: number[],
): number {
  let pairs = 0;
  for (let i = 0; i < count; i++) {
    const seq = seqs[i] & 0xffff;
    if (pairs > 0) {
      const after = seqDiff(seq, outPids[pairs - 1]);
      if (after === 0) continue;
      if (after > 0 && after <= 16) {
        outBlps[pairs - 1] |= 1 << (after - 1);
        continue;
      }
    }
    outPids[pairs] = seq;
    outBlps[pairs] = 0;
    pairs++;
  }
  return pairs;
}

/** Decodes one Generic NACK FCI entry into out (from index 0); returns the
 * number of seqs, 1 to 17. */
export function unpackGenericNack(
  pid: number,
  blp: number,
  out: number[],
): number {
  pid &= 0xffff;
  out[0] = pid;
  let count = 1;
  for (let bit = 0; bit < 16; bit++) {
    if (blp & (1 << bit)) out[count++] = (pid + bit + 1) & 0xffff;
  }
  return count;
}
