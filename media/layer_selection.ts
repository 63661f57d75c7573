// Which simulcast layer one subscriber should get. Umbrella negotiates no
// transport-wide congestion feedback with subscribers, so the signal is
// what their receiver reports and NACKs say: loss. A subscriber that loses
// packets steps down a layer at once; one that has been clean for a while
// tries the next layer up, and if that brings loss back it waits twice as
// long before trying again (so a link that cannot carry a layer is probed
// rarely, not every few seconds). A layer the publisher stopped sending
// (browsers drop their top layers when their own uplink is short) is left
// at once, and a layer whose keyframe never came is not tried again soon.

/** What is known of one layer of a group right now. */
export type LayerStatus =
  /** Packets arrive. */
  | "flowing"
  /** Nothing arrives because nobody here pulls it (a layer another node
   * sends only on demand): it may well flow once asked for. */
  | "idle"
  /** Nothing arrives although it should: its publisher stopped it. */
  | "stalled";

/** Loss at or above this in a receiver report means the link is full. */
export const CONGESTED_LOSS = 0.1;
/** Loss below this counts as clean. */
export const CLEAN_LOSS = 0.02;
/** Clean time before the first try of a higher layer. */
export const UPGRADE_HOLD_MS = 8000;
export const MAX_UPGRADE_HOLD_MS = 64000;
/** Clean time before the first try of a higher layer: browsers add their
 * higher layers a few seconds into a call, as their uplink estimate grows. */
export const FIRST_UPGRADE_HOLD_MS = 2000;
/** Loss this soon after stepping up means the step was too far. */
const PROBE_WINDOW_MS = 10000;
/** A layer whose switch failed is not tried for this long. */
export const FAILED_LAYER_HOLD_MS = 10000;

export class LayerSelector {
  #hold = FIRST_UPGRADE_HOLD_MS;
  #lastLossAtMs: number;
  #lastUpgradeAtMs = -Infinity;
  #congested = false;
  #failedUntil: number[] = [];

  constructor(nowMs: number) {
    this.#lastLossAtMs = nowMs;
  }

  /** A receiver report's loss (the larger of its fraction lost and the
   * share of packets NACKed since the previous one). */
  onReport(loss: number, nowMs: number): void {
    if (loss < CLEAN_LOSS) return;
    this.#lastLossAtMs = nowMs;
    if (loss < CONGESTED_LOSS) return;
    this.#congested = true;
    this.#hold = nowMs - this.#lastUpgradeAtMs < PROBE_WINDOW_MS
      ? Math.min(this.#hold * 2, MAX_UPGRADE_HOLD_MS)
      : UPGRADE_HOLD_MS;
  }

  /** The layer a switch was asked for gave no keyframe in time. */
  switchFailed(layer: number, nowMs: number): void {
    this.#failedUntil[layer] = nowMs + FAILED_LAYER_HOLD_MS;
  }

  #usable(
    layer: number,
    statuses: LayerStatus[],
    maxLayer: number,
    nowMs: number,
  ): boolean {
    return layer <= maxLayer && statuses[layer] !== "stalled" &&
      !(nowMs < (this.#failedUntil[layer] ?? 0));
  }

  /** The highest usable layer at or below `from`, else the lowest usable
   * above it, else -1. */
  #nearest(
    from: number,
    statuses: LayerStatus[],
    maxLayer: number,
    nowMs: number,
  ): number {
    for (let layer = Math.min(from, statuses.length - 1); layer >= 0; layer--) {
      if (this.#usable(layer, statuses, maxLayer, nowMs)) return layer;
    }
    for (let layer = from + 1; layer < statuses.length; layer++) {
      if (this.#usable(layer, statuses, maxLayer, nowMs)) return layer;
    }
    return -1;
  }

  /** Where a new subscription starts: the best layer it may have that is
   * flowing, for a picture at once (a better idle one is tried after the
   * first hold); else the best it may have. */
  initial(statuses: LayerStatus[], maxLayer: number, nowMs: number): number {
    for (
      let layer = Math.min(maxLayer, statuses.length - 1);
      layer >= 0;
      layer--
    ) {
      if (statuses[layer] === "flowing") return layer;
    }
    return this.#nearest(statuses.length - 1, statuses, maxLayer, nowMs);
  }

  /** The layer to be on, given the one it is on (an index into statuses,
   * which are ordered lowest first) and the highest it may have. */
  choose(
    current: number,
    statuses: LayerStatus[],
    maxLayer: number,
    nowMs: number,
  ): number {
    const congested = this.#congested;
    this.#congested = false;
    if (!this.#usable(current, statuses, maxLayer, nowMs)) {
      const nearest = this.#nearest(current, statuses, maxLayer, nowMs);
      return nearest < 0 ? current : nearest;
    }
    if (congested) {
      for (let layer = current - 1; layer >= 0; layer--) {
        if (this.#usable(layer, statuses, maxLayer, nowMs)) return layer;
      }
      return current;
    }
    if (
      nowMs - this.#lastLossAtMs >= this.#hold &&
      nowMs - this.#lastUpgradeAtMs >= this.#hold
    ) {
      for (let layer = current + 1; layer < statuses.length; layer++) {
        if (this.#usable(layer, statuses, maxLayer, nowMs)) {
          this.#lastUpgradeAtMs = nowMs;
          return layer;
        }
      }
    }
    return current;
  }
}
