// Tracks that live on other nodes. Links (trunks) announce what they can
// forward; the route table picks one link per track; this module keeps the
// router's Track for it, pulls media over the chosen link only while
// someone here subscribes, and moves the pull when the route changes.
import type { Router } from "./router.ts";
import { type RouteChange, RouteTable } from "./route_table.ts";
import { Track, type TrackDescription, type TrackUpstream } from "./track.ts";
import type { InboundFeed, InboundTracks } from "./webrtc_peer.ts";

/** A trunk connection as routing sees it. */
export interface TrunkLink {
  readonly linkId: string;
  subscribe(trackIds: string[]): void;
  unsubscribe(trackIds: string[]): void;
}

/** The upstream of a routed track: whichever link its route uses now. */
class RoutedUpstream implements TrackUpstream {
  link: TrunkLink;
  feed: InboundFeed | undefined;
  wanted = false;
  readonly trackId: string;

  constructor(trackId: string, link: TrunkLink) {
    this.trackId = trackId;
    this.link = link;
  }

  requestKeyframe(): void {
    this.feed?.requestKeyframe();
  }

  sendNack(lost: number[]): void {
    this.feed?.sendNack(lost);
  }

  setDemand(wanted: boolean): void {
    this.wanted = wanted;
    if (wanted) this.link.subscribe([this.trackId]);
    else this.link.unsubscribe([this.trackId]);
  }
}

export class TrunkRouting {
  readonly localNodeId: string;
  #router: Router;
  #table: RouteTable<TrackDescription>;
  #links = new Map<string, TrunkLink>();
  #upstreams = new Map<string, RoutedUpstream>();
  /** trackId → linkId → the stream that link sends us for it. */
  #feeds = new Map<string, Map<string, InboundFeed>>();

  constructor(router: Router, localNodeId: string) {
    this.#router = router;
    this.localNodeId = localNodeId;
    this.#table = new RouteTable(localNodeId);
  }

  addLink(link: TrunkLink): void {
    this.#links.set(link.linkId, link);
  }

  /** The link is gone: its tracks fail over to other links or end. */
  removeLink(linkId: string): void {
    for (const change of this.#table.forgetLink(linkId)) this.#apply(change);
    this.#links.delete(linkId);
    for (const feeds of this.#feeds.values()) feeds.delete(linkId);
  }

  announced(linkId: string, description: TrackDescription): void {
    // A track published on this node never comes back over a trunk.
    if (
      this.#router.tracks.has(description.id) &&
      !this.#upstreams.has(description.id)
    ) return;
    const change = this.#table.learn(linkId, description);
    if (change) this.#apply(change);
  }

  withdrawn(linkId: string, trackId: string): void {
    const change = this.#table.forget(linkId, trackId);
    if (change) this.#apply(change);
  }

  /** Which link each routed track comes over, for status pages. */
  routedOver(linkId: string): string[] {
    return this.#table.routedOver(linkId);
  }

  /** How a link's received streams feed the routed tracks. */
  inboundFor(linkId: string): InboundTracks {
    return {
      open: (binding, _codec, _kind, feed) => {
        const trackId = binding.localId;
        const upstream = this.#upstreams.get(trackId);
        if (!upstream) return undefined;
        let feeds = this.#feeds.get(trackId);
        if (!feeds) this.#feeds.set(trackId, feeds = new Map());
        feeds.set(linkId, feed);
        feed.active = upstream.link.linkId === linkId;
        if (feed.active) upstream.feed = feed;
        return this.#router.tracks.get(trackId);
      },
      close: (binding, _track, feed) => {
        const trackId = binding.localId;
        this.#feeds.get(trackId)?.delete(linkId);
        const upstream = this.#upstreams.get(trackId);
        if (upstream?.feed === feed) upstream.feed = undefined;
      },
    };
  }

  #apply({ trackId, before, after }: RouteChange<TrackDescription>): void {
    if (!after) {
      this.#upstreams.delete(trackId);
      this.#feeds.delete(trackId);
      this.#router.unpublish(trackId);
      return;
    }
    const link = this.#links.get(after.linkId);
    if (!link) return;
    const description: TrackDescription = {
      ...after.description,
      path: [...after.description.path, this.localNodeId],
    };
    if (!before) {
      const upstream = new RoutedUpstream(trackId, link);
      this.#upstreams.set(trackId, upstream);
      this.#router.publish(new Track(description, after.linkId, upstream));
      return;
    }
    const track = this.#router.tracks.get(trackId);
    const upstream = this.#upstreams.get(trackId);
    if (!track || !upstream) return;
    Object.assign(track.description, description);
    if (before.linkId !== after.linkId) {
      if (upstream.wanted) upstream.link.unsubscribe([trackId]);
      if (upstream.feed) upstream.feed.active = false;
      upstream.link = link;
      upstream.feed = this.#feeds.get(trackId)?.get(after.linkId);
      if (upstream.feed) upstream.feed.active = true;
      track.publisherId = after.linkId;
      if (upstream.wanted) link.subscribe([trackId]);
      // The stream now comes from elsewhere: each subscriber continues its
      // numbering from the next keyframe of the new source.
      const now = performance.now();
      for (const consumer of track.consumers) consumer.restart(now);
    }
    this.#router.updated(track);
  }
}
