// Where each remote track should come from. Every node announces the tracks
// it can forward with the path they took (node ids, origin first); a node
// never accepts a path that already contains itself, so announcements cannot
// loop, and for each track it pulls from exactly one neighbour: the one with
// the shortest path, ties broken by link id so a node's choice does not flap.
// Pure logic: the trunk code applies the changes it returns.

export interface Route<T extends { path: string[] }> {
  /** The trunk connection the track would come over. */
  linkId: string;
  /** The announced description; its path ends at the announcing neighbour. */
  description: T;
}

export interface RouteChange<T extends { path: string[] }> {
  trackId: string;
  before: Route<T> | undefined;
  after: Route<T> | undefined;
}

export class RouteTable<T extends { id: string; path: string[] }> {
  readonly localNodeId: string;
  /** trackId → linkId → what that link announced. */
  #candidates = new Map<string, Map<string, T>>();
  #best = new Map<string, Route<T>>();

  constructor(localNodeId: string) {
    this.localNodeId = localNodeId;
  }

  best(trackId: string): Route<T> | undefined {
    return this.#best.get(trackId);
  }

  /** Tracks whose best route is over this link. */
  routedOver(linkId: string): string[] {
    return [...this.#best].filter(([, r]) => r.linkId === linkId).map(([id]) =>
      id
    );
  }

  /** A neighbour announced (or re-announced) a track. */
  learn(linkId: string, description: T): RouteChange<T> | undefined {
    const candidates = this.#candidates.get(description.id) ??
      new Map<string, T>();
    if (
      description.path.includes(this.localNodeId) ||
      description.path.length === 0
    ) {
      // The track already passed through here: not a route, and whatever
      // this link offered before is no longer offered.
      if (!candidates.delete(linkId)) return undefined;
    } else {
      candidates.set(linkId, description);
    }
    this.#candidates.set(description.id, candidates);
    return this.#reselect(description.id);
  }

  /** A neighbour withdrew a track. */
  forget(linkId: string, trackId: string): RouteChange<T> | undefined {
    const candidates = this.#candidates.get(trackId);
    if (!candidates?.delete(linkId)) return undefined;
    return this.#reselect(trackId);
  }

  /** A link went down: everything it offered is gone. */
  forgetLink(linkId: string): RouteChange<T>[] {
    const changes: RouteChange<T>[] = [];
    for (const [trackId, candidates] of this.#candidates) {
      if (!candidates.delete(linkId)) continue;
      const change = this.#reselect(trackId);
      if (change) changes.push(change);
    }
    return changes;
  }

  #reselect(trackId: string): RouteChange<T> | undefined {
    const candidates = this.#candidates.get(trackId)!;
    let chosen: Route<T> | undefined;
    for (const [linkId, description] of candidates) {
      if (
        !chosen || description.path.length < chosen.description.path.length ||
        (description.path.length === chosen.description.path.length &&
          linkId < chosen.linkId)
      ) {
        chosen = { linkId, description };
      }
    }
    if (candidates.size === 0) this.#candidates.delete(trackId);
    const before = this.#best.get(trackId);
    if (chosen) this.#best.set(trackId, chosen);
    else this.#best.delete(trackId);
    const same = before && chosen && before.linkId === chosen.linkId &&
      before.description === chosen.description;
    if (same || (!before && !chosen)) return undefined;
    return { trackId, before, after: chosen };
  }
}
