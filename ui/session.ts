/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The browser side of docs/protocol.md: one WebSocket, a send
// PeerConnection that only we offer on (our camera and microphone), a
// receive PeerConnection that only the server offers on (everyone else), and
// an automatic rejoin after a network blip.
import { decodeEnvelope, encodeEnvelope } from "../proto/codec.ts";
import {
  type Candidate,
  type Envelope,
  type Hello,
  Leg,
  MediaKind,
  type Notice,
  type Offer,
  PeerKind,
  PROTOCOL_VERSION,
  type TrackInfo,
  TrackSource,
} from "../proto/messages.ts";
import { codecName, pageName, reconnectDelaySeconds } from "./format.ts";

export type CallState =
  | "idle"
  | "joining"
  | "in-call"
  | "reconnecting"
  | "left";

/** One person (or camera) on the call, with the tracks the server announced
 * and the media that actually arrives for them. */
export interface Participant<Media> {
  id: string;
  name: string;
  site: string;
  /** An RTSP camera brought in by a node rather than a person. */
  camera: boolean;
  announced: TrackInfo[];
  media: Media[];
  /** Plain words about a problem with this participant's media. */
  problem: string | null;
}

/** What browser tests read through `window.umbrella`. */
export interface SessionView {
  state: CallState;
  peerId: string | null;
  pcSend: RTCPeerConnection | null;
  pcRecv: RTCPeerConnection | null;
  remoteTracks: Array<{
    trackId: string;
    participantId: string;
    participantName: string;
    kind: "audio" | "video";
  }>;
}

export interface CallSessionOptions {
  /** The signalling WebSocket, e.g. wss://host/umbrella/wsb. */
  url: string;
  name: string;
  /** Camera and microphone to publish; null to watch only. */
  media: MediaStream | null;
  /** Called after every change a page may want to show. */
  onChange: () => void;
}

interface ReceivedTrack {
  info: TrackInfo;
  track: MediaStreamTrack;
}

const SOFTWARE = "umbrella-web";
const PING_INTERVAL_MS = 10_000;
/** The protocol lets either side drop a peer silent for 30 s; noticing it
 * ourselves catches half-open TCP connections that never report a close. */
const SILENCE_LIMIT_MS = 30_000;
/** Closes after which rejoining would only fail the same way again. */
/** A connection that lasted this long counts as healthy, so the next
 * failure retries quickly again; shorter ones keep backing off, which stops
 * a server that accepts and then drops us from being hammered. */
const HEALTHY_CONNECTION_MS = 30_000;
const FATAL_CLOSE_CODES = new Set([1003, 1009, 4001, 4002, 4003]);
const CLOSE_MALFORMED = 4003;
const CLOSE_SILENT = 4008;
const CLOSE_SHUTTING_DOWN = 4011;
const CLOSE_AT_CAPACITY = 4012;

export class CallSession {
  state: CallState = "idle";
  peerId: string | null = null;
  site = "";
  /** Why we are reconnecting or why the call ended, in plain words. */
  problem: string | null = null;
  /** Recent notices from the server that concern no particular track. */
  notices: string[] = [];
  pcSend: RTCPeerConnection | null = null;
  pcRecv: RTCPeerConnection | null = null;

  readonly #options: CallSessionOptions;
  #socket: WebSocket | null = null;
  /** Tracks of others the server announced, by id. */
  #announced = new Map<string, TrackInfo>();
  #subscribed = new Set<string>();
  /** Simulcast groups subscribed to, each through one of its layers. */
  #subscribedGroups = new Set<string>();
  /** The layer preference last sent, by subscribed track id. */
  #maxLayers = new Map<string, number>();
  #received = new Map<string, ReceivedTrack>();
  #trackProblems = new Map<string, string>();
  #published = false;
  /** Messages are handled one at a time, in order, so a candidate never
   * overtakes the offer it belongs to. */
  #queue: Promise<void> = Promise.resolve();
  #attempt = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #lastHeard = 0;
  #pingNonce = 0;
  /** When the server's Hello arrived on the current connection. */
  #joinedAt: number | null = null;

  constructor(options: CallSessionOptions) {
    this.#options = options;
  }

  start(): void {
    if (this.state !== "idle") return;
    this.state = "joining";
    globalThis.addEventListener("online", this.#retryNow);
    this.#connect();
    this.#changed();
  }

  leave(): void {
    if (this.state === "left") return;
    this.#send({ bye: { reason: "left the call" } });
    this.#end(null, 1000, "bye");
  }

  /** Turns our microphone or camera on or off without renegotiating: the
   * track keeps flowing (silence or black) and others learn of the change
   * through a TrackAnnounce. */
  setSending(kind: "audio" | "video", enabled: boolean): void {
    for (const track of this.#options.media?.getTracks() ?? []) {
      if (track.kind !== kind) continue;
      track.enabled = enabled;
      if (this.#published) {
        this.#send({ announce: { tracks: [localTrackInfo(track)] } });
      }
    }
    this.#changed();
  }

  isSending(kind: "audio" | "video"): boolean {
    return this.#options.media?.getTracks().some((track) =>
      track.kind === kind && track.enabled
    ) ?? false;
  }

  participants(): Participant<MediaStreamTrack>[] {
    const media = new Map<string, MediaStreamTrack>();
    for (const [id, received] of this.#received) media.set(id, received.track);
    // A simulcast video is shown once, as the layer subscribed to.
    const shown = [...this.#announced.values()].filter((track) =>
      !track.simulcast || this.#subscribed.has(track.id!)
    );
    return groupParticipants(
      shown,
      media,
      this.#trackProblems,
    );
  }

  /** A subscribed video is shown `heightPx` device pixels high: a
   * simulcast one is then sent no layer much larger than that. */
  showVideoAt(trackId: string, heightPx: number): void {
    if (!this.#announced.get(trackId)?.simulcast) return;
    const maxLayer = layerForHeight(heightPx);
    if (this.#maxLayers.get(trackId) === maxLayer) return;
    this.#maxLayers.set(trackId, maxLayer);
    this.#send({ layerPreference: { trackId, maxLayer } });
  }

  view(): SessionView {
    return {
      state: this.state,
      peerId: this.peerId,
      pcSend: this.pcSend,
      pcRecv: this.pcRecv,
      remoteTracks: [...this.#received].map(([trackId, received]) => {
        const info = this.#announced.get(trackId) ?? received.info;
        return {
          trackId,
          participantId: info.participantId ?? "",
          participantName: info.participantName ?? "",
          kind: received.track.kind === "audio" ? "audio" : "video",
        };
      }),
    };
  }

  #connect(): void {
    this.#retryTimer = undefined;
    const socket = new WebSocket(this.#options.url);
    socket.binaryType = "arraybuffer";
    this.#socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.#lastHeard = Date.now();
      this.#send({
        hello: {
          protocolVersion: PROTOCOL_VERSION,
          kind: PeerKind.Browser,
          name: this.#options.name,
          software: SOFTWARE,
        },
      });
      this.#pingTimer = setInterval(
        () => this.#keepAlive(socket),
        PING_INTERVAL_MS,
      );
    };
    socket.onmessage = (event: MessageEvent) => {
      this.#lastHeard = Date.now();
      if (!(event.data instanceof ArrayBuffer)) {
        this.#fail("The server sent a text frame.", socket, 1003);
        return;
      }
      let envelope: Envelope;
      try {
        envelope = decodeEnvelope(new Uint8Array(event.data));
      } catch (error) {
        this.#fail(
          `The server sent a message this page cannot read (${
            (error as Error).message
          }).`,
          socket,
          CLOSE_MALFORMED,
        );
        return;
      }
      this.#queue = this.#queue
        .then(() =>
          socket === this.#socket ? this.#handle(envelope) : undefined
        )
        .catch((error: Error) =>
          this.#fail(`Setting up media failed: ${error.message}`, socket)
        );
    };
    socket.onclose = (event: CloseEvent) => {
      if (FATAL_CLOSE_CODES.has(event.code) && socket === this.#socket) {
        this.#end(
          `The server ended the connection: ${
            event.reason || `code ${event.code}`
          }.`,
        );
        return;
      }
      if (!opened && socket === this.#socket) this.#checkSignIn();
      this.#fail(
        event.code === CLOSE_SHUTTING_DOWN
          ? "The server is restarting."
          : event.code === CLOSE_AT_CAPACITY
          ? "The server is at capacity right now."
          : opened
          ? "The connection to the server was lost."
          : `Cannot reach the Umbrella server at ${
            new URL(this.#options.url).host
          }. Check that it is running and that this device is on the network.`,
        socket,
      );
    };
  }

  /** A WebSocket refused before it opened may mean the sign-in ran out or
   * the node's password changed: then retrying cannot help, and the page
   * goes to sign in (and comes back here) instead. */
  #checkSignIn(): void {
    const page = new URL(this.#options.url);
    page.protocol = page.protocol === "wss:" ? "https:" : "http:";
    fetch(new URL("api/session", page)).then((r) => r.json()).then(
      (session: { role?: string | null }) => {
        if (session.role === null && this.state !== "left") {
          location.assign(`login?next=${pageName(location.pathname)}`);
        }
      },
      () => {/* unreachable: the retries say so */},
    );
  }

  async #handle(envelope: Envelope): Promise<void> {
    if (envelope.hello) {
      await this.#onHello(envelope.hello);
    } else if (this.peerId === null) {
      throw new Error("the server did not begin with Hello");
    } else if (envelope.announce) {
      this.#onAnnounce(envelope.announce.tracks ?? []);
    } else if (envelope.withdraw) {
      this.#onWithdraw(envelope.withdraw.trackIds ?? []);
    } else if (envelope.offer) {
      await this.#onOffer(envelope.offer);
    } else if (envelope.answer) {
      await this.pcSend?.setRemoteDescription({
        type: "answer",
        sdp: envelope.answer.sdp ?? "",
      });
    } else if (envelope.candidate) {
      await this.#onCandidate(envelope.candidate);
    } else if (envelope.notice) {
      this.#onNotice(envelope.notice);
    } else if (envelope.ping) {
      this.#send({ pong: { nonce: envelope.ping.nonce ?? 0 } });
    } else if (envelope.bye) {
      this.#fail(
        `The server said goodbye (${
          envelope.bye.reason || "no reason given"
        }).`,
        this.#socket,
      );
    } else if (envelope.subscribe || envelope.unsubscribe) {
      await this.#setLayersSending(
        (envelope.subscribe ?? envelope.unsubscribe)!.trackIds ?? [],
        envelope.subscribe !== undefined,
      );
    }
    // Pong needs nothing beyond the liveness already noted; keyframes come
    // from the browser's own encoder when the server's PLI asks.
    this.#changed();
  }

  async #onHello(hello: Hello): Promise<void> {
    if (this.peerId !== null) return;
    if (hello.protocolVersion !== PROTOCOL_VERSION) {
      // Most likely this page is older than the server: a reload fixes it.
      this.#end(
        `The server speaks protocol version ${hello.protocolVersion}, this page version ${PROTOCOL_VERSION}. Reload the page.`,
        4002,
        `unsupported protocol version ${hello.protocolVersion}`,
      );
      return;
    }
    if (!hello.assignedPeerId) {
      throw new Error("the server's Hello assigned no peer id");
    }
    this.peerId = hello.assignedPeerId;
    this.site = hello.site ?? "";
    this.state = "in-call";
    this.problem = null;
    this.#joinedAt = Date.now();
    if (this.#options.media?.getTracks().length) await this.#publish();
  }

  async #publish(): Promise<void> {
    const media = this.#options.media!;
    const pc = this.pcSend = this.#peerConnection(Leg.Send);
    for (const track of media.getTracks()) addSending(pc, track);
    await pc.setLocalDescription(await pc.createOffer());
    // Each transceiver's mid exists only once the local description is set.
    this.#send({
      offer: {
        sdp: pc.localDescription!.sdp,
        tracks: pc.getTransceivers().map((transceiver) => ({
          mid: transceiver.mid ?? "",
          track: localTrackInfo(transceiver.sender.track!),
        })),
      },
    });
    this.#published = true;
  }

  /** The server names layers of our simulcast camera that someone watches
   * (resume them) or nobody has for a while (stop encoding and sending
   * them): `<peer id>:<track id>/<rid>`. */
  async #setLayersSending(trackIds: string[], sending: boolean): Promise<void> {
    const prefix = `${this.peerId}:`;
    for (const id of trackIds) {
      const slash = id.lastIndexOf("/");
      if (!id.startsWith(prefix) || slash < 0) continue;
      const localId = id.slice(prefix.length, slash);
      const rid = id.slice(slash + 1);
      const sender = this.pcSend?.getSenders().find((s) =>
        s.track?.id === localId
      );
      if (!sender) continue;
      const parameters = sender.getParameters();
      const encoding = parameters.encodings.find((e) => e.rid === rid);
      if (!encoding || encoding.active === sending) continue;
      encoding.active = sending;
      // A layer left running only costs bandwidth; not worth a reconnect.
      await sender.setParameters(parameters).catch((error) =>
        console.warn(`umbrella: could not switch layer ${rid}:`, error)
      );
    }
  }

  #onAnnounce(tracks: TrackInfo[]): void {
    const fresh: string[] = [];
    for (const track of tracks) {
      if (!track.id || isOwnTrack(track, this.peerId!)) continue;
      this.#announced.set(track.id, track);
      // Any one layer of a simulcast video subscribes to all of it.
      const group = track.simulcast?.group;
      if (group && this.#subscribedGroups.has(group)) continue;
      if (!this.#subscribed.has(track.id)) {
        this.#subscribed.add(track.id);
        if (group) this.#subscribedGroups.add(group);
        fresh.push(track.id);
      }
    }
    if (fresh.length > 0) this.#send({ subscribe: { trackIds: fresh } });
  }

  #onWithdraw(trackIds: string[]): void {
    for (const id of trackIds) {
      const group = this.#announced.get(id)?.simulcast?.group;
      if (group && this.#subscribed.has(id)) {
        this.#subscribedGroups.delete(group);
      }
      this.#announced.delete(id);
      this.#subscribed.delete(id);
      this.#maxLayers.delete(id);
      this.#received.delete(id);
      this.#trackProblems.delete(id);
    }
  }

  async #onOffer(offer: Offer): Promise<void> {
    const pc = this.pcRecv ??= this.#peerConnection(Leg.Receive);
    await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp ?? "" });
    await pc.setLocalDescription(await pc.createAnswer());
    this.#send({ answer: { sdp: pc.localDescription!.sdp } });
    // The offer lists every track the server sends, so whatever is not
    // bound to a mid now has ended.
    const byMid = new Map<string, TrackInfo>();
    for (const binding of offer.tracks ?? []) {
      if (binding.mid && binding.track?.id) {
        byMid.set(binding.mid, binding.track);
      }
    }
    this.#received.clear();
    for (const transceiver of pc.getTransceivers()) {
      const info = transceiver.mid === null
        ? undefined
        : byMid.get(transceiver.mid);
      if (info) {
        this.#received.set(info.id!, {
          info,
          track: transceiver.receiver.track,
        });
      }
    }
  }

  async #onCandidate(candidate: Candidate): Promise<void> {
    // The server's send leg is our receive PeerConnection and vice versa.
    const pc = candidate.leg === Leg.Send
      ? this.pcRecv
      : candidate.leg === Leg.Receive
      ? this.pcSend
      : null;
    if (!pc) return;
    try {
      await pc.addIceCandidate({
        candidate: candidate.candidate ?? "",
        sdpMid: candidate.sdpMid || null,
        sdpMLineIndex: candidate.sdpMlineIndex ?? 0,
      });
    } catch (error) {
      // One unusable candidate must not end the call; others may work.
      console.warn("umbrella: ignored a remote ICE candidate:", error);
    }
  }

  #onNotice(notice: Notice): void {
    const track = notice.trackId
      ? this.#announced.get(notice.trackId)
      : undefined;
    if (notice.code === "codec-unsupported" && track) {
      const kind = track.kind === MediaKind.Audio ? "audio" : "video";
      this.#trackProblems.set(
        track.id!,
        `Your browser cannot decode ${
          codecName(track.mimeType ?? "")
        } ${kind} from ${track.participantName || "this participant"}.`,
      );
      return;
    }
    const text = notice.text || notice.code || "The server sent a notice.";
    this.notices = [...this.notices.slice(-2), text];
  }

  #peerConnection(leg: Leg): RTCPeerConnection {
    const socket = this.#socket;
    const pc = new RTCPeerConnection({ iceServers: [] });
    pc.onicecandidate = ({ candidate }) => {
      // Chrome also reports an empty candidate just before null; one
      // end-of-candidates (an empty Candidate) is enough.
      if (candidate?.candidate === "") return;
      this.#send({
        candidate: candidate
          ? {
            leg,
            candidate: candidate.candidate,
            sdpMid: candidate.sdpMid ?? "",
            sdpMlineIndex: candidate.sdpMLineIndex ?? 0,
          }
          : { leg, candidate: "" },
      });
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed") {
        this.#send({ bye: { reason: "media connection failed; rejoining" } });
        this.#fail("The media connection failed.", socket, 1000);
      } else {
        this.#changed();
      }
    };
    return pc;
  }

  #keepAlive(socket: WebSocket): void {
    if (Date.now() - this.#lastHeard > SILENCE_LIMIT_MS) {
      this.#fail("The server stopped answering.", socket, CLOSE_SILENT);
      return;
    }
    this.#send({ ping: { nonce: ++this.#pingNonce } });
  }

  /** Drops the connection `socket` (if it is still the current one) and
   * schedules a rejoin with backoff. */
  #fail(problem: string, socket: WebSocket | null, closeCode = 1000): void {
    if (socket !== this.#socket || this.state === "left") return;
    // The console is where someone debugging a dropped call looks first.
    console.warn("umbrella: rejoining:", problem);
    if (
      this.#joinedAt !== null &&
      Date.now() - this.#joinedAt > HEALTHY_CONNECTION_MS
    ) {
      this.#attempt = 0;
    }
    this.#teardown(closeCode, problem);
    this.state = "reconnecting";
    this.problem = problem;
    const delaySeconds = reconnectDelaySeconds(this.#attempt++);
    this.#retryTimer = setTimeout(() => this.#connect(), delaySeconds * 1000);
    this.#changed();
  }

  readonly #retryNow = (): void => {
    if (this.#retryTimer === undefined) return;
    clearTimeout(this.#retryTimer);
    this.#connect();
    this.#changed();
  };

  #end(problem: string | null, closeCode = 1000, reason = ""): void {
    this.#teardown(closeCode, reason);
    globalThis.removeEventListener("online", this.#retryNow);
    this.state = "left";
    this.problem = problem;
    this.#changed();
  }

  #teardown(closeCode: number, reason: string): void {
    const socket = this.#socket;
    this.#socket = null;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = null;
      if (socket.readyState <= WebSocket.OPEN) {
        // A close reason is limited to 123 bytes.
        socket.close(closeCode, reason.slice(0, 100));
      }
    }
    clearInterval(this.#pingTimer);
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.pcSend?.close();
    this.pcRecv?.close();
    this.pcSend = this.pcRecv = null;
    this.peerId = null;
    this.#joinedAt = null;
    this.#published = false;
    this.#announced.clear();
    this.#subscribed.clear();
    this.#subscribedGroups.clear();
    this.#maxLayers.clear();
    this.#received.clear();
    this.#trackProblems.clear();
  }

  #send(envelope: Envelope): void {
    if (this.#socket?.readyState === WebSocket.OPEN) {
      this.#socket.send(encodeEnvelope(envelope));
    }
  }

  #changed(): void {
    this.#options.onChange();
  }
}

/** Simulcast, lowest layer first as the server expects: a quarter, half
 * and the whole of the camera's resolution. Browsers leave out layers a
 * small camera picture cannot fill and stop the top ones while their
 * uplink cannot carry them; the server follows. */
const SIMULCAST_LAYERS: RTCRtpEncodingParameters[] = [
  { rid: "l", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: "m", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: "h", scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

/** Sends a track, video as simulcast where the browser can. */
function addSending(pc: RTCPeerConnection, track: MediaStreamTrack): void {
  if (track.kind === "video") {
    try {
      pc.addTransceiver(track, {
        direction: "sendonly",
        sendEncodings: SIMULCAST_LAYERS,
      });
      return;
    } catch (error) {
      // Viewers then get the one layer there is.
      console.warn("umbrella: sending one layer, not simulcast:", error);
    }
  }
  pc.addTransceiver(track, { direction: "sendonly" });
}

/** The highest layer worth sending to a video shown `heightPx` device
 * pixels high, for a 720p camera's layers (180, 360, 720 lines): the
 * smallest that is not much smaller than the picture. */
export function layerForHeight(heightPx: number): number {
  if (heightPx <= 240) return 0;
  if (heightPx <= 480) return 1;
  return SIMULCAST_LAYERS.length - 1;
}

function localTrackInfo(track: MediaStreamTrack): TrackInfo {
  return {
    id: track.id,
    kind: track.kind === "audio" ? MediaKind.Audio : MediaKind.Video,
    muted: !track.enabled,
  };
}

/** Our own tracks come back in announcements: the server names them
 * `<peerId>:<our id>` and gives them our peer id as participant. */
export function isOwnTrack(track: TrackInfo, peerId: string): boolean {
  return track.participantId === peerId ||
    (track.id ?? "").startsWith(`${peerId}:`);
}

/** Groups announced tracks into participants in announcement order,
 * attaching the media received for each track and the first problem. */
export function groupParticipants<Media>(
  announced: Iterable<TrackInfo>,
  media: ReadonlyMap<string, Media>,
  problems: ReadonlyMap<string, string>,
): Participant<Media>[] {
  const byId = new Map<string, Participant<Media>>();
  for (const track of announced) {
    const id = track.participantId || track.id || "";
    let participant = byId.get(id);
    if (!participant) {
      participant = {
        id,
        name: track.participantName || track.label || "Unnamed",
        site: track.site ?? "",
        camera: track.source === TrackSource.Camera,
        announced: [],
        media: [],
        problem: null,
      };
      byId.set(id, participant);
    }
    participant.announced.push(track);
    const received = media.get(track.id ?? "");
    if (received !== undefined) participant.media.push(received);
    participant.problem ??= problems.get(track.id ?? "") ?? null;
  }
  return [...byId.values()];
}
