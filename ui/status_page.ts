/// <reference lib="dom" />
// Live view of this node: who is connected, which tracks flow, and how the
// links to other servers are doing.
import type { ComponentChildren } from "preact";
import { html } from "htm/preact";
import { useRef, useState } from "preact/hooks";
import {
  type CameraStatus,
  type PeerStatus,
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
              <dd class="mono">${data.node.passwordRequired
                ? trunkUrlWithPassword(signallingUrl(location.href))
                : signallingUrl(location.href)}</dd>
            </div>
          </dl>
          <${TableSection} spec=${PEER_TABLE} rows=${data.peers} />
          <${TableSection} spec=${trackTable(history)} rows=${data.tracks} />
          <${TrunkTable}
            trunks=${data.trunks}
            unlinked=${(servers.data?.servers ?? []).filter((server) =>
              server.kind === "trunk" && server.state !== "connected"
            )}
            fetchedAt=${servers.fetchedAt}
            now=${now}
          />
          <${TableSection}
            spec=${cameraTable(status.fetchedAt, now)}
            rows=${data.cameras}
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

/** One column of a status table. */
interface Column<Row> {
  /** Names the column, and each of its cells where a narrow screen stacks a
   * row's cells. */
  label: string;
  /** What the heading shows instead of the label. */
  heading?: ComponentChildren;
  /** Right-aligned, for numbers. */
  numeric?: boolean;
  cell: (row: Row) => ComponentChildren;
}

/** What sets one status table apart from the others. */
interface TableSpec<Row> {
  /** What a row is, for ids: the section is `status-NAMEs` and each row
   * carries its item's id in `data-NAME-id`, for scripts and tests. */
  name: string;
  title: string;
  /** Said instead of the table while there are no rows. */
  empty: ComponentChildren;
  columns: Column<Row>[];
}

/** A part of the page titled with how many rows its table has, or saying
 * that there are none. */
function TableSection<Row extends { id: string }>(
  { spec, rows, extraRows = [] }: {
    spec: TableSpec<Row>;
    rows: Row[];
    /** Rows of another kind, after the others. */
    extraRows?: ComponentChildren[];
  },
) {
  const { name, title, empty, columns } = spec;
  const count = rows.length + extraRows.length;
  const numeric = (column: Column<Row>) => column.numeric ? "num" : undefined;
  return html`
    <section aria-labelledby=${`status-${name}s`}>
      <h2 id=${`status-${name}s`}>${title} (${count})</h2>
      ${count === 0 ? html`<p class="empty">${empty}</p>` : html`
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                ${columns.map((column) =>
                  html`<th key=${column.label} scope="col" class=${
                    numeric(column)
                  }>${column.heading ?? column.label}</th>`
                )}
              </tr>
            </thead>
            <tbody>
              ${rows.map((row) =>
                html`
                  <tr key=${row.id} ...${{ [`data-${name}-id`]: row.id }}>
                    ${columns.map((column) =>
                      html`<td key=${column.label} class=${
                        numeric(column)
                      } data-label=${column.label}>${column.cell(row)}</td>`
                    )}
                  </tr>
                `
              )}
              ${extraRows}
            </tbody>
          </table>
        </div>
      `}
    </section>
  `;
}

const PEER_TABLE: TableSpec<PeerStatus> = {
  name: "peer",
  title: "Connections",
  empty: "Nobody is connected.",
  columns: [
    { label: "Name", cell: (peer) => peer.name },
    { label: "Kind", cell: (peer) => peer.kind },
    { label: "Site", cell: (peer) => peer.site },
    {
      label: "State",
      cell: (peer) =>
        html`<span class=${`badge ${
          stateTone(peer.state)
        }`}>${peer.state}</span>`,
    },
    {
      label: "Connected for",
      cell: (peer) => formatDuration(peer.connectedSeconds),
    },
    {
      label: "Publishing",
      numeric: true,
      cell: (peer) => peer.tracksPublished,
    },
    {
      label: "Receiving",
      numeric: true,
      cell: (peer) => peer.tracksSubscribed,
    },
  ],
};

function trackTable(history: Map<string, number[]>): TableSpec<TrackStatus> {
  return {
    name: "track",
    title: "Tracks",
    empty: "No media is flowing.",
    columns: [
      {
        label: "From",
        cell: (track) =>
          html`
            ${track.participantName || track.label}
            <span class="sub">${track.site}${track.source === "camera"
              ? " · camera"
              : ""}${track.muted ? " · off" : ""}</span>
          `,
      },
      {
        label: "Kind",
        cell: (track) =>
          track.simulcastLayer === undefined
            ? track.kind
            : `${track.kind}, layer ${track.simulcastLayer}`,
      },
      { label: "Codec", cell: (track) => codecName(track.mimeType) },
      {
        label: "Bitrate",
        numeric: true,
        cell: (track) => formatBitrate(track.bitrateBps),
      },
      {
        label: "Last minute",
        heading:
          html`<span class="sr-only">Bitrate over the last minute</span>`,
        cell: (track) =>
          html`<${Sparkline} values=${history.get(track.id) ?? []} />`,
      },
      {
        label: "Loss",
        numeric: true,
        cell: (track) => formatPercent(track.lossFraction),
      },
      {
        label: "Packets",
        numeric: true,
        cell: (track) =>
          html`
            ${track.packetsReceived.toLocaleString()}
            <span class="sub">${track.packetsLost.toLocaleString()} lost</span>
          `,
      },
      { label: "Receivers", numeric: true, cell: (track) => track.subscribers },
    ],
  };
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

const TRUNK_TABLE: TableSpec<TrunkStatus> = {
  name: "trunk",
  title: "Trunks",
  empty: html`
    No links to other Umbrella servers. Add one on the <a
      href="servers">Servers</a> page.
  `,
  columns: [
    {
      label: "Remote site",
      cell: (trunk) =>
        html`
          ${trunk.remoteSite}
          <span class="sub mono">${trunk.remoteNodeId}</span>
        `,
    },
    {
      label: "Direction",
      cell: (trunk) => trunk.direction === "outgoing" ? "outgoing" : "incoming",
    },
    {
      label: "State",
      cell: () => html`<${StateBadge} state="connected" retryIn=${null} />`,
    },
    {
      label: "Connected for",
      cell: (trunk) => formatDuration(trunk.connectedSeconds),
    },
    {
      label: "Receiving",
      numeric: true,
      cell: (trunk) => trafficText(trunk.tracksIn, trunk.bytesIn),
    },
    {
      label: "Sending",
      numeric: true,
      cell: (trunk) => trafficText(trunk.tracksOut, trunk.bytesOut),
    },
  ],
};

function TrunkTable(
  { trunks, unlinked, fetchedAt, now }: {
    trunks: TrunkStatus[];
    /** Outgoing trunks from the servers list that are not connected. */
    unlinked: RemoteServer[];
    fetchedAt: number;
    now: number;
  },
) {
  const unlinkedRows = unlinked.map((server) =>
    html`
      <tr key=${server.id} data-server-id=${server.id}>
        <td data-label="Remote site" class="mono">${server.url}</td>
        <td data-label="Direction">outgoing</td>
        <td data-label="State" colspan="4">
          <${StateBadge}
            state=${server.state}
            retryIn=${secondsLeft(server.retryInSeconds, fetchedAt, now)}
          />
          ${server.lastError &&
            html`<span class="sub">${sentence(server.lastError)}</span>`}
        </td>
      </tr>
    `
  );
  return html`
    <${TableSection} spec=${TRUNK_TABLE} rows=${trunks} extraRows=${unlinkedRows} />
  `;
}

function cameraTable(fetchedAt: number, now: number): TableSpec<CameraStatus> {
  return {
    name: "camera",
    title: "Cameras",
    empty: html`No cameras. Add one on the <a href="servers">Servers</a> page.`,
    columns: [
      { label: "Name", cell: (camera) => camera.name },
      {
        label: "State",
        cell: (camera) =>
          html`
            <${StateBadge}
              state=${camera.state}
              retryIn=${secondsLeft(camera.retryInSeconds, fetchedAt, now)}
            />
          `,
      },
      {
        label: "Last error",
        cell: (camera) => camera.lastError ? sentence(camera.lastError) : "—",
      },
      {
        label: "Tracks and viewers",
        cell: (camera) =>
          html`
            <${CameraTracks} tracks=${camera.detail.tracks} />
            ${camera.detail.notices.map((notice) =>
              html`<span class="sub">${sentence(notice)}</span>`
            )}
          `,
      },
    ],
  };
}

/** The trunk address with the place for this node's password in it. */
export function trunkUrlWithPassword(address: string): string {
  return address.replace(/^(wss?:\/\/)/, "$1umbrella:PASSWORD@");
}
