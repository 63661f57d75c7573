// The router: the session's peers and the tracks they publish. A peer is a
// browser, a program, a trunk to another node or a camera; it hears about
// every track but its own and subscribes to the ones it wants.
import type { MediaKind, Track, TrackTotals } from "./track.ts";

export type PeerKind = "browser" | "client" | "node" | "camera";

export interface RouterPeer {
  readonly id: string;
  readonly kind: PeerKind;
  trackAdded(track: Track): void;
  trackUpdated(track: Track): void;
  trackRemoved(track: Track): void;
}

export interface KindTotals extends TrackTotals {
  consumers: number;
}

const zeroTotals = (): KindTotals => ({
  packetsIn: 0,
  bytesIn: 0,
  packetsOut: 0,
  bytesOut: 0,
  retransmitted: 0,
  nackedUpstream: 0,
  keyframeRequests: 0,
  nackMisses: 0,
  consumers: 0,
});

export class Router {
  readonly tracks = new Map<string, Track>();
  readonly peers = new Map<string, RouterPeer>();
  /** Simulcast groups' layers, lowest first, by group. */
  #groups = new Map<string, Track[]>();
  /** Counters of tracks that have ended, so totals never go backwards. */
  #retired: Record<MediaKind, KindTotals> = {
    audio: zeroTotals(),
    video: zeroTotals(),
  };

  /** Totals per media kind since start, for metrics. */
  totals(): Record<MediaKind, KindTotals> {
    const result = {
      audio: { ...this.#retired.audio },
      video: { ...this.#retired.video },
    };
    for (const track of this.tracks.values()) {
      const sum = result[track.description.kind];
      addTotals(sum, track.totals());
      sum.consumers += track.consumers.length;
    }
    return result;
  }

  addPeer(peer: RouterPeer): void {
    this.peers.set(peer.id, peer);
    for (const track of this.tracks.values()) {
      if (track.publisherId !== peer.id) peer.trackAdded(track);
    }
  }

  /** Removes the peer and ends every track it published. */
  removePeer(peerId: string): void {
    if (!this.peers.delete(peerId)) return;
    for (const track of [...this.tracks.values()]) {
      if (track.publisherId === peerId) this.unpublish(track.id);
    }
  }

  publish(track: Track): void {
    if (this.tracks.has(track.id)) {
      throw new Error(`track ${track.id} is already published`);
    }
    this.tracks.set(track.id, track);
    this.#joinGroup(track);
    for (const peer of this.peers.values()) {
      if (peer.id !== track.publisherId) peer.trackAdded(track);
    }
  }

  /** Tells every peer, its source included: a trunk that now feeds the
   * track must learn it no longer gets it from here. */
  updated(track: Track): void {
    for (const peer of this.peers.values()) peer.trackUpdated(track);
  }

  unpublish(trackId: string): void {
    const track = this.tracks.get(trackId);
    if (!track) return;
    this.tracks.delete(trackId);
    this.#leaveGroup(track);
    track.close();
    addTotals(this.#retired[track.description.kind], track.totals());
    for (const peer of this.peers.values()) {
      if (peer.id !== track.publisherId) peer.trackRemoved(track);
    }
  }

  #joinGroup(track: Track): void {
    const simulcast = track.description.simulcast;
    if (!simulcast) return;
    let layers = this.#groups.get(simulcast.group);
    if (!layers) this.#groups.set(simulcast.group, layers = []);
    let at = layers.length;
    while (
      at > 0 && layers[at - 1].description.simulcast!.layer > simulcast.layer
    ) at--;
    layers.splice(at, 0, track);
    track.layers = layers;
  }

  #leaveGroup(track: Track): void {
    const layers = track.layers;
    if (!layers) return;
    layers.splice(layers.indexOf(track), 1);
    if (layers.length === 0) {
      this.#groups.delete(track.description.simulcast!.group);
    }
  }

  /** The track a peer may subscribe to: it exists and is not its own. */
  subscribable(peerId: string, trackId: string): Track | undefined {
    const track = this.tracks.get(trackId);
    return track && track.publisherId !== peerId ? track : undefined;
  }
}

function addTotals(sum: TrackTotals, add: TrackTotals): void {
  for (const key in add) {
    sum[key as keyof TrackTotals] += add[key as keyof TrackTotals];
  }
}
