// Janus VideoRoom (Debian's `janus` package) as a second SFU under the same
// load: a throw-away config directory that loads only the VideoRoom plugin
// and the HTTP transport, serves its API on 127.0.0.1 and gathers ICE on one
// given address only (inside the bench's private namespace: bench/netns.ts),
// and a driver for its HTTP API so werift peers can publish and subscribe.
import { RTCPeerConnection } from "werift";
import { freeLoopbackPort } from "./proc.ts";
import { forEachLine, keepTail, terminate } from "../tests/support/child.ts";
import { peerConnectionConfig } from "../media/rtc_config.ts";
import { type MediaProfile, MediaSource, wallClockMs } from "./media_source.ts";
import {
  capturedLeg,
  type LatencyHistogram,
  receivedStreams,
  type ReceiveLeg,
  receiveLeg,
  ReceiveStats,
  recordIncoming,
} from "./receive_stats.ts";
import type { PeerLegs } from "./worker_protocol.ts";

export const JANUS_BINARY = "/usr/bin/janus";
const JANUS_LIB = "/usr/lib/x86_64-linux-gnu/janus";
export const JANUS_ROOM = 1234;
const START_TIMEOUT_MS = 15_000;
const REQUEST_TIMEOUT_MS = 15_000;
const LOG_TAIL_LINES = 40;

export interface JanusProcess {
  pid: number;
  /** The HTTP API root, e.g. http://127.0.0.1:PORT/janus */
  apiUrl: string;
  /** The only address Janus offers ICE candidates on. */
  mediaAddress: string;
  logTail: string[];
  stop(): Promise<void>;
}

/** Janus's version line, or why it cannot run here. */
export async function janusVersion(): Promise<
  { version: string } | { unavailable: string }
> {
  try {
    const { stdout } = await new Deno.Command(JANUS_BINARY, {
      args: ["--version"],
      stdout: "piped",
      stderr: "null",
    }).output();
    const text = new TextDecoder().decode(stdout);
    const match = text.match(/Janus version: \d+ \(([^)]+)\)/);
    return match
      ? { version: match[1] }
      : { unavailable: `unexpected \`janus --version\` output: ${text}` };
  } catch (error) {
    return error instanceof Deno.errors.NotFound
      ? {
        unavailable:
          `${JANUS_BINARY} is not installed (apt-get install -y --no-install-recommends janus)`,
      }
      : { unavailable: `janus --version failed: ${error}` };
  }
}

async function writeConfig(
  dir: string,
  httpPort: number,
  mediaAddress: string,
): Promise<void> {
  // Only the two modules we need are linked in, so no other plugin or
  // transport opens ports or reads the system's /etc/janus.
  for (
    const [folder, library] of [
      ["plugins", "plugins/libjanus_videoroom.so"],
      ["transports", "transports/libjanus_http.so"],
    ]
  ) {
    await Deno.mkdir(`${dir}/${folder}`);
    await Deno.symlink(
      `${JANUS_LIB}/${library}`,
      `${dir}/${folder}/${library.split("/")[1]}`,
    );
  }
  await Deno.mkdir(`${dir}/none`);
  await Deno.writeTextFile(
    `${dir}/janus.jcfg`,
    `general: {
  configs_folder = "${dir}"
  plugins_folder = "${dir}/plugins"
  transports_folder = "${dir}/transports"
  events_folder = "${dir}/none"
  loggers_folder = "${dir}/none"
  debug_level = 3
  session_timeout = 120
}
media: {
  ipv6 = false
}
nat: {
  ice_enforce_list = "${mediaAddress}"
  ignore_mdns = true
}
`,
  );
  await Deno.writeTextFile(
    `${dir}/janus.transport.http.jcfg`,
    `general: {
  json = "compact"
  base_path = "/janus"
  http = true
  ip = "127.0.0.1"
  port = ${httpPort}
  https = false
}
admin: {
  admin_http = false
}
`,
  );
  // No bitrate cap (REMB) and no periodic FIR, so Janus forwards what the
  // publisher sends, as Umbrella does.
  await Deno.writeTextFile(
    `${dir}/janus.plugin.videoroom.jcfg`,
    `general: {
}
room-${JANUS_ROOM}: {
  description = "umbrella bench"
  publishers = 16
  bitrate = 0
  fir_freq = 0
  audiocodec = "opus"
  videocodec = "vp8"
}
`,
  );
}

export async function startJanus(
  mediaAddress: string,
): Promise<JanusProcess> {
  const dir = await Deno.makeTempDir({ prefix: "umbrella-bench-janus-" });
  const port = freeLoopbackPort();
  await writeConfig(dir, port, mediaAddress);
  const child = new Deno.Command(JANUS_BINARY, {
    args: ["--config", `${dir}/janus.jcfg`, "--configs-folder", dir, "-o"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const logTail: string[] = [];
  const keep = (line: string) => keepTail(logTail, line, LOG_TAIL_LINES);
  forEachLine(child.stdout, keep);
  forEachLine(child.stderr, keep);
  const apiUrl = `http://127.0.0.1:${port}/janus`;
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async () => {
    await terminate(child, status);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const deadline = performance.now() + START_TIMEOUT_MS;
  while (true) {
    try {
      const response = await fetch(`${apiUrl}/info`);
      await response.body?.cancel();
      if (response.ok) break;
    } catch { /* not listening yet */ }
    if (exited || performance.now() > deadline) {
      await stop();
      throw new Error(
        `janus did not answer on ${apiUrl} (${
          exited ? "it exited" : "timed out"
        }):\n${logTail.join("\n")}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { pid: child.pid, apiUrl, mediaAddress, logTail, stop };
}

// ---- the Janus HTTP API, as one bench peer uses it ----

// deno-lint-ignore no-explicit-any
type JanusMessage = Record<string, any>;

let transactions = 0;

/** One Janus session with one VideoRoom handle, and its long-poll loop. */
class JanusHandle {
  readonly #api: string;
  #sessionUrl = "";
  #handleUrl = "";
  #events: JanusMessage[] = [];
  #waiters: (() => void)[] = [];
  #closed = false;
  #poll: Promise<void> = Promise.resolve();
  #abort = new AbortController();

  constructor(api: string) {
    this.#api = api;
  }

  async open(): Promise<void> {
    const session = await this.#post(this.#api, { janus: "create" });
    this.#sessionUrl = `${this.#api}/${session.data.id}`;
    this.#poll = this.#longPoll();
    const handle = await this.#post(this.#sessionUrl, {
      janus: "attach",
      plugin: "janus.plugin.videoroom",
    });
    this.#handleUrl = `${this.#sessionUrl}/${handle.data.id}`;
  }

  async #post(url: string, body: JanusMessage): Promise<JanusMessage> {
    const response = await fetch(url, {
      method: "POST",
      body: JSON.stringify({ ...body, transaction: `t${++transactions}` }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const reply = await response.json();
    if (reply.janus === "error") {
      throw new Error(`janus ${body.janus}: ${JSON.stringify(reply.error)}`);
    }
    return reply;
  }

  async #longPoll(): Promise<void> {
    while (!this.#closed) {
      try {
        const response = await fetch(`${this.#sessionUrl}?maxev=10`, {
          signal: this.#abort.signal,
        });
        const body = await response.json();
        for (const event of Array.isArray(body) ? body : [body]) {
          // Plugin events answer our requests and webrtcup says a
          // publisher's feed exists; media and keepalive need no action.
          if (event.janus === "event" || event.janus === "webrtcup") {
            this.#events.push(event);
          }
        }
        for (const wake of this.#waiters.splice(0)) wake();
      } catch (error) {
        if (this.#closed) return;
        this.#events.push({ janus: "poll-error", error: String(error) });
        for (const wake of this.#waiters.splice(0)) wake();
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }

  /** Sends a plugin request; its answer arrives as an event. */
  async message(body: JanusMessage, jsep?: JanusMessage): Promise<void> {
    await this.#post(this.#handleUrl, { janus: "message", body, jsep });
  }

  /** Our candidates are all in the SDP: tell Janus there are no more. */
  async candidatesDone(): Promise<void> {
    await this.#post(this.#handleUrl, {
      janus: "trickle",
      candidate: { completed: true },
    });
  }

  /** Waits for a VideoRoom event with the given "videoroom" value. */
  event(kind: string): Promise<JanusMessage> {
    return this.#next(kind, (e) =>
      e.janus === "event" &&
      (e.plugindata?.data?.videoroom === kind || e.plugindata?.data?.error));
  }

  /** Waits until the PeerConnection is up on Janus's side. */
  async webrtcUp(): Promise<void> {
    await this.#next("webrtcup", (e) => e.janus === "webrtcup");
  }

  async #next(
    kind: string,
    matches: (event: JanusMessage) => boolean,
  ): Promise<JanusMessage> {
    const deadline = performance.now() + REQUEST_TIMEOUT_MS;
    while (true) {
      const index = this.#events.findIndex(matches);
      if (index >= 0) {
        const [event] = this.#events.splice(index, 1);
        const data = event.plugindata?.data ?? {};
        if (data.error) {
          throw new Error(
            `janus videoroom: ${data.error} (${data.error_code})`,
          );
        }
        return event;
      }
      const remaining = deadline - performance.now();
      if (remaining <= 0) {
        throw new Error(
          `no janus "${kind}" event within ${REQUEST_TIMEOUT_MS} ms; got ${
            JSON.stringify(this.#events).slice(0, 500)
          }`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#sessionUrl) {
      await this.#post(this.#sessionUrl, { janus: "destroy" }).catch(() => {});
    }
    this.#abort.abort();
    await this.#poll;
  }
}

const network = (address: string) => ({
  iceAddresses: [address],
  iceServers: [],
});

/** A werift peer publishing into, or subscribing from, the Janus room. */
export class JanusBenchPeer {
  readonly stats: ReceiveStats;
  readonly joinStartedAtMs = wallClockMs();
  source: MediaSource | undefined;
  /** The publisher's feed id in the room. */
  feedId = 0;
  #handle: JanusHandle;
  #pc: RTCPeerConnection | undefined;

  private constructor(apiUrl: string, latency: LatencyHistogram) {
    this.#handle = new JanusHandle(apiUrl);
    this.stats = new ReceiveStats(latency);
  }

  get receiveLeg(): ReceiveLeg {
    return receiveLeg(this.#pc);
  }

  get legs(): PeerLegs {
    return this.source
      ? { send: capturedLeg(this.#pc, this.source.streams) }
      : { receive: capturedLeg(this.#pc, receivedStreams(this.stats)) };
  }

  /** Joins the room with `join`, then `negotiate`s; closes on failure. */
  static async #join(
    apiUrl: string,
    latency: LatencyHistogram,
    join: Record<string, unknown>,
    negotiate: (peer: JanusBenchPeer, handle: JanusHandle) => Promise<void>,
  ): Promise<JanusBenchPeer> {
    const peer = new JanusBenchPeer(apiUrl, latency);
    try {
      await peer.#handle.open();
      await peer.#handle.message({
        request: "join",
        room: JANUS_ROOM,
        ...join,
      });
      await negotiate(peer, peer.#handle);
    } catch (error) {
      await peer.close();
      throw error;
    }
    return peer;
  }

  static publish(
    apiUrl: string,
    mediaAddress: string,
    tag: number,
    profile: MediaProfile,
    latency: LatencyHistogram,
  ): Promise<JanusBenchPeer> {
    return JanusBenchPeer.#join(
      apiUrl,
      latency,
      { ptype: "publisher", display: `bench ${tag}` },
      async (peer, handle) => {
        peer.feedId = (await handle.event("joined")).plugindata.data.id;
        const pc = new RTCPeerConnection(
          peerConnectionConfig(network(mediaAddress), "send"),
        );
        peer.#pc = pc;
        const source = new MediaSource(pc, tag, profile);
        await pc.setLocalDescription(await pc.createOffer());
        await handle.message(
          { request: "publish", audio: true, video: true },
          { type: "offer", sdp: pc.localDescription!.sdp },
        );
        await handle.candidatesDone();
        const answer = (await handle.event("event")).jsep;
        if (!answer?.sdp) {
          throw new Error("janus accepted the publish without SDP");
        }
        await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
        peer.source = source;
        source.start();
        // Subscribers can only attach to a feed whose PeerConnection is up.
        await handle.webrtcUp();
      },
    );
  }

  static subscribe(
    apiUrl: string,
    mediaAddress: string,
    feedId: number,
    latency: LatencyHistogram,
  ): Promise<JanusBenchPeer> {
    return JanusBenchPeer.#join(
      apiUrl,
      latency,
      { ptype: "subscriber", streams: [{ feed: feedId }] },
      async (peer, handle) => {
        const offer = (await handle.event("attached")).jsep;
        if (!offer?.sdp) {
          throw new Error("janus attached a subscriber without SDP");
        }
        const pc = new RTCPeerConnection(
          peerConnectionConfig(network(mediaAddress), "receive"),
        );
        peer.#pc = pc;
        recordIncoming(pc, peer.stats);
        await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
        await pc.setLocalDescription(await pc.createAnswer());
        await handle.message({ request: "start" }, {
          type: "answer",
          sdp: pc.localDescription!.sdp,
        });
        await handle.candidatesDone();
      },
    );
  }

  async close(): Promise<void> {
    this.source?.stop();
    await this.#pc?.close();
    await this.#handle.close();
  }
}
