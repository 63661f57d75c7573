// Messages between bench/run.ts and its load-generator processes, one JSON
// object per line. Generator stdout lines without the prefix (anything a
// library prints) are not protocol and are ignored.
import type { ReceiveLeg, StreamWindow } from "./receive_stats.ts";
import type { MediaProfile } from "./media_source.ts";
import type { CapturedLeg } from "./wire_latency.ts";

export const LINE_PREFIX = "@@bench ";

export type PeerSpec =
  | {
    key: string;
    target: "umbrella";
    wsUrl: string;
    publishTag?: number;
    receive: boolean;
  }
  | {
    key: string;
    target: "janus-publisher";
    apiUrl: string;
    mediaAddress: string;
    tag: number;
  }
  | {
    key: string;
    target: "janus-subscriber";
    apiUrl: string;
    mediaAddress: string;
    feedId: number;
  };

export type Request =
  | { op: "info" }
  | {
    op: "join";
    peers: PeerSpec[];
    profile: MediaProfile;
    /** Joins at once; default a few, all of them for a join burst. */
    concurrency?: number;
  }
  | { op: "progress" }
  | { op: "legs" }
  | { op: "mark" }
  | { op: "report" }
  | { op: "close" };

/** How a load generator's werift is set up. */
export interface GeneratorInfo {
  /** The SRTP implementation media/werift_patches.ts installed. */
  srtp: string;
  /** Why the native SRTP path is not in use, if it is not. */
  srtpFallback: string | null;
  /** Why UDP sends go through node:dgram rather than straight to the
   * kernel, if they do. */
  udpFallback: string | null;
}

export interface JoinResult {
  key: string;
  error?: string;
  /** A Janus publisher's feed id. */
  feedId?: number;
}

export interface PeerProgress {
  key: string;
  /** Tags of the streams this peer has received at least one packet of. */
  tags: number[];
  receiveLeg: ReceiveLeg;
}

/** A peer's connections as a loopback capture sees them. */
export interface PeerLegs {
  send?: CapturedLeg;
  receive?: CapturedLeg;
}

export interface PeerReport {
  key: string;
  streams: StreamWindow[];
  /** Join start to the first media packet, if any arrived. */
  joinToFirstMediaMs?: number;
  notices: string[];
}

export interface WindowReport {
  peers: PeerReport[];
  /** Latency histogram of the window, as sparse [bucket, count] pairs. */
  latency: [number, number][];
  /** Packets published so far, by tag. */
  sent: Record<number, number>;
}

export interface Reply {
  id: number;
  error?: string;
  result?: unknown;
}
