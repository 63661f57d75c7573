// One signalling connection speaking proto/umbrella.proto: a browser or
// program that connected to us, another node that connected to us, or a
// node we dialled (a trunk). It is bound to a WebRtcPeer for media and
// registered with the router as a peer. Anything wrong the remote sends
// closes this connection with a reason and touches nothing else.
import {
  decodeEnvelope,
  encodeEnvelope,
  MAX_FRAME_BYTES,
  MAX_NODE_FRAME_BYTES,
  ProtocolError,
} from "../proto/codec.ts";
import {
  type Envelope,
  Leg,
  MediaKind,
  NoticeLevel,
  PeerKind,
  PROTOCOL_VERSION,
  type TrackInfo,
  TrackSource,
} from "../proto/messages.ts";
import type {
  PeerKind as RouterPeerKind,
  Router,
  RouterPeer,
} from "../media/router.ts";
import { type AdmissionGate, videoShedding } from "../media/overload.ts";
import type { MediaNetworkOptions } from "../media/rtc_config.ts";
import type { Track, TrackDescription } from "../media/track.ts";
import type { TrunkRouting } from "../media/trunk_routing.ts";
import {
  type InboundTracks,
  type PublishBinding,
  publishedTracks,
  WebRtcPeer,
} from "../media/webrtc_peer.ts";
import { log } from "./log.ts";

export interface NodeContext {
  router: Router;
  trunks: TrunkRouting;
  nodeId: string;
  site: string;
  version: string;
  network: MediaNetworkOptions;
  /** What each publisher may send (REMB), in bit/s. */
  publishBitrateBps: number;
  /** Says whether a new participant may join while the node is loaded. */
  admission: AdmissionGate;
}

/** A WebSocket, whichever side opened it. */
export interface SignalChannel {
  readonly open: boolean;
  send(data: Uint8Array): void;
  close(code: number, reason: string): void;
  onmessage: ((data: Uint8Array | string) => void) | null;
  onclose: ((code: number, reason: string) => void) | null;
}

export function channelFromWebSocket(socket: WebSocket): SignalChannel {
  socket.binaryType = "arraybuffer";
  const channel: SignalChannel = {
    get open() {
      return socket.readyState === WebSocket.OPEN;
    },
    send: (data) => socket.send(data),
    close: (code, reason) => socket.close(code, reason),
    onmessage: null,
    onclose: null,
  };
  socket.onmessage = (event) =>
    channel.onmessage?.(
      typeof event.data === "string"
        ? event.data
        : new Uint8Array(event.data as ArrayBuffer),
    );
  socket.onclose = (event) => channel.onclose?.(event.code, event.reason);
  socket.onerror = () => {};
  return channel;
}

export const CloseCode = {
  normal: 1000,
  textFrame: 1003,
  tooBig: 1009,
  expectedHello: 4001,
  unsupportedVersion: 4002,
  malformed: 4003,
  selfLink: 4005,
  silent: 4008,
  mediaFailed: 4010,
  shuttingDown: 4011,
  atCapacity: 4012,
  tooManyMessages: 4013,
} as const;

const SILENCE_CLOSE_MS = 30_000;
const PING_INTERVAL_MS = 10_000;
const MAX_IDS_PER_MESSAGE = 256;
/**
 * What one peer may ask of the server. A participant's offer binds its own
 * few tracks; a trunk's binds everything watched across the link, and its
 * subscriptions are a whole site's view. Each subscription is a media
 * section of the offers the server makes, and an offer must fit in a frame
 * (MAX_FRAME_BYTES): that, not these numbers, bounds a trunk, at a few
 * hundred tracks each way. Media sections beyond the bound tracks are
 * rejected or recycled ones; unbundled ones each cost a transport.
 * Messages: a burst, then so many a second, far above what a page sends; a
 * trunk announces each of a site's tracks in a message of its own when it
 * comes up. A flood would slow every other session.
 */
const LIMITS = {
  browser: {
    tracksPerOffer: 64,
    subscriptions: 256,
    messageBurst: 1000,
    messagesPerSecond: 200,
  },
  node: {
    tracksPerOffer: 1024,
    subscriptions: 1024,
    messageBurst: 20_000,
    messagesPerSecond: 2000,
  },
};
const SPARE_SECTIONS_PER_OFFER = 16;
const MAX_ID_LENGTH = 256;
const MAX_NAME_LENGTH = 64;
const MAX_PATH_LENGTH = 32;

let sessionCounter = 0;
const newPeerId = () => {
  const random = crypto.getRandomValues(new Uint8Array(6));
  return `p${(++sessionCounter).toString(36)}${
    Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("")
  }`;
};

/** Close reasons are limited to 123 bytes by the WebSocket protocol. */
const closeReason = (text: string) => {
  const bytes = new TextEncoder().encode(text);
  return bytes.length <= 123
    ? text
    : new TextDecoder().decode(bytes.slice(0, 120)).replace(/\uFFFD$/, "") +
      "...";
};

const PEER_KINDS: Record<number, RouterPeerKind> = {
  [PeerKind.Browser]: "browser",
  [PeerKind.Client]: "client",
  [PeerKind.Node]: "node",
};

export interface SessionOptions {
  /** Where the connection comes from or goes to, for logs. */
  remote: string;
  /** Set when this node opened the connection to another node. */
  dialed?: boolean;
}

export class SignallingSession implements RouterPeer {
  readonly id = newPeerId();
  kind: RouterPeerKind = "client";
  name = "";
  /** The remote node's id and site, for trunks. */
  remoteNodeId = "";
  remoteSite = "";
  readonly connectedAtMs = Date.now();
  #channel: SignalChannel;
  #context: NodeContext;
  #dialed: boolean;
  #peer: WebRtcPeer | undefined;
  #queue: Promise<void> = Promise.resolve();
  #lastHeardMs = performance.now();
  /** Messages sent beyond the allowed rate (a token bucket run backwards:
   * it drains at the rate and must not pass the burst). */
  #messageBacklog = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  /** Tracks announced to a remote node, so withdrawals are only sent for them. */
  #announced = new Set<string>();
  #log;
  onClosed: ((reason: string) => void) | undefined;
  onReady: (() => void) | undefined;

  constructor(
    channel: SignalChannel,
    context: NodeContext,
    options: SessionOptions,
  ) {
    this.#channel = channel;
    this.#context = context;
    this.#dialed = options.dialed ?? false;
    this.#log = log.child({ peer: this.id, remote: options.remote });
    channel.onmessage = (data) => this.#onFrame(data);
    channel.onclose = (code, reason) =>
      this.#teardown(reason || `connection closed (code ${code})`);
    this.#timer = setInterval(() => {
      if (performance.now() - this.#lastHeardMs > SILENCE_CLOSE_MS) {
        this.close(CloseCode.silent, "nothing heard for 30 s");
      } else if (this.#peer) {
        this.#send({ ping: { nonce: Date.now() } });
      }
    }, PING_INTERVAL_MS);
    if (this.#dialed) {
      this.kind = "node";
      this.#send({ hello: this.#ownHello() });
    }
  }

  get peer(): WebRtcPeer | undefined {
    return this.#peer;
  }

  close(code: number, reason: string): void {
    if (this.#channel.open) this.#channel.close(code, closeReason(reason));
    this.#teardown(reason);
  }

  #teardown(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    if (this.kind === "node") {
      videoShedding.unprotect(this.id);
      // Routed tracks fail over before the router drops this peer's tracks;
      // done even without a peer, as the link is added before it is made.
      this.#context.trunks.removeLink(this.id);
    }
    if (this.#peer) {
      if (this.kind === "node") {
        this.#log.info("trunk closed", { site: this.remoteSite, reason });
      } else {
        this.#log.info("participant left", { name: this.name, reason });
      }
      this.#context.router.removePeer(this.id);
      this.#peer.close();
    }
    this.onClosed?.(reason);
  }

  #onFrame(data: Uint8Array | string): void {
    if (this.#closed) return;
    const now = performance.now();
    const limits = this.#limits;
    this.#messageBacklog = Math.max(
      0,
      this.#messageBacklog -
        (now - this.#lastHeardMs) * limits.messagesPerSecond / 1000,
    ) + 1;
    this.#lastHeardMs = now;
    if (this.#messageBacklog > limits.messageBurst) {
      const reason = `more than ${limits.messagesPerSecond} messages a second`;
      this.#log.warn("closing a connection that floods messages", { reason });
      this.close(CloseCode.tooManyMessages, reason);
      return;
    }
    if (typeof data === "string") {
      this.close(
        CloseCode.textFrame,
        "text frames are not part of the protocol; send binary protobuf",
      );
      return;
    }
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(
        data,
        this.kind === "node" ? MAX_NODE_FRAME_BYTES : MAX_FRAME_BYTES,
      );
    } catch (error) {
      const tooBig = (error as Error).message.includes("exceeds");
      this.#log.warn("bad signalling frame", { error });
      this.close(
        tooBig ? CloseCode.tooBig : CloseCode.malformed,
        (error as Error).message,
      );
      return;
    }
    // Handled one at a time: offers and answers must not interleave.
    this.#queue = this.#queue.then(() => this.#handle(envelope)).catch(
      (error) => {
        this.#log.warn("closing connection after a bad message", { error });
        this.close(CloseCode.malformed, (error as Error).message);
      },
    );
  }

  get #limits() {
    return this.kind === "node" ? LIMITS.node : LIMITS.browser;
  }

  async #handle(message: Envelope): Promise<void> {
    if (this.#closed) return;
    const peer = this.#peer;
    if (!peer) return this.#handleHello(message);
    if (message.offer) {
      const tracks = message.offer.tracks ?? [];
      const limits = this.#limits;
      if (tracks.length > limits.tracksPerOffer) {
        throw new ProtocolError(
          `an offer may carry at most ${limits.tracksPerOffer} tracks`,
        );
      }
      const bindings: PublishBinding[] = tracks.map((binding) => ({
        mid: requireText(binding.mid, "offer track mid"),
        localId: binding.track?.id ||
          requireText(binding.mid, "offer track mid"),
        label: (binding.track?.label ?? "").slice(0, MAX_NAME_LENGTH),
        muted: binding.track?.muted ?? false,
      }));
      requireDistinct(bindings.map((binding) => binding.mid), "offer mid");
      requireDistinct(
        bindings.map((binding) => binding.localId),
        "offer track id",
      );
      const sdp = requireSdp(message.offer.sdp);
      const sections = sdp.match(/^m=/gm)?.length ?? 0;
      const maxSections = limits.tracksPerOffer + SPARE_SECTIONS_PER_OFFER;
      if (sections > maxSections) {
        throw new ProtocolError(
          `an offer may have at most ${maxSections} media sections`,
        );
      }
      await peer.handleOffer(sdp, bindings);
    } else if (message.answer) {
      await peer.handleAnswer(requireSdp(message.answer.sdp));
    } else if (message.candidate) {
      const { candidate, leg, sdpMid, sdpMlineIndex } = message.candidate;
      if (!candidate) return; // end of candidates
      if (leg !== Leg.Receive && leg !== Leg.Send) {
        throw new ProtocolError(
          "a candidate must say which connection it is for",
        );
      }
      await peer.addRemoteCandidate(leg === Leg.Receive ? "receive" : "send", {
        candidate,
        sdpMid,
        sdpMLineIndex: sdpMlineIndex ?? 0,
      });
    } else if (message.subscribe) {
      const ids = requireIds(message.subscribe.trackIds);
      const limit = this.#limits.subscriptions;
      if (peer.subscriptionCount + ids.length > limit) {
        throw new ProtocolError(`at most ${limit} subscriptions per peer`);
      }
      peer.subscribe(ids);
    } else if (message.unsubscribe) {
      peer.unsubscribe(requireIds(message.unsubscribe.trackIds));
    } else if (message.announce) {
      const tracks = message.announce.tracks ?? [];
      if (tracks.length > MAX_IDS_PER_MESSAGE) {
        throw new ProtocolError(
          `at most ${MAX_IDS_PER_MESSAGE} tracks per announcement`,
        );
      }
      for (const info of tracks) {
        if (this.kind === "node") {
          this.#trunkAnnounced(info);
        } else if (info.id) {
          peer.setMuted(info.id, info.muted ?? false);
        }
      }
    } else if (message.withdraw) {
      if (this.kind !== "node") return;
      for (const trackId of requireIds(message.withdraw.trackIds)) {
        this.#context.trunks.withdrawn(this.id, trackId);
      }
    } else if (message.layerPreference) {
      const { trackId, maxLayer } = message.layerPreference;
      peer.setMaxLayer(
        requireText(trackId, "layer preference track id"),
        maxLayer ?? 0,
      );
    } else if (message.keyframeRequest?.trackId) {
      peer.requestKeyframe(message.keyframeRequest.trackId);
    } else if (message.ping) {
      this.#send({ pong: { nonce: message.ping.nonce ?? 0 } });
    } else if (message.bye) {
      this.close(CloseCode.normal, message.bye.reason || "bye");
    } else if (message.hello) {
      throw new ProtocolError("hello may only be sent once");
    }
  }

  #ownHello(): Envelope["hello"] {
    const context = this.#context;
    return {
      protocolVersion: PROTOCOL_VERSION,
      kind: PeerKind.Node,
      nodeId: context.nodeId,
      name: context.site,
      site: context.site,
      software: `umbrella/${context.version}`,
      assignedPeerId: this.#dialed ? undefined : this.id,
    };
  }

  #handleHello(message: Envelope): void {
    const hello = message.hello;
    if (!hello) {
      this.close(CloseCode.expectedHello, "the first message must be hello");
      return;
    }
    if (hello.protocolVersion !== PROTOCOL_VERSION) {
      this.close(
        CloseCode.unsupportedVersion,
        `unsupported protocol version ${
          hello.protocolVersion ?? 0
        }; this server speaks ${PROTOCOL_VERSION}`,
      );
      return;
    }
    const context = this.#context;
    if (this.#dialed && hello.kind !== PeerKind.Node) {
      this.close(
        CloseCode.expectedHello,
        "the remote is not an Umbrella node",
      );
      return;
    }
    this.kind = PEER_KINDS[hello.kind ?? 0] ?? "client";
    this.name = (hello.name ?? "").trim().slice(0, MAX_NAME_LENGTH) ||
      "Guest";
    // Trunks are let in: refusing one would cut off a whole site, and a
    // link coming back after a blip brings no new viewers.
    const admission = this.kind === "node"
      ? "admit"
      : context.admission.admit();
    if (admission !== "admit") {
      if (admission === "refuse-and-warn") {
        this.#log.warn("refusing new participants: this server is overloaded", {
          name: this.name,
        });
      }
      this.close(
        CloseCode.atCapacity,
        "this server is at capacity; try again in a moment",
      );
      return;
    }
    let inbound: InboundTracks;
    if (this.kind === "node") {
      if (!/^[0-9a-f]{8,64}$/.test(hello.nodeId ?? "")) {
        throw new ProtocolError("a node's hello must carry its node id");
      }
      if (hello.nodeId === context.nodeId) {
        this.close(
          CloseCode.selfLink,
          "this trunk leads back to the same node",
        );
        return;
      }
      this.remoteNodeId = hello.nodeId!;
      this.remoteSite = (hello.site ?? "").slice(0, MAX_NAME_LENGTH);
      // Another site's whole view of these tracks rides on this link.
      videoShedding.protect(this.id);
      inbound = context.trunks.inboundFor(this.id);
      context.trunks.addLink({
        linkId: this.id,
        subscribe: (trackIds) =>
          this.#sendInBatches(trackIds, (ids) => ({
            subscribe: { trackIds: ids },
          })),
        unsubscribe: (trackIds) =>
          this.#sendInBatches(trackIds, (ids) => ({
            unsubscribe: { trackIds: ids },
          })),
      });
    } else {
      inbound = publishedTracks(
        context.router,
        this.id,
        (binding, codec, kind, layer): TrackDescription => {
          this.#log.debug("publishing a track", {
            name: this.name,
            kind,
            codec: codec.mimeType,
            layer: layer?.rid,
          });
          const id = `${this.id}:${binding.localId}`;
          return {
            // Each layer is a track of its own (see proto Simulcast).
            id: layer ? `${id}/${layer.rid}` : id,
            kind,
            mimeType: codec.mimeType,
            fmtp: codec.parameters ?? "",
            clockRate: codec.clockRate,
            channels: codec.channels ?? 0,
            participantId: this.id,
            participantName: this.name,
            site: context.site,
            originNodeId: context.nodeId,
            path: [context.nodeId],
            source: "participant",
            label: binding.label,
            muted: binding.muted,
            simulcast: layer && { group: id, layer: layer.layer },
          };
        },
      );
    }
    this.#peer = new WebRtcPeer({
      id: this.id,
      router: context.router,
      network: context.network,
      inbound,
      adaptive: this.kind !== "node",
      publishBitrateBps: this.kind === "node"
        ? undefined
        : context.publishBitrateBps,
      events: {
        offer: (sdp, tracks) =>
          this.#send({
            offer: {
              sdp,
              tracks: tracks.map(({ mid, track }) => ({
                mid,
                track: toTrackInfo(track),
              })),
            },
          }),
        answer: (sdp) => this.#send({ answer: { sdp } }),
        layersWanted: (trackIds, wanted) =>
          this.#send(
            wanted
              ? { subscribe: { trackIds } }
              : { unsubscribe: { trackIds } },
          ),
        notice: (code, text, trackId) =>
          this.#send({
            notice: { level: NoticeLevel.Warning, code, text, trackId },
          }),
        failed: (reason) => {
          this.#log.warn("media connection failed", {
            name: this.name,
            reason,
          });
          this.close(CloseCode.mediaFailed, reason);
        },
      },
    });
    if (!this.#dialed) this.#send({ hello: this.#ownHello() });
    if (this.kind === "node") {
      this.#log.info("trunk connected", {
        site: this.remoteSite,
        node: this.remoteNodeId,
        direction: this.#dialed ? "outgoing" : "incoming",
      });
    } else {
      this.#log.info("participant joined", {
        name: this.name,
        kind: this.kind,
      });
    }
    context.router.addPeer(this);
    this.onReady?.();
  }

  /** One track another node cannot describe well is skipped, not the
   * whole link: the rest of that site stays in the call. */
  #trunkAnnounced(info: TrackInfo): void {
    let description: TrackDescription;
    try {
      description = fromTrackInfo(info);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.#log.warn("ignoring a track another node announced", {
        site: this.remoteSite,
        reason: error.message,
      });
      return;
    }
    this.#context.trunks.announced(this.id, description);
  }

  #send(message: Envelope): void {
    if (!this.#channel.open) return;
    this.#channel.send(encodeEnvelope(message));
  }

  /** A failover can move hundreds of tracks at once; the peer takes at most
   * MAX_IDS_PER_MESSAGE ids a message. */
  #sendInBatches(ids: string[], message: (ids: string[]) => Envelope): void {
    for (let at = 0; at < ids.length; at += MAX_IDS_PER_MESSAGE) {
      this.#send(message(ids.slice(at, at + MAX_IDS_PER_MESSAGE)));
    }
  }

  /** A node is never told of a track whose path already contains it: it
   * would refuse it anyway, and the track may be coming from it. */
  #announceable(track: Track): boolean {
    if (this.kind !== "node") return track.publisherId !== this.id;
    return track.publisherId !== this.id &&
      !track.description.path.includes(this.remoteNodeId);
  }

  trackAdded(track: Track): void {
    if (!this.#announceable(track)) return;
    this.#announced.add(track.id);
    this.#send({ announce: { tracks: [toTrackInfo(track)] } });
  }

  trackUpdated(track: Track): void {
    if (this.#announceable(track)) this.trackAdded(track);
    else if (this.kind === "node") this.trackRemoved(track);
  }

  trackRemoved(track: Track): void {
    if (this.kind === "node" && !this.#announced.delete(track.id)) return;
    this.#send({ withdraw: { trackIds: [track.id] } });
  }
}

export function toTrackInfo(track: Track): TrackInfo {
  const d = track.description;
  return {
    id: d.id,
    kind: d.kind === "audio" ? MediaKind.Audio : MediaKind.Video,
    mimeType: d.mimeType,
    fmtp: d.fmtp,
    clockRate: d.clockRate,
    channels: d.channels,
    participantId: d.participantId,
    participantName: d.participantName,
    site: d.site,
    originNodeId: d.originNodeId,
    path: d.path,
    source: d.source === "camera"
      ? TrackSource.Camera
      : TrackSource.Participant,
    label: d.label,
    muted: d.muted,
    simulcast: d.simulcast,
  };
}

/** Browsers send at most three layers; a few more leave room. */
const MAX_SIMULCAST_LAYER = 7;

const SUPPORTED_MIME = /^(audio\/(opus|pcmu|pcma)|video\/(vp8|h264))$/i;

/** A track another node announced, checked before routing trusts it. */
export function fromTrackInfo(info: TrackInfo): TrackDescription {
  const id = requireText(info.id, "track id");
  const path = info.path ?? [];
  if (path.length === 0 || path.length > MAX_PATH_LENGTH) {
    throw new ProtocolError(`track ${id} has no valid path`);
  }
  const mimeType = requireText(info.mimeType, "track codec");
  if (!SUPPORTED_MIME.test(mimeType)) {
    throw new ProtocolError(`track ${id} has an unsupported codec ${mimeType}`);
  }
  const kind = info.kind === MediaKind.Audio ? "audio" : "video";
  if (!mimeType.toLowerCase().startsWith(kind)) {
    throw new ProtocolError(
      `track ${id} is ${kind} but its codec is ${mimeType}`,
    );
  }
  const text = (value: string | undefined) =>
    (value ?? "").slice(0, MAX_NAME_LENGTH);
  return {
    id,
    kind,
    mimeType,
    fmtp: (info.fmtp ?? "").slice(0, 256),
    clockRate: info.clockRate || (kind === "audio" ? 48000 : 90000),
    channels: info.channels ?? 0,
    participantId: text(info.participantId),
    participantName: text(info.participantName),
    site: text(info.site),
    originNodeId: text(info.originNodeId),
    path: path.map(text),
    source: info.source === TrackSource.Camera ? "camera" : "participant",
    label: text(info.label),
    muted: info.muted ?? false,
    simulcast: info.simulcast?.group
      ? {
        group: requireText(info.simulcast.group, "simulcast group"),
        layer: Math.min(info.simulcast.layer ?? 0, MAX_SIMULCAST_LAYER),
      }
      : undefined,
  };
}

function requireText(value: string | undefined, what: string): string {
  if (!value) throw new ProtocolError(`${what} is missing`);
  if (value.length > 256) throw new ProtocolError(`${what} is too long`);
  return value;
}

function requireSdp(sdp: string | undefined): string {
  if (!sdp || !sdp.startsWith("v=0")) {
    throw new ProtocolError("malformed SDP: it must start with v=0");
  }
  return sdp;
}

function requireIds(ids: string[] | undefined): string[] {
  if (!ids || ids.length === 0) throw new ProtocolError("no track ids given");
  if (ids.length > MAX_IDS_PER_MESSAGE) {
    throw new ProtocolError(
      `at most ${MAX_IDS_PER_MESSAGE} track ids per message`,
    );
  }
  for (const id of ids) {
    if (id.length > MAX_ID_LENGTH) {
      throw new ProtocolError(
        `a track id may be at most ${MAX_ID_LENGTH} characters long`,
      );
    }
  }
  return ids;
}

/** Two bindings of one offer must not share a mid or a track id: the
 * second would be dropped, its packets failing one by one. */
function requireDistinct(values: string[], what: string): void {
  const seen = new Set<string>();
  for (const value of values) {
    if (seen.has(value)) {
      throw new ProtocolError(`${what} ${value} is repeated`);
    }
    seen.add(value);
  }
}
