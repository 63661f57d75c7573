// The media side of a peer that speaks WebRTC (a browser, a program, later a
// trunk). It owns two werift PeerConnections, each with a single offerer:
// the receive one answers the remote's offers and turns what arrives into
// router Tracks; the send one offers the tracks the remote subscribed to and
// feeds them from Consumers. See docs/protocol.md.
import {
  GenericNack,
  type MediaStreamTrack,
  ntpTime,
  ReceiverEstimatedMaxBitrate,
  type RTCDtlsTransport,
  RTCPeerConnection,
  type RtcpPacket,
  RtcpPayloadSpecificFeedback,
  RtcpSrPacket,
  RtcpTransportLayerFeedback,
  RTCRtpCodecParameters,
  type RTCRtpTransceiver,
  type RtpHeader,
} from "werift";
import { Consumer, type RtpOutput } from "./consumer.ts";
import {
  addPublicAddressCandidates,
  type MediaNetworkOptions,
  peerConnectionConfig,
  type PeerConnectionRole,
  supportedCodecs,
} from "./rtc_config.ts";
import type { Router } from "./router.ts";
import { type MediaKind, Track, type TrackDescription } from "./track.ts";
import {
  bindFastRtpReceive,
  type RtpDelivery,
  type StreamBinding,
} from "./fast_rtp_receive.ts";
import { applyWeriftPatches, sendRtp } from "./werift_patches.ts";

/** What the remote said about one transceiver of its offer. */
export interface PublishBinding {
  mid: string;
  /** The remote's own id for the track (globalised by describeTrack). */
  localId: string;
  label: string;
  muted: boolean;
}

/** One simulcast layer of a received video: its RTP stream id and its
 * place among the layers (0 the lowest, in the order the offer lists its
 * rids). */
export interface ReceivedLayer {
  rid: string;
  layer: number;
}

export interface WebRtcPeerEvents {
  offer(sdp: string, tracks: { mid: string; track: Track }[]): void;
  answer(sdp: string): void;
  notice(code: string, text: string, trackId?: string): void;
  /** Layers of the remote's simulcast video (router track ids) that
   * someone now watches, or that nobody has watched for a while: the
   * remote may stop sending those and must resume these. */
  layersWanted(trackIds: string[], wanted: boolean): void;
  /** The media connection is gone; the owner should end the peer. */
  failed(reason: string): void;
}

export interface WebRtcPeerOptions {
  id: string;
  router: Router;
  network: MediaNetworkOptions;
  events: WebRtcPeerEvents;
  /** Decides which router Track each received stream feeds. */
  inbound: InboundTracks;
  /** Subscriptions move between simulcast layers with the remote's
   * reception; off for a trunk, which carries each layer as asked. */
  adaptive?: boolean;
  /** What the remote may send us (REMB), in bit/s; none is sent without
   * it (another node, whose sends no estimate governs). */
  publishBitrateBps?: number;
}

/** The way back to whoever sends a received stream. */
export interface InboundFeed {
  /** False once the track takes its packets from elsewhere (a trunk route
   * moved); packets still arriving on this stream are then dropped. */
  active: boolean;
  requestKeyframe(): void;
  sendNack(lost: number[]): void;
  /** Set for a simulcast layer, which the publisher sends only while it
   * is watched (see WebRtcPeerEvents.layersWanted). */
  setDemand?(wanted: boolean): void;
}

export interface InboundTracks {
  /** The Track a newly received stream feeds, or undefined to ignore it. */
  open(
    binding: PublishBinding,
    codec: RTCRtpCodecParameters,
    kind: MediaKind,
    feed: InboundFeed,
    layer?: ReceivedLayer,
  ): Track | undefined;
  /** The remote no longer sends the stream (or the peer is closing). */
  close(binding: PublishBinding, track: Track, feed: InboundFeed): void;
}

interface InboundEntry {
  track: Track;
  feed: InboundFeed;
  binding: PublishBinding;
  ssrc: number;
  /** A simulcast layer the remote was told nobody watches. */
  paused: boolean;
  pauseTimer?: ReturnType<typeof setTimeout>;
}

/** Received streams as new tracks published by this peer: what browsers and
 * programs do when they send their camera and microphone. */
export function publishedTracks(
  router: Router,
  publisherId: string,
  describe: (
    binding: PublishBinding,
    codec: RTCRtpCodecParameters,
    kind: MediaKind,
    layer?: ReceivedLayer,
  ) => TrackDescription,
): InboundTracks {
  return {
    open(binding, codec, kind, feed, layer) {
      const track = new Track(
        describe(binding, codec, kind, layer),
        publisherId,
        feed,
      );
      router.publish(track);
      return track;
    },
    close(_binding, track) {
      router.unpublish(track.id);
    },
  };
}

/** How long a simulcast layer goes unwatched before its publisher is told
 * it may stop sending it. */
export const LAYER_PAUSE_DELAY_MS = 5000;

/** Browsers send at most three layers; a peer's further rids are ignored,
 * as each layer costs a track. */
const MAX_SIMULCAST_LAYERS = 4;
/** What browsers send as rids (Chromium allows 16 characters). */
const VALID_RID = /^[A-Za-z0-9_-]{1,16}$/;

/** What a publisher is told it may send (REMB) over all its streams, unless
 * --max-publish-bitrate says otherwise: the Call page's three simulcast
 * layers and its audio, with room to spare.
 * Browsers take a REMB in their first two seconds as their starting
 * estimate, so their top layer starts at once instead of after the half
 * minute their own ramp-up takes with no congestion feedback; after that
 * it caps their estimate, which their loss-based control keeps below
 * what the link carries. */
export const DEFAULT_PUBLISH_BITRATE_BPS = 3_000_000;

/** A REMB for `bitrateBps` (18-bit mantissa, 6-bit exponent). */
export function rembPacket(
  bitrateBps: number,
  ssrcs: number[],
): ReceiverEstimatedMaxBitrate {
  let mantissa = Math.floor(bitrateBps);
  let exponent = 0;
  while (mantissa > 0x3ffff) {
    mantissa = Math.floor(mantissa / 2);
    exponent++;
  }
  return new ReceiverEstimatedMaxBitrate({
    senderSsrc: 0,
    mediaSsrc: 0,
    brExp: exponent,
    brMantissa: mantissa,
    ssrcNum: ssrcs.length,
    ssrcFeedbacks: ssrcs,
  });
}

/** Nothing at all from the remote (media, RTCP, ICE consent checks or
 * answers to ours) for this long means it is gone. Consent checks go both
 * ways every 4-6 s (RFC 7675) even on a leg with no tracks, where a
 * browser sends no RTCP; werift's own consent timeout is 30 s, too slow
 * for users. */
const SILENCE_LIMIT_MS = 8000;
/** A PeerConnection that has not connected by then never will. */
const CONNECT_LIMIT_MS = 20000;
/** The watchdog's interval, which is also the send leg's sender-report
 * interval: one timer a leg, as each timer is a wake-up of its own. */
const WATCHDOG_INTERVAL_MS = 1000;
/** Sender reports per compound RTCP packet: 28 bytes each stays under MTU. */
const REPORTS_PER_PACKET = 30;

interface Subscription {
  /** The track subscribed to (for simulcast, the consumer may be on
   * another layer of its group). */
  track: Track;
  consumer: Consumer;
  transceiver: RTCRtpTransceiver;
}

/** One werift PeerConnection plus the watchdog that tells when it died;
 * the send leg is its consumers' output. One class for every leg keeps the
 * per-packet calls on it monomorphic: an object literal with a getter per
 * peer gave each peer's output its own hidden class, and V8 fell back to
 * generic property lookups for every forwarded packet. */
class Leg implements RtpOutput {
  readonly pc: RTCPeerConnection;
  ready = false;
  /** The (BUNDLEd) transport once connected: werift's dtlsTransports
   * getter builds and de-duplicates arrays on every call, too slow for
   * every packet. */
  transport: RTCDtlsTransport | undefined;
  #lastPackets = 0;
  #lastActivityMs = performance.now();
  #timer: ReturnType<typeof setInterval>;

  constructor(
    network: MediaNetworkOptions,
    role: PeerConnectionRole,
    onConnected: () => void,
    onFailed: (reason: string) => void,
    /** Each watchdog interval while connected. */
    onTick: () => void = () => {},
  ) {
    this.pc = new RTCPeerConnection(peerConnectionConfig(network, role));
    const createdMs = performance.now();
    this.pc.connectionStateChange.subscribe((state) => {
      this.ready = state === "connected";
      this.transport = this.ready ? this.dtls : undefined;
      if (state === "connected") {
        this.#lastActivityMs = performance.now();
        onConnected();
      } else if (state === "failed") {
        onFailed(`the ${role} connection failed (ICE or DTLS)`);
      }
    });
    this.#timer = setInterval(() => {
      const now = performance.now();
      if (this.pc.connectionState !== "connected") {
        if (
          this.pc.connectionState !== "closed" &&
          now - createdMs > CONNECT_LIMIT_MS && !this.ready
        ) {
          onFailed(`the ${role} connection did not connect within 20 s`);
        }
        return;
      }
      const packets = this.#packetsHeard();
      if (packets !== this.#lastPackets) {
        this.#lastPackets = packets;
        this.#lastActivityMs = now;
      } else if (now - this.#lastActivityMs > SILENCE_LIMIT_MS) {
        onFailed(`nothing received on the ${role} connection for 8 s`);
        return;
      }
      onTick();
    }, WATCHDOG_INTERVAL_MS);
  }

  sendRtp(payload: Uint8Array, header: RtpHeader): void {
    const transport = this.transport;
    if (transport !== undefined) sendRtp(transport, payload, header);
  }

  get dtls(): RTCDtlsTransport | undefined {
    return this.pc.dtlsTransports[0];
  }

  /** A count that grows with every packet the remote sends us. */
  #packetsHeard(): number {
    // The cached transport: werift's getter builds arrays on every call.
    const dtls = this.transport;
    if (!dtls) return 0;
    const pair = (dtls.iceTransport.connection as unknown as {
      nominated?: { requestsReceived: number; responsesReceived: number };
    }).nominated;
    return dtls.packetsReceived + (pair?.requestsReceived ?? 0) +
      (pair?.responsesReceived ?? 0);
  }

  close(): void {
    clearInterval(this.#timer);
    this.ready = false;
    this.transport = undefined;
    this.pc.close().catch(() => {});
  }
}

export class WebRtcPeer {
  readonly id: string;
  #router: Router;
  #network: MediaNetworkOptions;
  #events: WebRtcPeerEvents;
  #receive: Leg | undefined;
  #send: Leg | undefined;
  #output: RtpOutput | undefined;
  #adaptive: boolean;
  #publishBitrateBps: number | undefined;
  #bindings = new Map<string, PublishBinding>();
  /** What each received stream feeds, by transceiver mid (and rid). */
  #inbound = new Map<string, InboundEntry>();
  #inboundTracks: InboundTracks;
  #retiredBytesSent = 0;
  /** Payload bytes received on the receive leg. */
  mediaBytesReceived = 0;
  #subscriptions = new Map<string, Subscription>();
  /** Simulcast preferences, by subscribed track id. */
  #maxLayers = new Map<string, number>();
  #negotiating = false;
  /** Track ids the outstanding offer carries. */
  #offered = new Set<string>();
  /** Subscriptions and ends waiting for the current negotiation to finish. */
  #wanted = new Set<string>();
  #stopping: RTCRtpTransceiver[] = [];
  #closed = false;

  constructor(options: WebRtcPeerOptions) {
    applyWeriftPatches();
    this.id = options.id;
    this.#router = options.router;
    this.#network = options.network;
    this.#events = options.events;
    this.#inboundTracks = options.inbound;
    this.#adaptive = options.adaptive ?? false;
    this.#publishBitrateBps = options.publishBitrateBps;
  }

  /** Tracks this peer's received streams feed. */
  get inboundTracks(): Track[] {
    return [...this.#inbound.values()].map((entry) => entry.track);
  }

  /** Payload bytes sent on the send leg, retransmissions included. */
  get mediaBytesSent(): number {
    let bytes = this.#retiredBytesSent;
    for (const { consumer } of this.#subscriptions.values()) {
      bytes += consumer.bytesSent;
    }
    return bytes;
  }

  get subscriptions(): Iterable<Consumer> {
    return [...this.#subscriptions.values()].map((s) => s.consumer);
  }

  get connectionStates(): { send?: string; receive?: string } {
    return {
      send: this.#send?.pc.connectionState,
      receive: this.#receive?.pc.connectionState,
    };
  }

  #fail = (reason: string) => {
    if (!this.#closed) this.#events.failed(reason);
  };

  // ---- publishing: the remote's send PeerConnection ----

  async handleOffer(sdp: string, bindings: PublishBinding[]): Promise<void> {
    const leg = this.#receive ??= this.#createReceiveLeg();
    this.#bindings = new Map(bindings.map((b) => [b.mid, b]));
    await leg.pc.setRemoteDescription({ type: "offer", sdp });
    const answer = await leg.pc.createAnswer();
    await leg.pc.setLocalDescription(answer);
    for (const [key, entry] of this.#inbound) {
      if (!this.#bindings.has(entry.binding.mid)) {
        this.#inbound.delete(key);
        this.#closeInbound(entry);
      }
    }
    this.#events.answer(
      addPublicAddressCandidates(
        leg.pc.localDescription!.sdp,
        this.#network.publicIp,
      ),
    );
  }

  #createReceiveLeg(): Leg {
    const leg = new Leg(
      this.#network,
      "receive",
      () => {},
      this.#fail,
      () => this.#sendBitrateCap(),
    );
    leg.pc.ontrack = ({ track, transceiver }) => {
      // A simulcast video has a track per rid, in the offer's order (audio
      // with rids is taken as one stream). A rid becomes part of a track id
      // everyone is told, so only RFC 8851's short tokens are taken.
      const layers = transceiver.kind === "video"
        ? transceiver.receiver.tracks.filter((t) => VALID_RID.test(t.rid ?? ""))
          .slice(0, MAX_SIMULCAST_LAYERS)
        : [];
      if (layers.length === 0) this.#receiveTrack(track, transceiver);
      layers.forEach((layer, index) =>
        this.#receiveTrack(layer, transceiver, {
          rid: layer.rid!,
          layer: index,
        })
      );
    };
    return leg;
  }

  /** A received stream is bound to a router Track at its first packet,
   * when its codec is known from the payload type actually sent. */
  #receiveTrack(
    remote: MediaStreamTrack,
    transceiver: RTCRtpTransceiver,
    layer?: ReceivedLayer,
  ) {
    let entry: InboundEntry | undefined;
    // Packets of any other codec are not forwarded under this track's name.
    let payloadType = -1;
    let boundSsrc = -1;
    const deliver: RtpDelivery = (
      sequenceNumber,
      timestamp,
      marker,
      packetPayloadType,
      payload,
    ) => {
      const { track, feed } = entry!;
      if (!feed.active || track.closed) return;
      this.mediaBytesReceived += payload.length;
      track.receive(
        sequenceNumber,
        timestamp,
        marker,
        packetPayloadType,
        payload,
        performance.now(),
      );
    };
    remote.onReceiveRtp.subscribe((rtp) => {
      const header = rtp.header;
      if (entry === undefined) {
        entry = this.#openInbound(
          transceiver,
          header.payloadType,
          header.ssrc,
          layer,
        );
        if (entry === undefined) return;
        payloadType = header.payloadType;
      }
      if (header.payloadType !== payloadType) return;
      const receiver = transceiver.receiver;
      if (header.ssrc !== boundSsrc && receiver.dtlsTransport) {
        boundSsrc = header.ssrc;
        bindFastRtpReceive({
          dtls: receiver.dtlsTransport,
          ssrc: header.ssrc,
          payloadType,
          receiver: receiver as unknown as StreamBinding["receiver"],
          deliver,
        });
      }
      deliver(
        header.sequenceNumber,
        header.timestamp,
        header.marker,
        header.payloadType,
        rtp.payload,
      );
    });
    remote.onReceiveRtcp.subscribe((packet) => {
      if (entry?.feed.active && packet.type === RtcpSrPacket.type) {
        const sr = (packet as RtcpSrPacket).senderInfo;
        entry.track.onSenderReport(
          ntpToMs(sr.ntpTimestamp),
          sr.rtpTimestamp,
          performance.now(),
        );
      }
    });
  }

  #openInbound(
    transceiver: RTCRtpTransceiver,
    payloadType: number,
    ssrc: number,
    layer: ReceivedLayer | undefined,
  ): InboundEntry | undefined {
    const mid = transceiver.mid ?? "";
    const key = layer ? `${mid} ${layer.rid}` : mid;
    const binding = this.#bindings.get(mid);
    const codec = transceiver.codecs.find((c) => c.payloadType === payloadType);
    if (!binding || !codec || this.#inbound.has(key)) return undefined;
    const kind = transceiver.kind === "audio" ? "audio" : "video";
    const receiver = transceiver.receiver;
    const feed: InboundFeed = {
      active: true,
      setDemand: layer ? (wanted) => this.#layerDemand(key, wanted) : undefined,
      requestKeyframe: () => void receiver.sendRtcpPLI(ssrc),
      sendNack: (lost) => {
        const nack = new RtcpTransportLayerFeedback({
          feedback: new GenericNack({
            senderSsrc: receiver.rtcpSsrc,
            mediaSourceSsrc: ssrc,
            lost,
          }),
        });
        receiver.dtlsTransport?.sendRtcp([nack]).catch(() => {});
      },
    };
    const track = this.#inboundTracks.open(binding, codec, kind, feed, layer);
    if (!track) return undefined;
    const entry: InboundEntry = { track, feed, binding, ssrc, paused: false };
    this.#inbound.set(key, entry);
    if (kind === "video") this.#sendBitrateCap();
    // Subscribers may have come with the announcement; if not, the layer
    // is paused unless someone comes soon.
    if (layer) this.#layerDemand(key, track.expectsPackets);
    return entry;
  }

  /** A layer watched is resumed at once; one unwatched is paused only
   * after a while, as a viewer moving between layers leaves one for a
   * moment and may soon try it again. */
  #layerDemand(key: string, wanted: boolean): void {
    const entry = this.#inbound.get(key);
    if (!entry || this.#closed) return;
    clearTimeout(entry.pauseTimer);
    entry.pauseTimer = undefined;
    if (wanted) {
      if (entry.paused) {
        entry.paused = false;
        this.#events.layersWanted([entry.track.id], true);
      }
      return;
    }
    if (entry.paused) return;
    entry.pauseTimer = setTimeout(() => {
      entry.pauseTimer = undefined;
      entry.paused = true;
      this.#events.layersWanted([entry.track.id], false);
    }, LAYER_PAUSE_DELAY_MS);
  }

  #closeInbound(entry: InboundEntry): void {
    clearTimeout(entry.pauseTimer);
    this.#inboundTracks.close(entry.binding, entry.track, entry.feed);
  }

  /** Tells the remote how much it may send (REMB), naming its video
   * streams; sent once a second and as soon as a video stream opens. */
  #sendBitrateCap(): void {
    const dtls = this.#receive?.transport;
    const bitrate = this.#publishBitrateBps;
    if (!dtls || bitrate === undefined) return;
    const ssrcs: number[] = [];
    for (const entry of this.#inbound.values()) {
      // A REMB names at most 255 (browsers apply it to all they send).
      if (entry.track.isVideo && ssrcs.length < 255) ssrcs.push(entry.ssrc);
    }
    if (ssrcs.length === 0) return;
    dtls.sendRtcp([
      new RtcpPayloadSpecificFeedback({
        feedback: rembPacket(bitrate, ssrcs),
      }),
    ]).catch(() => {});
  }

  /** The remote (un)muted a track it publishes, by its own id. */
  setMuted(localId: string, muted: boolean): boolean {
    let found = false;
    for (const { track, binding } of this.#inbound.values()) {
      if (binding.localId !== localId) continue;
      found = true; // each layer of a simulcast video
      if (track.description.muted !== muted) {
        track.description.muted = muted;
        this.#router.updated(track);
      }
    }
    return found;
  }

  // ---- subscribing: our send PeerConnection ----

  /** Subscriptions in place and asked for. */
  get subscriptionCount(): number {
    return this.#subscriptions.size + this.#wanted.size;
  }

  subscribe(trackIds: string[]): void {
    for (const trackId of trackIds) {
      if (!this.#subscriptions.has(trackId)) this.#wanted.add(trackId);
    }
    this.#applyChanges();
  }

  /** Adds and removes transceivers only while no offer is outstanding:
   * werift gives a transceiver added mid-negotiation a transport of its own
   * that never starts, which fails the whole PeerConnection. */
  #applyChanges(): void {
    if (this.#negotiating || this.#closed) return;
    if (!this.#send) {
      if (this.#wanted.size === 0) return;
      // The data channel goes first, alone, so that it holds the first
      // m-section and with it the BUNDLE tag for the leg's whole life.
      this.#send = this.#createSendLeg();
      void this.#negotiate();
      return;
    }
    const leg = this.#send;
    let changed = this.#stopping.length > 0;
    for (const transceiver of this.#stopping) transceiver.stop();
    this.#stopping = [];
    for (const trackId of this.#wanted) {
      if (this.#subscriptions.has(trackId)) continue;
      const track = this.#router.subscribable(this.id, trackId);
      if (!track) {
        this.#events.notice(
          "track-ended",
          "That track is no longer available.",
          trackId,
        );
        continue;
      }
      const transceiver = leg.pc.addTransceiver(track.description.kind, {
        direction: "sendonly",
      });
      transceiver.setCodecPreferences([codecFor(track.description)]);
      const consumer = this.#adaptive
        ? Consumer.adaptive(track, this.id, this.#maxLayers.get(trackId))
        : new Consumer(track, this.id);
      consumer.onClose = () => this.#subscriptionEnded(trackId);
      consumer.track.addConsumer(consumer);
      this.#subscriptions.set(trackId, { track, consumer, transceiver });
      changed = true;
    }
    this.#wanted.clear();
    if (changed) void this.#negotiate();
  }

  unsubscribe(trackIds: string[]): void {
    for (const trackId of trackIds) {
      // Wanted during a negotiation and not added yet: it never will be.
      this.#wanted.delete(trackId);
      this.#subscriptions.get(trackId)?.consumer.close();
    }
  }

  /** The highest simulcast layer wanted of a subscribed group (kept for
   * a subscription still being set up). */
  setMaxLayer(trackId: string, maxLayer: number): void {
    if (!this.#subscriptions.has(trackId) && !this.#wanted.has(trackId)) {
      return;
    }
    this.#maxLayers.set(trackId, maxLayer);
    this.#subscriptions.get(trackId)?.consumer.setMaxLayer(
      maxLayer,
      performance.now(),
    );
  }

  requestKeyframe(trackId: string): void {
    this.#subscriptions.get(trackId)?.consumer.track.requestKeyframe(
      performance.now(),
    );
  }

  #subscriptionEnded(trackId: string): void {
    const subscription = this.#subscriptions.get(trackId);
    if (!subscription) return;
    this.#subscriptions.delete(trackId);
    this.#maxLayers.delete(trackId);
    this.#retiredBytesSent += subscription.consumer.bytesSent;
    this.#stopping.push(subscription.transceiver);
    this.#applyChanges();
  }

  #createSendLeg(): Leg {
    const leg = new Leg(
      this.#network,
      "send",
      () => {
        // Packets before DTLS were dropped, so every stream starts over at
        // a fresh keyframe now that it can actually be delivered.
        const now = performance.now();
        for (const { consumer } of this.#subscriptions.values()) {
          if (consumer.active) consumer.restart(now);
        }
      },
      this.#fail,
      () => this.#tick(),
    );
    // A data channel's m-section is never rejected, so as the first one it
    // stays the BUNDLE tag. Without it, stopping the first media section
    // moves the tag: browsers then list their candidates under the rejected
    // section and werift starts a fresh transport for the new tag that never
    // connects; and with every media section stopped, browsers tear the
    // transport down.
    leg.pc.createDataChannel("umbrella");
    this.#output = leg;
    return leg;
  }

  async #negotiate(): Promise<void> {
    const leg = this.#send;
    if (!leg || this.#closed) return;
    this.#negotiating = true;
    try {
      const offer = await leg.pc.createOffer();
      await leg.pc.setLocalDescription(offer);
      const tracks: { mid: string; track: Track }[] = [];
      this.#offered.clear();
      for (const [trackId, { track, transceiver }] of this.#subscriptions) {
        if (transceiver.mid !== null) {
          tracks.push({ mid: transceiver.mid, track });
          this.#offered.add(trackId);
        }
      }
      this.#events.offer(
        addPublicAddressCandidates(
          leg.pc.localDescription!.sdp,
          this.#network.publicIp,
        ),
        tracks,
      );
    } catch (error) {
      this.#negotiating = false;
      this.#fail(`could not make an offer: ${(error as Error).message}`);
    }
  }

  async handleAnswer(sdp: string): Promise<void> {
    const leg = this.#send;
    if (!leg || !this.#negotiating) {
      throw new Error("answer received but no offer is outstanding");
    }
    // werift takes an answer for other sections than were offered, and the
    // connection then fails later with a reason that hides the cause.
    const offered = mediaSectionIds(leg.pc.localDescription?.sdp ?? "");
    const answered = mediaSectionIds(sdp);
    if (answered !== offered) {
      throw new Error(
        `the answer's media sections (${
          answered || "none"
        }) are not the offer's (${offered})`,
      );
    }
    await leg.pc.setRemoteDescription({ type: "answer", sdp });
    this.#negotiating = false;
    for (const [trackId, { consumer, transceiver }] of this.#subscriptions) {
      // Subscriptions added since the offer are settled by the next answer.
      if (consumer.active || !this.#offered.has(trackId)) continue;
      const codec = transceiver.sender.codec;
      const wanted = consumer.track.description.mimeType.toLowerCase();
      if (
        transceiver.stopped || !codec ||
        codec.mimeType.toLowerCase() !== wanted
      ) {
        this.#events.notice(
          "codec-unsupported",
          `This device cannot receive ${
            codecName(consumer.track.description.mimeType)
          } ${consumer.track.description.kind} from ${consumer.track.description.participantName}, so that track is not shown.`,
          trackId,
        );
        consumer.close();
        continue;
      }
      consumer.activate(
        this.#output!,
        transceiver.sender.ssrc,
        codec.payloadType,
      );
      transceiver.sender.onRtcp.subscribe((packet: RtcpPacket) =>
        consumer.handleRtcp(packet, performance.now())
      );
    }
    this.#applyChanges();
  }

  #tick(): void {
    const dtls = this.#send?.transport;
    if (!dtls) return;
    const ntp = ntpTime();
    const now = performance.now();
    if (this.#adaptive) {
      for (const { consumer } of this.#subscriptions.values()) {
        consumer.adaptLayer(now);
      }
    }
    let batch: RtcpSrPacket[] = [];
    for (const { consumer } of this.#subscriptions.values()) {
      const report = consumer.senderReport(ntp, now);
      if (report === undefined) continue;
      batch.push(report);
      if (batch.length === REPORTS_PER_PACKET) {
        dtls.sendRtcp(batch).catch(() => {});
        batch = [];
      }
    }
    if (batch.length > 0) dtls.sendRtcp(batch).catch(() => {});
  }

  // ---- both ----

  async addRemoteCandidate(
    remoteLeg: "send" | "receive",
    candidate: { candidate: string; sdpMid?: string; sdpMLineIndex?: number },
  ): Promise<void> {
    // The remote's send PeerConnection talks to our receive one.
    const leg = remoteLeg === "send" ? this.#receive : this.#send;
    if (!leg) {
      throw new Error(`no ${remoteLeg} connection to add a candidate to`);
    }
    await leg.pc.addIceCandidate(candidate);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const { consumer } of this.#subscriptions.values()) consumer.close();
    this.#subscriptions.clear();
    for (const entry of this.#inbound.values()) this.#closeInbound(entry);
    this.#inbound.clear();
    this.#receive?.close();
    this.#send?.close();
  }
}

const NTP_EPOCH_OFFSET_MS = 2208988800000;
const ntpToMs = (ntp: bigint) =>
  Number(ntp >> 32n) * 1000 + Number(ntp & 0xffffffffn) / 4294967.296 -
  NTP_EPOCH_OFFSET_MS;

const codecName = (mimeType: string) => {
  const name = mimeType.split("/")[1] ?? mimeType;
  return name.toUpperCase() === "H264" ? "H.264" : name.toUpperCase();
};

const profileOf = (fmtp: string | undefined) =>
  /profile-level-id=([0-9a-f]{6})/i.exec(fmtp ?? "")?.[1].toLowerCase();

/** The codec to offer a subscriber for a track: the publisher's own, under
 * the payload type Umbrella uses for it (H.264 matched on its profile). */
export function codecFor(description: TrackDescription): RTCRtpCodecParameters {
  const mime = description.mimeType.toLowerCase();
  const candidates = supportedCodecs()[description.kind].filter((c) =>
    c.mimeType.toLowerCase() === mime
  );
  const profile = profileOf(description.fmtp);
  const match = candidates.find((c) => profileOf(c.parameters) === profile) ??
    candidates[0];
  if (match && mime !== "video/h264") return match;
  return new RTCRtpCodecParameters({
    mimeType: description.mimeType,
    clockRate: description.clockRate,
    channels: description.channels || undefined,
    payloadType: match?.payloadType ?? 120,
    rtcpFeedback: match?.rtcpFeedback ?? [],
    parameters: description.fmtp || match?.parameters,
  });
}

/** The mids of an SDP's media sections, in order. */
function mediaSectionIds(sdp: string): string {
  return Array.from(sdp.matchAll(/^a=mid:(\S+)/gm), (match) => match[1])
    .join(" ");
}
