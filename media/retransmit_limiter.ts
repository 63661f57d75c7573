// Guards the SFU's answers to one subscriber's NACKs for one track. Browsers
// re-NACK a packet until it arrives, and a subscriber on a bad link can NACK
// faster than resending helps; without a limit, each NACK costs a full packet
// out, so a few lossy subscribers could saturate the SFU's uplink.

export interface RetransmitLimiterOptions {
  /** The same seq is not resent again within this many ms: a repeat NACK
   * sooner than a round trip cannot mean the resend was lost. */
  minIntervalMs?: number;
  /** Sustained resends per second. */
  maxPerSecond?: number;
  /** Resends allowed back to back after a quiet spell (a burst loss). */
  burst?: number;
}

const DEFAULTS = { minIntervalMs: 100, maxPerSecond: 200, burst: 50 };

/** Remembered resends, by seq modulo this. It matches the packet cache's
 * default depth, which bounds which seqs can be resent at all; a collision
 * only forgets an older resend, never blocks a different seq. */
const HISTORY_SLOTS = 1024;

export class RetransmitLimiter {
  readonly #minIntervalMs: number;
  readonly #tokensPerMs: number;
  readonly #burst: number;
  readonly #seqs = new Int32Array(HISTORY_SLOTS).fill(-1);
  readonly #sentAtMs = new Float64Array(HISTORY_SLOTS);
  #tokens: number;
  #refilledAtMs = -Infinity;
  #allowed = 0;
  #deduplicated = 0;
  #rateLimited = 0;

  constructor(options: RetransmitLimiterOptions = {}) {
    const minIntervalMs = options.minIntervalMs ?? DEFAULTS.minIntervalMs;
    const maxPerSecond = options.maxPerSecond ?? DEFAULTS.maxPerSecond;
    const burst = options.burst ?? DEFAULTS.burst;
    if (!Number.isFinite(minIntervalMs) || minIntervalMs < 0) {
      throw new RangeError(
        `RetransmitLimiter minIntervalMs must be a finite number >= 0, got ${minIntervalMs}`,
      );
    }
    if (!Number.isFinite(maxPerSecond) || maxPerSecond <= 0) {
      throw new RangeError(
        `RetransmitLimiter maxPerSecond must be a finite number > 0, got ${maxPerSecond}`,
      );
    }
    if (!Number.isFinite(burst) || burst < 1) {
      throw new RangeError(
        `RetransmitLimiter burst must be a finite number >= 1, got ${burst}`,
      );
    }
    this.#minIntervalMs = minIntervalMs;
    this.#tokensPerMs = maxPerSecond / 1000;
    this.#burst = burst;
    this.#tokens = burst;
  }

  get allowed(): number {
    return this.#allowed;
  }

  get deduplicated(): number {
    return this.#deduplicated;
  }

  get rateLimited(): number {
    return this.#rateLimited;
  }

  /** Whether seq may be resent now; a true answer is counted as a resend. */
  allow(seq: number, nowMs: number): boolean {
    seq &= 0xffff;
    const slot = seq & (HISTORY_SLOTS - 1);
    if (
      this.#seqs[slot] === seq &&
      nowMs - this.#sentAtMs[slot] < this.#minIntervalMs
    ) {
      this.#deduplicated++;
      return false;
    }
    if (nowMs > this.#refilledAtMs) {
      this.#tokens = Math.min(
        this.#burst,
        this.#tokens + (nowMs - this.#refilledAtMs) * this.#tokensPerMs,
      );
      this.#refilledAtMs = nowMs;
    }
    if (this.#tokens < 1) {
      // Not remembered as sent, so the subscriber's next NACK can succeed.
      this.#rateLimited++;
      return false;
    }
    this.#tokens--;
    this.#seqs[slot] = seq;
    this.#sentAtMs[slot] = nowMs;
    this.#allowed++;
    return true;
  }
}
