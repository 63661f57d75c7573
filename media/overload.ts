// Overload protection: what keeps Umbrella from collapsing past saturation.
//
// Every datagram werift sends goes through node:dgram, which copies it and
// finishes the send on a later turn of the event loop. Nothing pushes back:
// once the loop falls behind, those copies pile up without bound (how a
// probe's 160 subscribers collapsed). Three layers answer that, cheapest
// first:
// - SendQueue counts media datagrams (RTP, RTCP) handed to node:dgram and
//   not yet sent, and drops any beyond a hard cap (media/werift_patches.ts
//   does the counting): memory stays bounded whatever happens.
// - Long before that cap, OverloadController sheds video for a growing
//   share of subscribers, those with the worst reported reception first:
//   a simulcast subscription is first moved to its lowest layer, anything
//   else paused; audio is never paused; a paused stream resumes at a
//   keyframe.
// - While that pressure lasts, new participants are refused with a reason;
//   trunks and everyone already in keep going.
// The decisions are taken ten times a second from the event loop's timer
// drift, the highest count of unsent datagrams since the last decision and,
// where datagrams go straight to the kernel (media/native_udp.ts) and none
// wait, whether the kernel refused any; the per-packet cost is one integer
// comparison.

/** Default for --max-pending-sends. Each waiting 1200-byte datagram holds
 * about 7 KB in Deno 2.9's node:dgram (measured), so at most about 70 MB. */
export const DEFAULT_MAX_PENDING_SENDS = 10_000;

/** Media datagrams handed to node:dgram whose send has not completed. */
export class SendQueue {
  /** Beyond this many pending sends, datagrams are dropped. */
  limit: number;
  pending = 0;
  /** The most pending at once since start. */
  highest = 0;
  /** Datagrams dropped because the queue was full. */
  dropped = 0;
  /** Media datagrams sent straight to the kernel that it refused (its
   * socket buffer full): the native path's only sign of falling behind. */
  refused = 0;
  #peak = 0;

  constructor(limit = DEFAULT_MAX_PENDING_SENDS) {
    this.limit = limit;
  }

  /** Counts one datagram in, or says to drop it when the queue is full. */
  acquire(): boolean {
    if (this.pending >= this.limit) {
      this.dropped++;
      return false;
    }
    const pending = ++this.pending;
    if (pending > this.#peak) {
      this.#peak = pending;
      if (pending > this.highest) this.highest = pending;
    }
    return true;
  }

  release(count: number): void {
    this.pending -= count;
  }

  /** The most pending at once since the previous call. One fan-out fills
   * the queue and the next turn of the loop empties it, so the count at any
   * given moment says little; the peak over an interval says how far the
   * loop has fallen behind. */
  takePeak(): number {
    const peak = this.#peak;
    this.#peak = this.pending;
    return peak;
  }
}

/** Video subscriptions are ordered into this many ranks for shedding. */
export const SHED_RANKS = 64;
/** Subscribers with the same reception spread over this many ranks, so that
 * shedding a share of them hits the same subscribers every time instead of
 * everyone taking turns (each turn would cost a keyframe). */
const TIEBREAKS = 8;
/** Loss (reported, or NACKed) at or above each step puts a subscription in
 * the next reception class; eight classes of TIEBREAKS ranks each. */
const LOSS_STEPS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5];
/** The rank of a subscription that is never shed (audio, trunks). */
export const NEVER_SHED = -1;

/** A stable spread of subscribers over the tie-break ranks. */
export function tiebreakFor(subscriberId: string): number {
  let hash = 0x811c9dc5; // FNV-1a
  for (let i = 0; i < subscriberId.length; i++) {
    hash = Math.imul(hash ^ subscriberId.charCodeAt(i), 0x01000193);
  }
  return (hash >>> 0) % TIEBREAKS;
}

/** Higher ranks are shed first: worse reception (loss as a fraction 0..1),
 * then the subscriber's tie-break. */
export function shedRank(loss: number, tiebreak: number): number {
  let lossClass = 0;
  while (lossClass < LOSS_STEPS.length && loss >= LOSS_STEPS[lossClass]) {
    lossClass++;
  }
  return lossClass * TIEBREAKS + tiebreak;
}

/**
 * Which video subscriptions are shed: those ranked at or above `cutoff`. A
 * plain one is paused. A simulcast one is first moved to its lowest layer
 * (a tenth or so of the top layer's packets, and the picture goes on), and
 * paused only at or above `pauseCutoff`, which follows `cutoff` one step
 * behind: if moving it down did not relieve the node, the next step up
 * pauses it.
 */
export class VideoShedding {
  /** SHED_RANKS sheds nothing; 0 sheds every video subscription. */
  cutoff = SHED_RANKS;
  /** Where simulcast subscriptions start being paused (at or above cutoff). */
  pauseCutoff = SHED_RANKS;
  /** Video packets not forwarded because their subscription was paused. */
  packetsShed = 0;
  /** Subscriptions per rank: plain ones, and simulcast ones. */
  readonly #ranks = new Array<number>(SHED_RANKS).fill(0);
  readonly #layeredRanks = new Array<number>(SHED_RANKS).fill(0);
  readonly #protected = new Set<string>();

  /** Subscriptions of this subscriber (a trunk) are never shed. */
  protect(subscriberId: string): void {
    this.#protected.add(subscriberId);
  }

  unprotect(subscriberId: string): void {
    this.#protected.delete(subscriberId);
  }

  /** Counts in a new video subscription at a rank (`layered`: one that can
   * move between simulcast layers); returns the rank it holds, NEVER_SHED
   * for a protected subscriber. */
  enter(subscriberId: string, rank: number, layered = false): number {
    if (this.#protected.has(subscriberId)) return NEVER_SHED;
    this.#counts(layered)[rank]++;
    return rank;
  }

  move(from: number, to: number, layered = false): void {
    if (from === NEVER_SHED || from === to) return;
    const counts = this.#counts(layered);
    counts[from]--;
    counts[to]++;
  }

  leave(rank: number, layered = false): void {
    if (rank !== NEVER_SHED) this.#counts(layered)[rank]--;
  }

  #counts(layered: boolean): number[] {
    return layered ? this.#layeredRanks : this.#ranks;
  }

  /** Sets the cutoffs so that at least `fraction` of the subscriptions that
   * may be shed are, the highest ranks first. */
  shed(fraction: number): void {
    this.cutoff = this.#cutoffFor(fraction);
    this.pauseCutoff = this.#cutoffFor(fraction - 1 / SHED_STEPS);
  }

  #cutoffFor(fraction: number): number {
    let total = 0;
    for (let rank = 0; rank < SHED_RANKS; rank++) {
      total += this.#ranks[rank] + this.#layeredRanks[rank];
    }
    const target = Math.ceil(Math.max(0, fraction) * total);
    let cutoff = SHED_RANKS;
    for (let shed = 0; shed < target && cutoff > 0;) {
      cutoff--;
      shed += this.#ranks[cutoff] + this.#layeredRanks[cutoff];
    }
    return cutoff;
  }

  /** Video subscriptions paused now. */
  get paused(): number {
    let paused = 0;
    for (let rank = this.cutoff; rank < SHED_RANKS; rank++) {
      paused += this.#ranks[rank];
    }
    for (let rank = this.pauseCutoff; rank < SHED_RANKS; rank++) {
      paused += this.#layeredRanks[rank];
    }
    return paused;
  }

  /** Simulcast subscriptions held on their lowest layer now. */
  get lowered(): number {
    let lowered = 0;
    for (let rank = this.cutoff; rank < this.pauseCutoff; rank++) {
      lowered += this.#layeredRanks[rank];
    }
    return lowered;
  }
}

export interface OverloadLimits {
  /** The send queue's hard cap. */
  maxPendingSends: number;
  /** A peak of pending sends at or above this is pressure. */
  pressurePendingSends: number;
  /** A peak at or below this (with little lag) is calm. */
  calmPendingSends: number;
  /** Smoothed event loop lag at or above this is pressure. */
  pressureLagMs: number;
  /** Smoothed lag below this (with few pending sends) is calm. */
  calmLagMs: number;
}

export function limitsFor(maxPendingSends: number): OverloadLimits {
  return {
    maxPendingSends,
    pressurePendingSends: Math.ceil(maxPendingSends / 4),
    calmPendingSends: Math.floor(maxPendingSends / 8),
    // Forwarding that falls behind shows in the send queue first. Lag alone
    // counts only when it is severe and lasting: a join burst (DTLS
    // handshakes) or a busy machine stalls the loop for tens of
    // milliseconds without the node being over its capacity.
    pressureLagMs: 300,
    calmLagMs: 100,
  };
}

/** Video is shed in steps of 1/SHED_STEPS of the subscriptions. */
export const SHED_STEPS = 8;
/** Decisions are taken every TICK_MS... */
const TICK_MS = 100;
/** ...until CALM_TICKS_BEFORE_SLOW ticks in a row found calm and nothing
 * shed; then every SLOW_TICK_MS, until a tick finds anything else. A lightly
 * loaded node then wakes once a second for this, not ten times: at a few
 * hundred packets a second each wake-up of the event loop costs about as
 * much as the packets (see docs/performance.md). A late timer is itself the
 * sign of load, so a slow tick still notices it. */
const CALM_TICKS_BEFORE_SLOW = 50;
const SLOW_TICK_MS = 1000;
/** A step up waits this many ticks after the previous one, for it to show. */
const TICKS_BETWEEN_RAISES = 5;
/** Shedding starts only after this many ticks of pressure in a row: a burst
 * of joins (DTLS handshakes) or of keyframes for many subscribers fills the
 * queue or delays the loop for a moment and drains on its own. */
const PRESSURE_TICKS_TO_START = 5;
/** A step down needs this many calm ticks in a row: resuming costs a
 * keyframe, so shedding is quick to rise and slow to fall. */
const CALM_TICKS_TO_LOWER = 20;
/** Weight of the newest drift sample in the smoothed lag. */
const LAG_SMOOTHING = 0.3;

/** Turns one tick's signals into how much video to shed and whether to
 * admit new participants, with hysteresis in both directions. */
export class OverloadController {
  readonly limits: OverloadLimits;
  /** Smoothed event loop lag. */
  lagMs = 0;
  /** How many SHED_STEPS of the video subscriptions are shed. */
  shedSteps = 0;
  /** Counts overload episodes: it changes each time one begins. */
  episode = 0;
  /** The last tick found calm and nothing is shed. */
  atRest = true;
  #ticksSinceRaise = TICKS_BETWEEN_RAISES;
  #calmTicks = 0;
  #pressureTicks = 0;

  constructor(limits: OverloadLimits) {
    this.limits = limits;
  }

  /** Refuse new participants while any video is shed, or would be. */
  get overloaded(): boolean {
    return this.shedSteps > 0;
  }

  get shedFraction(): number {
    return this.shedSteps / SHED_STEPS;
  }

  /** Back to rest: nothing shed, no lag remembered. */
  reset(): void {
    this.atRest = true;
    this.lagMs = 0;
    this.shedSteps = 0;
    this.#ticksSinceRaise = TICKS_BETWEEN_RAISES;
    this.#calmTicks = 0;
    this.#pressureTicks = 0;
  }

  /** One tick: how late its timer fired, the peak of pending sends and
   * the datagrams the kernel refused since the previous tick. */
  tick(driftMs: number, peakPendingSends: number, refused = 0): void {
    const limits = this.limits;
    this.lagMs += LAG_SMOOTHING * (Math.max(0, driftMs) - this.lagMs);
    this.#ticksSinceRaise++;
    const pressure = peakPendingSends >= limits.pressurePendingSends ||
      refused > 0 || this.lagMs >= limits.pressureLagMs;
    const calm = peakPendingSends <= limits.calmPendingSends &&
      refused === 0 && this.lagMs < limits.calmLagMs;
    if (pressure) {
      this.#calmTicks = 0;
      this.#pressureTicks++;
      if (
        this.shedSteps < SHED_STEPS &&
        this.#ticksSinceRaise >= TICKS_BETWEEN_RAISES &&
        this.#pressureTicks >= PRESSURE_TICKS_TO_START
      ) {
        if (this.shedSteps === 0) this.episode++;
        this.shedSteps++;
        this.#ticksSinceRaise = 0;
      }
    } else if (calm && this.shedSteps > 0) {
      this.#pressureTicks = 0;
      if (++this.#calmTicks >= CALM_TICKS_TO_LOWER) {
        this.shedSteps--;
        this.#calmTicks = 0;
      }
    } else {
      this.#calmTicks = 0;
      if (this.shedSteps === 0) this.#pressureTicks = 0;
    }
    this.atRest = calm && this.shedSteps === 0;
  }
}

/** What a join asks of the overload state. */
export type Admission = "admit" | "refuse" | "refuse-and-warn";

export interface AdmissionGate {
  /** Whether a new participant may join now; a refusal is counted, and the
   * first of each overload episode says to warn. */
  admit(): Admission;
}

export interface OverloadStats {
  /** Whether the load is watched now (see OverloadMonitor.start). */
  watching: boolean;
  overloaded: boolean;
  lagSeconds: number;
  /** The most pending at once during the latest tick. */
  pendingSends: number;
  pendingSendsHighest: number;
  pendingSendsLimit: number;
  shedFraction: number;
  videoSubscriptionsPaused: number;
  /** Simulcast subscriptions held on their lowest layer to shed load. */
  videoSubscriptionsLowered: number;
  packetsShed: {
    videoPaused: number;
    sendQueueFull: number;
    socketBufferFull: number;
  };
  joinsRefused: number;
}

/** The process's send queue, counted by media/werift_patches.ts. */
export const sendQueue = new SendQueue();
/** The process's video shedding, applied by media/consumer.ts. */
export const videoShedding = new VideoShedding();

/** Runs the controller on a timer and applies its decisions. The timer
 * runs only while there is something to protect: ten wake-ups a second
 * were all the CPU an idle node used (0.3% of a core here, more on an
 * access point's CPU, which it also kept from sleeping). */
export class OverloadMonitor implements AdmissionGate {
  readonly controller: OverloadController;
  joinsRefused = 0;
  #queue: SendQueue;
  #shedding: VideoShedding;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastTickMs = 0;
  #tickMs = TICK_MS;
  #restingTicks = 0;
  #lastPeak = 0;
  #lastRefused = 0;
  #warnedEpisode = 0;
  #onChange: (overloaded: boolean, stats: OverloadStats) => void;

  constructor(
    limits: OverloadLimits,
    onChange: (overloaded: boolean, stats: OverloadStats) => void,
    queue = sendQueue,
    shedding = videoShedding,
  ) {
    this.controller = new OverloadController(limits);
    this.#onChange = onChange;
    this.#queue = queue;
    this.#shedding = shedding;
    queue.limit = limits.maxPendingSends;
  }

  /** Starts watching; again while watching does nothing. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#tickMs = TICK_MS;
    this.#restingTicks = 0;
    this.#schedule();
  }

  #schedule(): void {
    this.#lastTickMs = performance.now();
    this.#timer = setTimeout(() => {
      this.#tickMs = this.tick(
        performance.now() - this.#lastTickMs - this.#tickMs,
      );
      this.#schedule();
    }, this.#tickMs);
  }

  /** Stops watching and lifts any shedding: with nothing left to protect,
   * the next participant is admitted. */
  stop(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const wasOverloaded = this.controller.overloaded;
    this.controller.reset();
    this.#shedding.shed(0);
    if (wasOverloaded) this.#onChange(false, this.stats());
  }

  /** One decision; start() calls it on its timer. Returns how long until
   * the next. */
  tick(driftMs: number): number {
    const controller = this.controller;
    const wasOverloaded = controller.overloaded;
    this.#lastPeak = this.#queue.takePeak();
    const refused = this.#queue.refused - this.#lastRefused;
    this.#lastRefused = this.#queue.refused;
    controller.tick(driftMs, this.#lastPeak, refused);
    this.#shedding.shed(controller.shedFraction);
    if (controller.overloaded !== wasOverloaded) {
      this.#onChange(controller.overloaded, this.stats());
    }
    this.#restingTicks = controller.atRest ? this.#restingTicks + 1 : 0;
    return this.#restingTicks >= CALM_TICKS_BEFORE_SLOW
      ? SLOW_TICK_MS
      : TICK_MS;
  }

  admit(): Admission {
    const controller = this.controller;
    if (!controller.overloaded) return "admit";
    this.joinsRefused++;
    if (this.#warnedEpisode === controller.episode) return "refuse";
    this.#warnedEpisode = controller.episode;
    return "refuse-and-warn";
  }

  stats(): OverloadStats {
    const controller = this.controller;
    const queue = this.#queue;
    return {
      watching: this.#timer !== undefined,
      overloaded: controller.overloaded,
      lagSeconds: controller.lagMs / 1000,
      pendingSends: this.#lastPeak,
      pendingSendsHighest: queue.highest,
      pendingSendsLimit: queue.limit,
      shedFraction: controller.shedFraction,
      videoSubscriptionsPaused: this.#shedding.paused,
      videoSubscriptionsLowered: this.#shedding.lowered,
      packetsShed: {
        videoPaused: this.#shedding.packetsShed,
        sendQueueFull: queue.dropped,
        socketBufferFull: queue.refused,
      },
      joinsRefused: this.joinsRefused,
    };
  }
}
