/// <reference lib="dom" />
// Live view of this node: who is connected, which tracks flow, and how the
// links to other servers are doing.
import { html } from "htm/preact";
import { useRef, useState } from "preact/hooks";
import {
  type CameraStatus,
  type RemoteServer,
  type ServersResponse,
  type StatusResponse,
  type TrackStatus,
  type TrunkStatus,
  useNow,
  usePolling,
} from "./api.ts";
import {
  codecName,
  formatBitrate,
  formatDuration,
  formatPercent,
  signallingUrl,
  sparklinePoints,
  stateTone,
} from "./format.ts";
import { secondsLeft, sentence, trafficText } from "./remotes.ts";
import { CameraTracks, StateBadge } from "./servers_page.ts";

const POLL_MS = 2000;
/** About 60 s of bitrate history at one sample per poll. */
const HISTORY_SAMPLES = 30;
const SPARK_WIDTH = 96;
const SPARK_HEIGHT = 24;

export function StatusPage() {
  const status = usePolling<StatusResponse>("api/status", POLL_MS);
  // Outgoing trunks that are down are only in the servers list.
  const servers = usePolling<ServersResponse>("api/servers", POLL_MS);
  const now = useNow(1000);
  const history = useBitrateHistory(status.data?.tracks, status.fetchedAt);
  const data = status.data;

  return html`
    <main class="page">
      ${status.error &&
        html`
          <p class="alert" role="alert">
            ${status.error}${data &&
              ` Showing what was known ${
                formatDuration((now - status.fetchedAt) / 1000)
              } ago.`}
          </p>
        `}
      <h1>${data
        ? html`${data.node.name} <small>site ${data.node.site}</small>`
        : "Status"}</h1>
      ${data
        ? html`
          <dl class="facts">
            <div>
              <dt>Version</dt>
              <dd>${data.node.version}</dd>
            </div>
            <div>
              <dt>Up for</dt>
              <dd>${formatDuration(data.node.uptimeSeconds)}</dd>
            </div>
            <div>
              <dt>Mode</dt>
              <dd>${data.node.cloud ? "cloud" : "local"}</dd>
            </div>
            <div>
              <dt>Node id</dt>
              <dd class="mono">${data.node.id}</dd>
            </div>
            <div class="wide">
              <dt>Certificate fingerprint (SHA-256)</dt>
              <dd>
                <${Fingerprint} value=${data.node.certificateFingerprint} />
              </dd>
            </div>
            <div class="wide">
              <dt>Address for other Umbrellas</dt>
              <dd class="mono">${signallingUrl(location.href)}</dd>
            </div>
          </dl>
          <${PeerTable} peers=${data.peers} />
          <${TrackTable} tracks=${data.tracks} history=${history} />
          <${TrunkTable}
            trunks=${data.trunks}
            unlinked=${(servers.data?.servers ?? []).filter((server) =>
              server.kind === "trunk" && server.state !== "connected"
            )}
            fetchedAt=${servers.fetchedAt}
            now=${now}
          />
          <${CameraTable}
            cameras=${data.cameras}
            fetchedAt=${status.fetchedAt}
            now=${now}
          />
        `
        : !status.error && html`<p role="status">Loading…</p>`}
    </main>
  `;
}

/** The fingerprint another node pins to trust this one, with a copy
 * button where the browser allows copying. */
function Fingerprint({ value }: { value: string | null }) {
  const [copied, setCopied] = useState<string | null>(null);
  if (value === null) {
    return html`<span class="plain-text">none: this node serves plain http
      behind a proxy, whose certificate others check as usual</span>`;
  }
  const copy = () =>
    navigator.clipboard.writeText(value).then(
      () => setCopied("Copied."),
      () => setCopied("Copying was refused; select the text instead."),
    );
  return html`
    <span class="mono">${value}</span>
    ${globalThis.isSecureContext && navigator.clipboard &&
      html`
        <button
          type="button"
          class="small"
          aria-label="Copy certificate fingerprint"
          onClick=${copy}
        >
          Copy
        </button>
      `}
    <span class="sub" role="status">${copied ??
      "Paste it into Certificate fingerprint on the other Umbrella's Servers page to link it to this one."}</span>
  `;
}

/** Keeps the last HISTORY_SAMPLES bitrates of each track, one per poll;
 * tracks that disappear lose their history. Updated while rendering so the
 * newest sample shows together with the numbers it came with. */
function useBitrateHistory(
  tracks: TrackStatus[] | undefined,
  fetchedAt: number,
): Map<string, number[]> {
  const kept = useRef({ fetchedAt: 0, history: new Map<string, number[]>() });
  if (tracks && fetchedAt !== kept.current.fetchedAt) {
    const history = new Map<string, number[]>();
    for (const track of tracks) {
      const samples = kept.current.history.get(track.id) ?? [];
      history.set(
        track.id,
        [...samples, track.bitrateBps].slice(-HISTORY_SAMPLES),
      );
    }
    kept.current = { fetchedAt, history };
  }
  return kept.current.history;
}

function PeerTable({ peers }: { peers: StatusResponse["peers"] }) {
  return html`
    <section aria-labelledby="status-peers">
      <h2 id="status-peers">Connections (${peers.length})</h2>
      ${peers.length === 0
        ? html`<p class="empty">Nobody is connected.</p>`
        : html`
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Kind</th>
                  <th scope="col">Site</th>
                  <th scope="col">State</th>
                  <th scope="col">Connected for</th>
                  <th scope="col" class="num">Publishing</th>
                  <th scope="col" class="num">Receiving</th>
                </tr>
              </thead>
              <tbody>
                ${peers.map((peer) =>
                  html`
                    <tr key=${peer.id} data-peer-id=${peer.id}>
                      <td data-label="Name">${peer.name}</td>
                      <td data-label="Kind">${peer.kind}</td>
                      <td data-label="Site">${peer.site}</td>
                      <td data-label="State"><span class=${`badge ${
                        stateTone(peer.state)
                      }`}>${peer.state}</span></td>
                      <td data-label="Connected for">${formatDuration(
                        peer.connectedSeconds,
                      )}</td>
                      <td class="num" data-label="Publishing">${peer
                        .tracksPublished}</td>
                      <td class="num" data-label="Receiving">${peer
                        .tracksSubscribed}</td>
                    </tr>
                  `
                )}
              </tbody>
            </table>
          </div>
        `}
    </section>
  `;
}

function TrackTable(
  { tracks, history }: {
    tracks: TrackStatus[];
    history: Map<string, number[]>;
  },
) {
  return html`
    <section aria-labelledby="status-tracks">
      <h2 id="status-tracks">Tracks (${tracks.length})</h2>
      ${tracks.length === 0
        ? html`<p class="empty">No media is flowing.</p>`
        : html`
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">From</th>
                  <th scope="col">Kind</th>
                  <th scope="col">Codec</th>
                  <th scope="col" class="num">Bitrate</th>
                  <th
                    scope="col"><span class="sr-only">Bitrate over the last minute</span></th>
                  <th scope="col" class="num">Loss</th>
                  <th scope="col" class="num">Packets</th>
                  <th scope="col" class="num">Receivers</th>
                </tr>
              </thead>
              <tbody>
                ${tracks.map((track) =>
                  html`
                    <tr key=${track.id} data-track-id=${track.id}>
                      <td data-label="From">
                        ${track.participantName || track.label}
                        <span class="sub">${track
                          .site}${track.source === "camera"
                          ? " · camera"
                          : ""}${track.muted ? " · off" : ""}</span>
                      </td>
                      <td data-label="Kind">${track.kind}</td>
                      <td data-label="Codec">${codecName(track.mimeType)}</td>
                      <td class="num" data-label="Bitrate">${formatBitrate(
                        track.bitrateBps,
                      )}</td>
                      <td data-label="Last minute">
                        <${Sparkline} values=${history.get(track.id) ?? []} />
                      </td>
                      <td class="num" data-label="Loss">${formatPercent(
                        track.lossFraction,
                      )}</td>
                      <td class="num" data-label="Packets">
                        ${track.packetsReceived.toLocaleString()}
                        <span class="sub">${track.packetsLost
                          .toLocaleString()} lost</span>
                      </td>
                      <td class="num" data-label="Receivers">${track
                        .subscribers}</td>
                    </tr>
                  `
                )}
              </tbody>
            </table>
          </div>
        `}
    </section>
  `;
}

function Sparkline({ values }: { values: number[] }) {
  return html`
    <svg
      class="sparkline"
      width=${SPARK_WIDTH}
      height=${SPARK_HEIGHT}
      viewBox=${`0 0 ${SPARK_WIDTH} ${SPARK_HEIGHT}`}
      aria-hidden="true"
    >
      <polyline
        points=${sparklinePoints(values, SPARK_WIDTH, SPARK_HEIGHT)}
        fill="none"
        stroke="currentColor"
        stroke-width="1.5"
        stroke-linejoin="round"
      />
    </svg>
  `;
}

function TrunkTable(
  { trunks, unlinked, fetchedAt, now }: {
    trunks: TrunkStatus[];
    /** Outgoing trunks from the servers list that are not connected. */
    unlinked: RemoteServer[];
    fetchedAt: number;
    now: number;
  },
) {
  return html`
    <section aria-labelledby="status-trunks">
      <h2 id="status-trunks">Trunks (${trunks.length + unlinked.length})</h2>
      ${trunks.length + unlinked.length === 0
        ? html`
          <p class="empty">
            No links to other Umbrella servers. Add one on the <a href="servers"
            >Servers</a> page.
          </p>
        `
        : html`
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Remote site</th>
                  <th scope="col">Direction</th>
                  <th scope="col">State</th>
                  <th scope="col">Connected for</th>
                  <th scope="col" class="num">Receiving</th>
                  <th scope="col" class="num">Sending</th>
                </tr>
              </thead>
              <tbody>
                ${trunks.map((trunk) =>
                  html`
                    <tr key=${trunk.id} data-trunk-id=${trunk.id}>
                      <td data-label="Remote site">
                        ${trunk.remoteSite}
                        <span class="sub mono">${trunk.remoteNodeId}</span>
                      </td>
                      <td data-label="Direction">${trunk.direction ===
                          "outgoing"
                        ? "outgoing"
                        : "incoming"}</td>
                      <td data-label="State">
                        <${StateBadge} state="connected" retryIn=${null} />
                      </td>
                      <td data-label="Connected for">${formatDuration(
                        trunk.connectedSeconds,
                      )}</td>
                      <td class="num" data-label="Receiving">${trafficText(
                        trunk.tracksIn,
                        trunk.bytesIn,
                      )}</td>
                      <td class="num" data-label="Sending">${trafficText(
                        trunk.tracksOut,
                        trunk.bytesOut,
                      )}</td>
                    </tr>
                  `
                )}
                ${unlinked.map((server) =>
                  html`
                    <tr key=${server.id} data-server-id=${server.id}>
                      <td data-label="Remote site" class="mono">${server
                        .url}</td>
                      <td data-label="Direction">outgoing</td>
                      <td data-label="State" colspan="4">
                        <${StateBadge}
                          state=${server.state}
                          retryIn=${secondsLeft(
                            server.retryInSeconds,
                            fetchedAt,
                            now,
                          )}
                        />
                        ${server.lastError &&
                          html`<span class="sub">${
                            sentence(
                              server.lastError,
                            )
                          }</span>`}
                      </td>
                    </tr>
                  `
                )}
              </tbody>
            </table>
          </div>
        `}
    </section>
  `;
}

function CameraTable(
  { cameras, fetchedAt, now }: {
    cameras: CameraStatus[];
    fetchedAt: number;
    now: number;
  },
) {
  return html`
    <section aria-labelledby="status-cameras">
      <h2 id="status-cameras">Cameras (${cameras.length})</h2>
      ${cameras.length === 0
        ? html`
          <p class="empty">
            No cameras. Add one on the <a href="servers">Servers</a> page.
          </p>
        `
        : html`
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">State</th>
                  <th scope="col">Last error</th>
                  <th scope="col">Tracks and viewers</th>
                </tr>
              </thead>
              <tbody>
                ${cameras.map((camera) =>
                  html`
                    <tr key=${camera.id} data-camera-id=${camera.id}>
                      <td data-label="Name">${camera.name}</td>
                      <td data-label="State">
                        <${StateBadge}
                          state=${camera.state}
                          retryIn=${secondsLeft(
                            camera.retryInSeconds,
                            fetchedAt,
                            now,
                          )}
                        />
                      </td>
                      <td data-label="Last error">${camera.lastError
                        ? sentence(camera.lastError)
                        : "—"}</td>
                      <td data-label="Tracks and viewers">
                        <${CameraTracks} tracks=${camera.detail.tracks} />
                        ${camera.detail.notices.map((notice) =>
                          html`<span class="sub">${sentence(notice)}</span>`
                        )}
                      </td>
                    </tr>
                  `
                )}
              </tbody>
            </table>
          </div>
        `}
    </section>
  `;
}
