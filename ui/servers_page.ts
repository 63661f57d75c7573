/// <reference lib="dom" />
// Remote sources: trunks to other Umbrella nodes and RTSP cameras.
import type { ComponentChildren, JSX } from "preact";
import { html } from "htm/preact";
import { useRef, useState } from "preact/hooks";
import {
  type CameraTrack,
  fetchJson,
  type RemoteServer,
  type ServersResponse,
  useNow,
  usePolling,
} from "./api.ts";
import { stateTone } from "./format.ts";
import {
  addressKind,
  cameraTrackText,
  checkServerForm,
  idleText,
  remoteStateLabel,
  secondsLeft,
  sentence,
  type ServerForm,
  trafficText,
} from "./remotes.ts";

const POLL_MS = 2000;

const TRANSPORTS: ServerForm["transport"][] = ["tcp", "udp"];

const EMPTY_FORM: ServerForm = {
  url: "",
  fingerprint: "",
  name: "",
  transport: "tcp",
  idleSeconds: "",
};

export function ServersPage() {
  const servers = usePolling<ServersResponse>("api/servers", POLL_MS);
  const now = useNow(1000);
  const [problem, setProblem] = useState<string | null>(null);

  const remove = async (server: RemoteServer) => {
    setProblem(null);
    try {
      await fetchJson(`api/servers/${encodeURIComponent(server.id)}`, {
        method: "DELETE",
      });
    } catch (error) {
      setProblem(
        `Could not remove ${server.url}: ${sentence((error as Error).message)}`,
      );
    }
    servers.refresh();
  };

  const list = servers.data?.servers;
  return html`
    <main class="page">
      <h1>Remote servers</h1>
      <p class="lead">
        Link this Umbrella with another one (a trunk) so both calls become one, or
        bring in video from an RTSP camera.
      </p>
      <${AddServerForm} onAdded=${servers.refresh} />
      ${problem && html`<p class="alert" role="alert">${problem}</p>`}
      ${servers.error &&
        html`<p class="alert" role="alert">${servers.error}</p>`}
      <section aria-labelledby="servers-list">
        <h2 id="servers-list">Remote sources${list && ` (${list.length})`}</h2>
        ${list && list.length === 0 &&
          html`<p class="empty">No remote servers yet. Add one above.</p>`}
        ${list && list.length > 0 &&
          html`
            <ul class="remotes">
              ${list.map((server) =>
                html`
                  <${RemoteCard}
                    key=${server.id}
                    server=${server}
                    retryIn=${secondsLeft(
                      server.retryInSeconds,
                      servers.fetchedAt,
                      now,
                    )}
                    onRemove=${remove}
                  />
                `
              )}
            </ul>
          `}
      </section>
    </main>
  `;
}

function AddServerForm({ onAdded }: { onAdded: () => void }) {
  const [form, setForm] = useState<ServerForm>(EMPTY_FORM);
  const [problem, setProblem] = useState<
    { field: keyof ServerForm | null; text: string } | null
  >(null);
  const [busy, setBusy] = useState(false);
  const formRef = useRef<HTMLFormElement>(null);
  const kind = addressKind(form.url);

  const update = (field: keyof ServerForm) => (event: Event) => {
    const value = (event.currentTarget as HTMLInputElement).value;
    setForm((old) => ({ ...old, [field]: value }));
    if (problem?.field === field) setProblem(null);
  };

  const submit = async (event: Event) => {
    event.preventDefault();
    const checked = checkServerForm(form);
    if (!checked.ok) {
      setProblem({ field: checked.field, text: checked.problem });
      formRef.current?.querySelector<HTMLElement>(`[name=${checked.field}]`)
        ?.focus();
      return;
    }
    setBusy(true);
    setProblem(null);
    try {
      await fetchJson("api/servers", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(checked.body),
      });
      setForm(EMPTY_FORM);
      onAdded();
    } catch (error) {
      setProblem({ field: null, text: sentence((error as Error).message) });
    } finally {
      setBusy(false);
    }
  };

  /** What every text field takes from the form's state. */
  const bind = (field: keyof ServerForm) => ({
    id: `server-${field}`,
    name: field,
    value: form[field],
    onInput: update(field),
    problem: problem?.field === field ? problem.text : null,
  });

  return html`
    <form class="card" ref=${formRef} onSubmit=${submit} noValidate>
      <h2 class="form-title">Add a remote source</h2>
      <${TextField} ...${bind("url")} label="Address" inputmode="url"
        autocapitalize="off" spellcheck="false"
        placeholder="wss://host:8081/wsb or rtsp://user:password@host/path">
        Another Umbrella: the address of its Call page with wss:// instead of
        https:// and wsb instead of sfu, for example wss://192.168.1.2:8081/wsb. A
        camera: its rtsp:// address, with user name and password if it asks for
        them (the camera's manual or app lists it).
      </${TextField}>
      ${kind === "trunk" &&
        html`
          <${TextField} ...${bind(
            "fingerprint",
          )} label="Certificate fingerprint"
            optional autocapitalize="characters" spellcheck="false"
            placeholder="AB:CD:EF:…">
            Needed when the other Umbrella has its own self-signed certificate, as
            one on a home network does. Open that Umbrella's Status page and copy
            its "Certificate fingerprint" here. Leave empty for a server with a
            certificate browsers already trust.
          </${TextField}>
        `}
      ${kind === "camera" &&
        html`
          <${TextField} ...${bind("name")} label="Camera name" optional
            maxlength="64" placeholder="Front door">
            What people in the call see on the camera's picture. Empty: the
            camera's address.
          </${TextField}>
          <fieldset class="choices" aria-describedby="server-transport-hint">
            <legend>Transport</legend>
            ${TRANSPORTS.map((transport) =>
              html`
                <label key=${transport}>
                  <input
                    type="radio"
                    name="transport"
                    value=${transport}
                    checked=${form.transport === transport}
                    onChange=${update("transport")}
                  />
                  ${transport.toUpperCase()}
                </label>
              `
            )}
          </fieldset>
          <p id="server-transport-hint" class="hint">
            TCP (recommended) carries the video inside the camera connection and
            works through firewalls and VPNs. UDP can start faster on a quiet local
            network but loses picture on a busy one.
          </p>
          <${TextField} ...${bind("idleSeconds")} label="Idle seconds" optional
            inputmode="numeric" placeholder="server default">
            How long the camera keeps streaming after the last viewer leaves; it
            connects again when someone watches. 0 keeps it always on: pictures
            start at once, but the camera streams all the time. Empty: the
            server's setting (--camera-idle-seconds, 30 s by default).
          </${TextField}>
        `}
      ${problem?.field === null &&
        html`<p class="alert" role="alert">${problem.text}</p>`}
      <div class="actions">
        <button type="submit" class="primary" disabled=${busy}>
          ${kind === "camera"
            ? "Add camera"
            : kind === "trunk"
            ? "Add link"
            : "Add"}
        </button>
      </div>
    </form>
  `;
}

/** A labelled text input with its hint and, while it has one, its problem,
 * both tied to the input so screen readers read them with it; the problem
 * is also announced when it appears. */
function TextField(
  { id, label, optional = false, problem, children, ...input }:
    & {
      id: string;
      label: string;
      optional?: boolean;
      problem: string | null;
      children: ComponentChildren;
    }
    & JSX.InputHTMLAttributes<HTMLInputElement>,
) {
  return html`
    <label for=${id}>${optional
      ? html`${label} <span class="optional">(optional)</span>`
      : label}</label>
    <input
      id=${id}
      autocomplete="off"
      aria-describedby=${problem === null
        ? `${id}-hint`
        : `${id}-problem ${id}-hint`}
      aria-invalid=${problem !== null}
      ...${input}
    />
    ${problem !== null &&
      html`<p id=${`${id}-problem`} class="field-problem" role="alert">${problem}</p>`}
    <p id=${`${id}-hint`} class="hint">${children}</p>
  `;
}

/** A remote's state word in its colour. */
export function StateBadge(
  { state, retryIn }: { state: string; retryIn: number | null },
) {
  return html`<span class=${`badge ${stateTone(state)}`}>${
    remoteStateLabel(
      state,
      retryIn,
    )
  }</span>`;
}

/** One line per camera track: codec, kind and how many watch it. */
export function CameraTracks({ tracks }: { tracks: CameraTrack[] }) {
  if (tracks.length === 0) return html`<span class="muted">none yet</span>`;
  return html`
    <ul class="plain">
      ${tracks.map((track) =>
        html`<li key=${track.id}>${cameraTrackText(track)}</li>`
      )}
    </ul>
  `;
}

function RemoteCard(
  { server, retryIn, onRemove }: {
    server: RemoteServer;
    retryIn: number | null;
    onRemove: (server: RemoteServer) => void;
  },
) {
  const kindName = server.kind === "trunk" ? "Umbrella link" : "Camera";
  const title = server.kind === "camera" && server.detail.name
    ? server.detail.name
    : server.url;
  return html`
    <li class="card remote" data-server-id=${server.id}>
      <div class="remote-head">
        <span class="kind">${kindName}</span>
        <${StateBadge} state=${server.state} retryIn=${retryIn} />
        <button
          type="button"
          class="danger small"
          aria-label=${`Remove ${kindName.toLowerCase()} ${title}`}
          onClick=${() => onRemove(server)}
        >
          Remove
        </button>
      </div>
      ${server.kind === "camera" && server.detail.name &&
        html`<p class="remote-name">${server.detail.name}</p>`}
      <p class="mono remote-url">${server.url}</p>
      ${server.lastError &&
        html`
          <p class="remote-error">
            <span class="label">Last error:</span> ${sentence(server.lastError)}
          </p>
        `}
      <dl class="remote-facts">
        ${server.kind === "trunk"
          ? html`<${TrunkFacts} url=${server.url} detail=${server.detail} />`
          : html`<${CameraFacts} detail=${server.detail} />`}
      </dl>
    </li>
  `;
}

function TrunkFacts(
  { url, detail }: {
    url: string;
    detail: Extract<RemoteServer, { kind: "trunk" }>["detail"];
  },
) {
  return html`
    ${detail.remoteSite !== undefined &&
      html`
        <div>
          <dt>Remote site</dt>
          <dd>${detail.remoteSite}</dd>
        </div>
      `}
    ${detail.bytesIn !== undefined &&
      html`
        <div>
          <dt>Receiving</dt>
          <dd>${trafficText(detail.tracksIn ?? 0, detail.bytesIn)}</dd>
        </div>
        <div>
          <dt>Sending</dt>
          <dd>${trafficText(detail.tracksOut ?? 0, detail.bytesOut ?? 0)}</dd>
        </div>
      `}
    <div class=${detail.fingerprint ? "wide" : ""}>
      <dt>Certificate</dt>
      <dd>${certificateText(url, detail.fingerprint)}</dd>
    </div>
  `;
}

function certificateText(url: string, fingerprint: string | undefined) {
  if (fingerprint) {
    return html`pinned to <span class="mono">${fingerprint}</span>`;
  }
  return url.startsWith("ws:")
    ? "none: ws:// is not encrypted"
    : "checked as a browser would";
}

function CameraFacts(
  { detail }: {
    detail: Extract<RemoteServer, { kind: "camera" }>["detail"];
  },
) {
  return html`
    <div>
      <dt>Tracks</dt>
      <dd>
        <${CameraTracks} tracks=${detail.tracks ?? []} />
      </dd>
    </div>
    ${detail.transport &&
      html`
        <div>
          <dt>Transport</dt>
          <dd>${detail.transport.toUpperCase()}</dd>
        </div>
      `}
    ${detail.idleSeconds !== undefined &&
      html`
        <div>
          <dt>When nobody watches</dt>
          <dd>${idleText(detail.idleSeconds)}</dd>
        </div>
      `}
    ${detail.reconnects !== undefined &&
      html`
        <div>
          <dt>Reconnects</dt>
          <dd>${detail.reconnects}</dd>
        </div>
      `}
    ${(detail.notices ?? []).length > 0 &&
      html`
        <div class="wide">
          <dt>Notices</dt>
          <dd>
            <ul class="plain">
              ${detail.notices!.map((notice) =>
                html`<li>${sentence(notice)}</li>`
              )}
            </ul>
          </dd>
        </div>
      `}
  `;
}
