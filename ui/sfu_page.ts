/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The call page: a join screen, then a grid of everyone on the call.
import { html } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { MediaKind } from "../proto/messages.ts";
import {
  fromOtherSite,
  hueOf,
  initials,
  INSECURE_CONTEXT_MESSAGE,
  mediaErrorMessage,
  signallingUrl,
  tileLabel,
} from "./format.ts";
import {
  type DeviceChoice,
  isMirrored,
  openCameraAndMicrophone,
  useDevices,
} from "./media.ts";
import { CallSession, type Participant, type SessionView } from "./session.ts";

const STORAGE_KEYS = {
  name: "umbrella.name",
  camera: "umbrella.camera",
  microphone: "umbrella.microphone",
};

const IDLE_VIEW: SessionView = {
  state: "idle",
  peerId: null,
  pcSend: null,
  pcRecv: null,
  remoteTracks: [],
};

/** The call in progress (or the last one), which `window.umbrella` shows
 * to browser tests. */
let activeSession: CallSession | null = null;

export function SfuPage() {
  const [session, setSession] = useState<CallSession | null>(null);
  const [media, setMedia] = useState<MediaStream | null>(null);
  const [, setVersion] = useState(0);

  useEffect(() => {
    Object.defineProperty(globalThis, "umbrella", {
      configurable: true,
      get: () => activeSession?.view() ?? IDLE_VIEW,
    });
    // Closing the tab ends the call with an orderly Bye, as the protocol
    // asks, rather than a dropped socket.
    const leaveOnExit = () => activeSession?.leave();
    globalThis.addEventListener("pagehide", leaveOnExit);
    return () => globalThis.removeEventListener("pagehide", leaveOnExit);
  }, []);

  // However the call ended, the camera light goes off with it.
  useEffect(() => {
    if (session?.state !== "left" || media === null) return;
    for (const track of media.getTracks()) track.stop();
    setMedia(null);
  }, [session?.state]);

  const join = (name: string, stream: MediaStream | null) => {
    const next = new CallSession({
      url: signallingUrl(location.href),
      name: name.trim() || "Guest",
      media: stream,
      onChange: () => setVersion((v) => v + 1),
    });
    activeSession = next;
    setSession(next);
    setMedia(stream);
    next.start();
  };

  if (session === null || session.state === "left") {
    return html`<${JoinScreen} ended=${session} onJoin=${join} />`;
  }
  return html`
    <${CallScreen}
      session=${session}
      media=${media}
      onLeave=${() => session.leave()}
    />
  `;
}

function JoinScreen(
  { ended, onJoin }: {
    ended: CallSession | null;
    onJoin: (name: string, media: MediaStream | null) => void;
  },
) {
  const devices = useDevices();
  const [name, setName] = useState(() => remembered(STORAGE_KEYS.name));
  const [cameraId, setCameraId] = useState(() =>
    remembered(STORAGE_KEYS.camera)
  );
  const [microphoneId, setMicrophoneId] = useState(() =>
    remembered(STORAGE_KEYS.microphone)
  );
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const canCapture = globalThis.isSecureContext &&
    navigator.mediaDevices !== undefined;
  // What the selects show: the remembered device while it is present,
  // otherwise the first listed (usually the system default).
  const camera = chosen(devices.cameras, cameraId);
  const microphone = chosen(devices.microphones, microphoneId);

  const start = (media: MediaStream | null) => {
    remember(STORAGE_KEYS.name, name);
    remember(STORAGE_KEYS.camera, camera);
    remember(STORAGE_KEYS.microphone, microphone);
    onJoin(name, media);
  };

  const joinWithMedia = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setProblem(null);
    try {
      start(await openCameraAndMicrophone(devices, camera, microphone));
    } catch (error) {
      setProblem(mediaErrorMessage(error as DOMException));
      // A refusal may still have revealed device names worth showing.
      devices.refresh();
    } finally {
      setBusy(false);
    }
  };

  const endedText = ended?.problem
    ? `The call ended. ${ended.problem}`
    : ended
    ? "You left the call."
    : null;

  return html`
    <main class="page join">
      <h1>Join the call</h1>
      ${endedText && html`<p class="notice" role="status">${endedText}</p>`}
      ${!canCapture &&
        html`<p class="alert" role="alert">${INSECURE_CONTEXT_MESSAGE}</p>`}
      ${problem && html`<p class="alert" role="alert">${problem}</p>`}
      <form class="card" onSubmit=${joinWithMedia}>
        <label for="join-name">Your name</label>
        <input
          id="join-name"
          name="name"
          autocomplete="name"
          maxlength="64"
          placeholder="Guest"
          value=${name}
          onInput=${(e: Event) =>
            setName((e.currentTarget as HTMLInputElement).value)}
        />
        <${DeviceSelect} id="join-camera" label="Camera"
          choices=${devices.cameras} value=${camera} onChange=${setCameraId} />
        <${DeviceSelect} id="join-microphone" label="Microphone"
          choices=${devices.microphones} value=${microphone}
          onChange=${setMicrophoneId} />
        <div class="actions">
          <button type="submit" class="primary" disabled=${busy || !canCapture}>
            Join with camera and microphone
          </button>
          <button type="button" disabled=${busy} onClick=${() => start(null)}>
            Watch only
          </button>
        </div>
      </form>
    </main>
  `;
}

function DeviceSelect(
  { id, label, choices, value, onChange }: {
    id: string;
    label: string;
    choices: DeviceChoice[];
    value: string;
    onChange: (id: string) => void;
  },
) {
  return html`
    <label for=${id}>${label}</label>
    <select
      id=${id}
      disabled=${choices.length === 0}
      value=${value}
      onChange=${(e: Event) =>
        onChange((e.currentTarget as HTMLSelectElement).value)}
    >
      ${choices.length === 0 &&
        html`<option value="">No ${label.toLowerCase()} found</option>`}
      ${choices.map((choice) =>
        html`<option value=${choice.id}>${choice.label}</option>`
      )}
    </select>
  `;
}

function CallScreen(
  { session, media, onLeave }: {
    session: CallSession;
    media: MediaStream | null;
    onLeave: () => void;
  },
) {
  const participants = session.participants();
  const hasAudio = (media?.getAudioTracks().length ?? 0) > 0;
  const hasVideo = (media?.getVideoTracks().length ?? 0) > 0;
  const microphoneOn = session.isSending("audio");
  const cameraOn = session.isSending("video");
  /** Stops sending `kind` while `on`, starts it otherwise. */
  const sendingToggle = (
    kind: "audio" | "video",
    on: boolean,
    label: string,
  ) =>
    html`
      <button type="button" onClick=${() => session.setSending(kind, !on)}>
        ${label}
      </button>
    `;
  return html`
    <main class="call">
      ${session.state === "reconnecting" &&
        html`
          <p class="banner warning" role="status">
            Reconnecting… ${session.problem}
          </p>
        `}
      ${session.state === "joining" &&
        html`<p class="banner" role="status">Joining…</p>`}
      ${session.notices.map((text) =>
        html`<p class="banner" role="status">${text}</p>`
      )}
      <div class="grid">
        ${media &&
          html`
            <${LocalTile}
              media=${media}
              peerId=${session.peerId}
              site=${session.site}
              cameraOn=${cameraOn}
              microphoneOn=${microphoneOn}
            />
          `}
        ${participants.map((participant) =>
          html`
            <${RemoteTile}
              key=${participant.id}
              participant=${participant}
              ownSite=${session.site}
              onVideoHeight=${(trackId: string, heightPx: number) =>
                session.showVideoAt(trackId, heightPx)}
            />
          `
        )}
      </div>
      ${participants.length === 0 && session.state === "in-call" &&
        html`
          <p class="empty">
            Nobody else is here yet. Others join by opening this page's address.
          </p>
        `}
      <div class="controls" role="toolbar" aria-label="Call controls">
        ${hasAudio &&
          sendingToggle(
            "audio",
            microphoneOn,
            microphoneOn ? "Mute microphone" : "Unmute microphone",
          )}
        ${hasVideo &&
          sendingToggle(
            "video",
            cameraOn,
            cameraOn ? "Turn camera off" : "Turn camera on",
          )}
        <button type="button" class="danger" onClick=${onLeave}>Leave</button>
      </div>
    </main>
  `;
}

function LocalTile(
  { media, peerId, site, cameraOn, microphoneOn }: {
    media: MediaStream;
    peerId: string | null;
    site: string;
    cameraOn: boolean;
    microphoneOn: boolean;
  },
) {
  const videoRef = useRef<HTMLVideoElement>(null);
  useEffect(() => {
    const video = videoRef.current!;
    video.srcObject = media;
    video.play().catch((error) =>
      console.warn("umbrella: local preview did not start:", error)
    );
  }, [media]);
  const videoTrack = media.getVideoTracks()[0];
  return html`
    <article
      class="tile local"
      data-participant-id=${peerId ?? ""}
      aria-label=${tileLabel("You", site)}
    >
      <video
        ref=${videoRef}
        class=${isMirrored(videoTrack) ? "mirrored" : ""}
        autoplay
        playsinline
        muted
      ></video>
      ${!(videoTrack && cameraOn) &&
        html`<${Avatar} id=${peerId ?? "local"} name="You" />`}
      <${TileLabel} name="You" site=${site} muted=${!microphoneOn} />
    </article>
  `;
}

function RemoteTile(
  { participant, ownSite, onVideoHeight }: {
    participant: Participant<MediaStreamTrack>;
    ownSite: string;
    /** How high (in device pixels) the tile shows the video track. */
    onVideoHeight: (trackId: string, heightPx: number) => void;
  },
) {
  const videoRef = useRef<HTMLVideoElement>(null);
  const [hasFrames, setHasFrames] = useState(false);
  const [soundBlocked, setSoundBlocked] = useState(false);
  const [, setTrackChanges] = useState(0);
  const videoTrack = participant.media.find((track) => track.kind === "video");
  const videoInfo = participant.announced.find((track) =>
    track.kind === MediaKind.Video
  );
  const audioInfo = participant.announced.find((track) =>
    track.kind === MediaKind.Audio
  );
  const mediaKey = participant.media.map((track) => track.id).join(" ");

  useEffect(() => {
    const video = videoRef.current!;
    video.srcObject = participant.media.length > 0
      ? new MediaStream(participant.media)
      : null;
    setHasFrames(false);
    if (participant.media.length > 0) playWithSound(video, setSoundBlocked);
  }, [mediaKey]);

  // The server picks the simulcast layer that fits the tile.
  const videoTrackId = videoInfo?.id;
  useEffect(() => {
    if (!videoTrackId) return;
    const video = videoRef.current!;
    const observer = new ResizeObserver(() =>
      onVideoHeight(
        videoTrackId,
        Math.round(video.clientHeight * globalThis.devicePixelRatio),
      )
    );
    observer.observe(video);
    return () => observer.disconnect();
  }, [videoTrackId]);

  // A remote track is muted while no packets arrive for it.
  useEffect(() => {
    if (!videoTrack) return;
    const changed = () => setTrackChanges((n) => n + 1);
    videoTrack.addEventListener("mute", changed);
    videoTrack.addEventListener("unmute", changed);
    return () => {
      videoTrack.removeEventListener("mute", changed);
      videoTrack.removeEventListener("unmute", changed);
    };
  }, [videoTrack]);

  const showVideo = videoTrack !== undefined && !videoTrack.muted &&
    hasFrames && !videoInfo?.muted;
  const noteFrames = (event: Event) =>
    setHasFrames((event.currentTarget as HTMLVideoElement).videoWidth > 0);

  return html`
    <article
      class="tile"
      data-participant-id=${participant.id}
      aria-label=${tileLabel(participant.name, participant.site)}
    >
      <video
        ref=${videoRef}
        autoplay
        playsinline
        onloadeddata=${noteFrames}
        onresize=${noteFrames}
      ></video>
      ${!showVideo &&
        html`
          <${Avatar}
            id=${participant.id}
            name=${participant.name}
            camera=${participant.camera}
          />
        `}
      <${TileLabel}
        name=${participant.name}
        site=${participant.site}
        otherSite=${fromOtherSite(participant.site, ownSite)}
        camera=${participant.camera}
        muted=${audioInfo?.muted ?? false}
      />
      ${participant.problem &&
        html`<p class="tile-problem" role="status">${participant.problem}</p>`}
      ${soundBlocked &&
        html`
          <button
            type="button"
            class="enable-sound"
            onClick=${() => playWithSound(videoRef.current!, setSoundBlocked)}
          >
            Click to enable sound
          </button>
        `}
    </article>
  `;
}

/** Starts playback with sound; where the browser refuses audible autoplay
 * (no interaction with the page yet) plays muted, since muted playback is
 * always allowed, and reports that sound needs a click. */
function playWithSound(
  video: HTMLVideoElement,
  setSoundBlocked: (blocked: boolean) => void,
) {
  video.muted = false;
  video.play().then(
    () => setSoundBlocked(false),
    (error: DOMException) => {
      // AbortError only means a newer source replaced this one.
      if (error.name !== "NotAllowedError") return;
      video.muted = true;
      setSoundBlocked(true);
      video.play().catch((retryError) =>
        console.warn("umbrella: muted playback failed too:", retryError)
      );
    },
  );
}

function Avatar(
  { id, name, camera = false }: { id: string; name: string; camera?: boolean },
) {
  return html`
    <div class="avatar" aria-hidden="true">
      <span style=${`--hue: ${hueOf(id)}`}>${camera
        ? html`<${CameraIcon} size=${44} />`
        : initials(name)}</span>
    </div>
  `;
}

/** A video camera pictogram, marking tracks from RTSP cameras. */
function CameraIcon({ size }: { size: number }) {
  return html`
    <svg
      class="camera-icon"
      viewBox="0 0 24 24"
      width=${size}
      height=${size}
      aria-hidden="true"
    >
      <path
        fill="currentColor"
        d="M4 6h10a2 2 0 0 1 2 2v1.6l4.4-2.9a1 1 0 0 1 1.6.8v9a1 1 0 0 1-1.6.8L16 14.4V16a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2z"
      />
    </svg>
  `;
}

function TileLabel(
  { name, site, otherSite = false, camera = false, muted }: {
    name: string;
    site: string;
    /** Reached over a trunk from another site. */
    otherSite?: boolean;
    camera?: boolean;
    muted: boolean;
  },
) {
  return html`
    <div class="tile-label">
      ${camera &&
        html`
          <${CameraIcon} size=${16} />
          <span class="sr-only">Camera</span>
        `}
      <span class="tile-name">${name}</span>
      ${site &&
        html`
          <span
            class=${otherSite ? "tile-site other-site" : "tile-site"}
            title=${otherSite
              ? "At another site, linked by a trunk"
              : undefined}
          >${site}</span>
        `}
      ${muted && html`<span class="tile-muted">microphone off</span>`}
    </div>
  `;
}

function chosen(choices: DeviceChoice[], wanted: string): string {
  return choices.some((choice) => choice.id === wanted)
    ? wanted
    : choices[0]?.id ?? "";
}

/** localStorage can be unavailable (private modes, disabled storage); the
 * page works without remembering. */
function remembered(key: string): string {
  try {
    return localStorage.getItem(key) ?? "";
  } catch {
    return "";
  }
}

function remember(key: string, value: string): void {
  try {
    localStorage.setItem(key, value);
  } catch (error) {
    console.warn("umbrella: cannot remember", key, error);
  }
}
