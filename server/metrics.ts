// /metrics in Prometheus text format, computed from the router when scraped
// so the forwarding path keeps no extra counters for it.
import type { AccessStats } from "./access.ts";
import { layerSwitches } from "../media/consumer.ts";
import type { OverloadStats } from "../media/overload.ts";
import type { Router } from "../media/router.ts";
import type { SignallingSession } from "./session.ts";

type Kind = "audio" | "video";
const KINDS: Kind[] = ["audio", "video"];

export function renderMetrics(
  router: Router,
  sessions: Iterable<SignallingSession>,
  overload: OverloadStats,
  access: AccessStats,
): string {
  const totals = router.totals();
  const peersByKind = new Map<string, number>();
  for (const session of sessions) {
    if (!session.peer) continue;
    peersByKind.set(session.kind, (peersByKind.get(session.kind) ?? 0) + 1);
  }
  const tracksByKind = { audio: 0, video: 0 };
  for (const track of router.tracks.values()) {
    tracksByKind[track.description.kind]++;
  }
  const memory = Deno.memoryUsage();
  const lines: string[] = [];
  const family = (name: string, type: string, help: string) =>
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);

  family("umbrella_peers", "gauge", "Connected peers by kind.");
  for (const kind of ["browser", "client", "node", "camera"]) {
    lines.push(`umbrella_peers{kind="${kind}"} ${peersByKind.get(kind) ?? 0}`);
  }
  family("umbrella_tracks", "gauge", "Published tracks by media kind.");
  for (const kind of KINDS) {
    lines.push(`umbrella_tracks{kind="${kind}"} ${tracksByKind[kind]}`);
  }
  family(
    "umbrella_subscriptions",
    "gauge",
    "Forwarded streams (one per subscriber per track).",
  );
  for (const kind of KINDS) {
    lines.push(
      `umbrella_subscriptions{kind="${kind}"} ${totals[kind].consumers}`,
    );
  }

  const counters: [string, string, keyof typeof totals.audio][] = [
    [
      "umbrella_packets_in_total",
      "RTP packets received from publishers.",
      "packetsIn",
    ],
    [
      "umbrella_bytes_in_total",
      "RTP payload bytes received from publishers.",
      "bytesIn",
    ],
    [
      "umbrella_packets_out_total",
      "RTP packets forwarded to subscribers, retransmissions included.",
      "packetsOut",
    ],
    [
      "umbrella_bytes_out_total",
      "RTP payload bytes forwarded to subscribers.",
      "bytesOut",
    ],
    [
      "umbrella_retransmissions_total",
      "Packets resent to subscribers in answer to their NACKs.",
      "retransmitted",
    ],
    [
      "umbrella_nacks_upstream_total",
      "Sequence numbers NACKed to publishers (each once).",
      "nackedUpstream",
    ],
    [
      "umbrella_keyframe_requests_total",
      "Keyframe requests sent to publishers.",
      "keyframeRequests",
    ],
    [
      "umbrella_forwarding_errors_total",
      "Retransmissions that could not be served because the packet was not in the cache.",
      "nackMisses",
    ],
  ];
  for (const [name, help, key] of counters) {
    family(name, "counter", help);
    for (const kind of KINDS) {
      lines.push(`${name}{kind="${kind}"} ${totals[kind][key]}`);
    }
  }
  // Per trunk link: what the backhaul carries each way.
  const links = [...sessions].filter((s) => s.kind === "node" && s.peer);
  const linkLabels = (s: SignallingSession) =>
    `{remote_site="${labelValue(s.remoteSite)}",remote_node="${
      labelValue(s.remoteNodeId)
    }"}`;
  const linkFamilies: [
    string,
    string,
    string,
    (s: SignallingSession) => number,
  ][] = [
    [
      "umbrella_trunk_bytes_out_total",
      "counter",
      "RTP payload bytes sent to another node over a trunk.",
      (s) => s.peer!.mediaBytesSent,
    ],
    [
      "umbrella_trunk_bytes_in_total",
      "counter",
      "RTP payload bytes received from another node over a trunk.",
      (s) => s.peer!.mediaBytesReceived,
    ],
    [
      "umbrella_trunk_tracks_out",
      "gauge",
      "Tracks sent to another node over a trunk.",
      (s) => [...s.peer!.subscriptions].length,
    ],
    [
      "umbrella_trunk_tracks_in",
      "gauge",
      "Tracks received from another node over a trunk.",
      (s) => s.peer!.inboundTracks.length,
    ],
  ];
  for (const [name, type, help, value] of linkFamilies) {
    family(name, type, help);
    for (const link of links) {
      lines.push(`${name}${linkLabels(link)} ${value(link)}`);
    }
  }

  const gauges: [string, string, number][] = [
    [
      "umbrella_overload_watching",
      "1 while the load is watched (a session is open); an idle node does not wake itself.",
      overload.watching ? 1 : 0,
    ],
    [
      "umbrella_overloaded",
      "1 while the node sheds load and refuses new participants.",
      overload.overloaded ? 1 : 0,
    ],
    [
      "umbrella_event_loop_lag_seconds",
      "How late the event loop runs timers, smoothed.",
      overload.lagSeconds,
    ],
    [
      "umbrella_pending_sends",
      "The most RTP/RTCP datagrams waiting to be sent at once in the latest 100 ms.",
      overload.pendingSends,
    ],
    [
      "umbrella_pending_sends_max",
      "The most RTP/RTCP datagrams ever waiting to be sent at once.",
      overload.pendingSendsHighest,
    ],
    [
      "umbrella_pending_sends_limit",
      "Waiting datagrams beyond which more are dropped (--max-pending-sends).",
      overload.pendingSendsLimit,
    ],
    [
      "umbrella_video_shed_ratio",
      "Share of video subscriptions the node is set to shed (simulcast ones first move to their lowest layer).",
      overload.shedFraction,
    ],
    [
      "umbrella_video_subscriptions_paused",
      "Video subscriptions paused to shed load.",
      overload.videoSubscriptionsPaused,
    ],
    [
      "umbrella_video_subscriptions_lowered",
      "Simulcast subscriptions held on their lowest layer to shed load.",
      overload.videoSubscriptionsLowered,
    ],
    [
      "umbrella_process_resident_memory_bytes",
      "Resident set size of the process.",
      memory.rss,
    ],
    [
      "umbrella_process_heap_used_bytes",
      "JavaScript heap in use.",
      memory.heapUsed,
    ],
    [
      "umbrella_process_heap_total_bytes",
      "JavaScript heap reserved, in use or not.",
      memory.heapTotal,
    ],
    [
      "umbrella_process_external_memory_bytes",
      "Memory outside the JavaScript heap held by its objects (buffers).",
      memory.external,
    ],
  ];
  for (const [name, help, value] of gauges) {
    family(name, "gauge", help);
    lines.push(`${name} ${value}`);
  }
  family(
    "umbrella_packets_shed_total",
    "counter",
    "Packets not sent to shed load: video to paused subscriptions, or any RTP/RTCP datagram when the send queue or the socket's buffer was full.",
  );
  lines.push(
    `umbrella_packets_shed_total{reason="video_paused"} ${overload.packetsShed.videoPaused}`,
    `umbrella_packets_shed_total{reason="send_queue_full"} ${overload.packetsShed.sendQueueFull}`,
    `umbrella_packets_shed_total{reason="socket_buffer_full"} ${overload.packetsShed.socketBufferFull}`,
  );
  family(
    "umbrella_joins_refused_total",
    "counter",
    "Participants refused because the node was overloaded.",
  );
  lines.push(`umbrella_joins_refused_total ${overload.joinsRefused}`);
  family(
    "umbrella_simulcast_layer_switches_total",
    "counter",
    "Subscriptions moved to a higher or lower simulcast layer.",
  );
  lines.push(
    `umbrella_simulcast_layer_switches_total{direction="up"} ${layerSwitches.up}`,
    `umbrella_simulcast_layer_switches_total{direction="down"} ${layerSwitches.down}`,
  );
  family(
    "umbrella_sign_ins_total",
    "counter",
    "Browsers that signed in, by the role their password gave.",
  );
  for (const [role, count] of Object.entries(access.signIns)) {
    lines.push(`umbrella_sign_ins_total{role="${role}"} ${count}`);
  }
  family(
    "umbrella_access_refused_total",
    "counter",
    "Requests refused: a wrong password, an address waiting after too many, a participant on the operator's paths, a cookie sent from another site.",
  );
  const refused = access.refused;
  lines.push(
    `umbrella_access_refused_total{reason="wrong_password"} ${refused.wrongPassword}`,
    `umbrella_access_refused_total{reason="too_many_attempts"} ${refused.tooManyAttempts}`,
    `umbrella_access_refused_total{reason="operator_only"} ${refused.operatorOnly}`,
    `umbrella_access_refused_total{reason="cross_site"} ${refused.crossSite}`,
  );

  return lines.join("\n") + "\n";
}

/** Escapes a label value as the Prometheus text format requires. */
function labelValue(text: string): string {
  return text.replace(/[\\"\n]/g, (c) => c === "\n" ? "\\n" : `\\${c}`);
}
