/// <reference lib="dom" />
// Remote sources: trunks to other Umbrella nodes and RTSP cameras.
import { html } from "htm/preact";
import { useState } from "preact/hooks";
import {
  fetchJson,
  type RemoteServer,
  type ServersResponse,
  useNow,
  usePolling,
} from "./api.ts";
import { formatDuration, stateTone } from "./format.ts";

const POLL_MS = 2000;
const SCHEMES = ["wss:", "ws:", "rtsp:", "rtsps:"];

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
      setProblem(`Could not remove ${server.url}: ${(error as Error).message}`);
    }
    servers.refresh();
  };

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
        <h2 id="servers-list">Connected sources</h2>
        ${servers.data &&
          html`
            <${ServerTable}
              servers=${servers.data.servers}
              fetchedAt=${servers.fetchedAt}
              now=${now}
              onRemove=${remove}
              empty="No remote servers yet. Add one above."
            />
          `}
      </section>
    </main>
  `;
}

function AddServerForm({ onAdded }: { onAdded: () => void }) {
  const [url, setUrl] = useState("");
  const [fingerprint, setFingerprint] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const forTrunk = /^wss?:/i.test(url.trim());

  const submit = async (event: Event) => {
    event.preventDefault();
    const address = url.trim();
    const scheme = /^[a-z]+:/i.exec(address)?.[0].toLowerCase() ?? "";
    if (!SCHEMES.includes(scheme)) {
      setProblem(
        "Enter the wss:// address of another Umbrella or the rtsp:// address of a camera.",
      );
      return;
    }
    setBusy(true);
    setProblem(null);
    try {
      await fetchJson("api/servers", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(
          forTrunk && fingerprint.trim()
            ? { url: address, fingerprint: fingerprint.trim() }
            : { url: address },
        ),
      });
      setUrl("");
      setFingerprint("");
      onAdded();
    } catch (error) {
      setProblem((error as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return html`
    <form class="card" onSubmit=${submit}>
      <label for="server-url">Address</label>
      <input
        id="server-url"
        name="url"
        inputmode="url"
        autocomplete="off"
        autocapitalize="off"
        spellcheck="false"
        placeholder="wss://host:8081/wsb or rtsp://…"
        aria-describedby="server-url-hint"
        value=${url}
        onInput=${(e: Event) =>
          setUrl((e.currentTarget as HTMLInputElement).value)}
      />
      <p id="server-url-hint" class="hint">
        Another Umbrella: its page address with wss:// instead of https:// and wsb
        instead of sfu. A camera: its rtsp:// address, including user and password
        if it needs them.
      </p>
      <label for="server-fingerprint">Certificate fingerprint (optional, wss:// only)</label>
      <input
        id="server-fingerprint"
        name="fingerprint"
        autocomplete="off"
        autocapitalize="characters"
        spellcheck="false"
        placeholder="AB:CD:EF:…"
        aria-describedby="server-fingerprint-hint"
        disabled=${!forTrunk}
        value=${fingerprint}
        onInput=${(e: Event) =>
          setFingerprint((e.currentTarget as HTMLInputElement).value)}
      />
      <p id="server-fingerprint-hint" class="hint">
        For an Umbrella with a self-signed certificate: the SHA-256 fingerprint shown
        on its Status page.
      </p>
      ${problem && html`<p class="alert" role="alert">${problem}</p>`}
      <div class="actions">
        <button type="submit" class="primary" disabled=${busy}>Add server</button>
      </div>
    </form>
  `;
}

/** Remote servers with their state; with `onRemove`, each row gets a remove
 * button. Shared by the Servers and the Status page. */
export function ServerTable(
  { servers, fetchedAt, now, onRemove, empty }: {
    servers: RemoteServer[];
    fetchedAt: number;
    now: number;
    onRemove?: (server: RemoteServer) => void;
    empty: string;
  },
) {
  if (servers.length === 0) return html`<p class="empty">${empty}</p>`;
  return html`
    <div class="table-wrap">
      <table>
        <thead>
          <tr>
            <th scope="col">Kind</th>
            <th scope="col">Address</th>
            <th scope="col">State</th>
            <th scope="col">Last error</th>
            ${onRemove &&
              html`<th scope="col"><span class="sr-only">Actions</span></th>`}
          </tr>
        </thead>
        <tbody>
          ${servers.map((server) =>
            html`
              <tr key=${server.id} data-server-id=${server.id}>
                <td data-label="Kind">${server.kind === "trunk"
                  ? "Umbrella"
                  : "Camera"}</td>
                <td class="mono" data-label="Address">${server.url}</td>
                <td data-label="State">
                  <span class=${`badge ${stateTone(server.state)}`}>${server
                    .state}</span>
                  ${server.retryInSeconds !== null &&
                    html`
                      <span class="retry">retrying in ${formatDuration(
                        Math.ceil(
                          server.retryInSeconds -
                            Math.max(0, now - fetchedAt) / 1000,
                        ),
                      )}</span>
                    `}
                </td>
                <td data-label="Last error">${server.lastError ??
                  "—"}${Object.keys(server.detail ?? {}).length > 0 &&
                  html`
                    <details>
                      <summary>Details</summary>
                      <pre>${JSON.stringify(server.detail, null, 2)}</pre>
                    </details>
                  `}</td>
                ${onRemove &&
                  html`
                    <td class="row-actions">
                      <button
                        type="button"
                        class="danger small"
                        aria-label=${`Remove ${server.url}`}
                        onClick=${() => onRemove(server)}
                      >
                        Remove
                      </button>
                    </td>
                  `}
              </tr>
            `
          )}
        </tbody>
      </table>
    </div>
  `;
}
