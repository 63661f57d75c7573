// A load-generator process: hosts many werift peers (publishers and
// subscribers of Umbrella or Janus) so the SFU's CPU is measured apart from
// theirs. Driven by bench/run.ts over stdin/stdout (bench/worker_protocol.ts).
import { JanusBenchPeer } from "./janus.ts";
import { LatencyHistogram } from "./receive_stats.ts";
import { UmbrellaBenchPeer } from "./umbrella_peer.ts";
import {
  type GeneratorInfo,
  type JoinResult,
  LINE_PREFIX,
  type PeerLegs,
  type PeerProgress,
  type PeerReport,
  type PeerSpec,
  type Reply,
  type Request,
  type WindowReport,
} from "./worker_protocol.ts";
import type { MediaProfile } from "./media_source.ts";
import { applyWeriftPatches } from "../media/werift_patches.ts";

// The generators' werift gets Umbrella's patch layer too: stock werift
// spends several times more CPU per packet on SRTP, NACKs every missing
// packet every 5 ms (no browser does; it would flood whichever SFU is under
// test) and can derive wrong SRTP keys when a DTLS flight is repeated. So
// subscribers here do not NACK, and both SFUs see the same well-behaved load.
const patches = applyWeriftPatches();

/** Joins at once per process: werift's ICE and DTLS set-up is CPU-heavy. */
const JOIN_CONCURRENCY = 6;

type BenchPeer = UmbrellaBenchPeer | JanusBenchPeer;

const latency = new LatencyHistogram();
const peers = new Map<string, BenchPeer>();
const encoder = new TextEncoder();

function reply(message: Reply): void {
  Deno.stdout.writeSync(
    encoder.encode(`${LINE_PREFIX}${JSON.stringify(message)}\n`),
  );
}

function joinOne(spec: PeerSpec, profile: MediaProfile): Promise<BenchPeer> {
  switch (spec.target) {
    case "umbrella":
      return UmbrellaBenchPeer.join(spec.wsUrl, spec.key, {
        publishTag: spec.publishTag,
        receive: spec.receive,
        profile,
      }, latency);
    case "janus-publisher":
      return JanusBenchPeer.publish(
        spec.apiUrl,
        spec.mediaAddress,
        spec.tag,
        profile,
        latency,
      );
    case "janus-subscriber":
      return JanusBenchPeer.subscribe(
        spec.apiUrl,
        spec.mediaAddress,
        spec.feedId,
        latency,
      );
  }
}

async function join(
  specs: PeerSpec[],
  profile: MediaProfile,
  concurrency = JOIN_CONCURRENCY,
): Promise<JoinResult[]> {
  const results: JoinResult[] = [];
  let next = 0;
  const lane = async () => {
    while (next < specs.length) {
      const spec = specs[next++];
      try {
        const peer = await joinOne(spec, profile);
        peers.set(spec.key, peer);
        results.push({
          key: spec.key,
          feedId: peer instanceof JanusBenchPeer ? peer.feedId : undefined,
        });
      } catch (error) {
        results.push({ key: spec.key, error: String(error) });
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return results;
}

function sent(): Record<number, number> {
  const all: Record<number, number> = {};
  for (const peer of peers.values()) Object.assign(all, peer.source?.sent());
  return all;
}

function report(): WindowReport {
  const reports: PeerReport[] = [];
  for (const [key, peer] of peers) {
    const first = peer.stats.firstMediaAtMs;
    reports.push({
      key,
      streams: [...peer.stats.streams.values()].map((s) => s.window()),
      joinToFirstMediaMs: first === undefined
        ? undefined
        : first - peer.joinStartedAtMs,
      notices: peer instanceof UmbrellaBenchPeer
        ? peer.notices.map((n) => `${n.code}: ${n.text}`)
        : [],
    });
  }
  return { peers: reports, latency: latency.toSparse(), sent: sent() };
}

async function handle(request: Request): Promise<unknown> {
  switch (request.op) {
    case "info":
      return {
        srtp: patches.srtp.description,
        srtpFallback: patches.srtp.fallbackReason ?? null,
        udpFallback: patches.udpFallbackReason ?? null,
      } satisfies GeneratorInfo;
    case "join":
      return await join(request.peers, request.profile, request.concurrency);
    case "progress":
      return [...peers].map(([key, peer]): PeerProgress => ({
        key,
        tags: [...peer.stats.streams.keys()],
        receiveLeg: peer.receiveLeg,
      }));
    case "legs":
      return Object.fromEntries(
        [...peers].map(([key, peer]) => [key, peer.legs]),
      ) satisfies Record<string, PeerLegs>;
    case "mark":
      for (const peer of peers.values()) peer.stats.mark();
      latency.reset();
      return { sent: sent() };
    case "report":
      return report();
    case "close":
      await Promise.allSettled([...peers.values()].map((p) => p.close()));
      peers.clear();
      return {};
  }
}

let pending = "";
for await (
  const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())
) {
  pending += chunk;
  let newline;
  while ((newline = pending.indexOf("\n")) >= 0) {
    const line = pending.slice(0, newline);
    pending = pending.slice(newline + 1);
    const { id, ...request } = JSON.parse(line) as Request & { id: number };
    // Requests run concurrently (a report must not wait behind a join).
    handle(request).then(
      (result) => reply({ id, result }),
      (error) => reply({ id, error: String(error) }),
    );
  }
}
// stdin closed: run.ts is done with us (or gone); leave nothing behind.
await Promise.allSettled([...peers.values()].map((p) => p.close()));
Deno.exit(0);
