// Assembles a running Umbrella node: the router, the signalling endpoint,
// the JSON API, the embedded UI, health and metrics, all under the HTTP
// prefix, on plain HTTP (cloud mode, behind a TLS proxy) or HTTPS.
import { CameraSource } from "../media/camera.ts";
import { limitsFor, OverloadMonitor } from "../media/overload.ts";
import { Router } from "../media/router.ts";
import { applyWeriftPatches } from "../media/werift_patches.ts";
import { TrunkRouting } from "../media/trunk_routing.ts";
import type { MediaNetworkOptions } from "../media/rtc_config.ts";
import { uiAsset } from "../ui/assets.ts";
import { Access } from "./access.ts";
import { Auth, loadSessionSecret } from "./auth.ts";
import { json, readJsonBody } from "./http.ts";
import { ensureCertificate, loadCertificateFiles } from "./cert.ts";
import type { Config } from "./config.ts";
import { loadNodeIdentity } from "./identity.ts";
import { log } from "./log.ts";
import { MdnsResponder, resolveMdns } from "./mdns.ts";
import { renderMetrics } from "./metrics.ts";
import { localAddresses, mdnsHostName } from "./net.ts";
import {
  InvalidRemoteError,
  redactUrl,
  type RemoteEntry,
  type RemoteInput,
  type RemoteStatus,
  RemoteStore,
} from "./servers.ts";
import {
  channelFromWebSocket,
  CloseCode,
  type NodeContext,
  SignallingSession,
} from "./session.ts";
import { TrunkDialer } from "./trunks.ts";
import { VERSION } from "./version.ts";

export interface RunningNode {
  readonly port: number;
  readonly origin: string;
  readonly nodeId: string;
  readonly context: NodeContext;
  shutdown(): Promise<void>;
}

const MDNS_TIMEOUT_MS = 3000;
/** A servers-list entry is a URL and a few options. */
const MAX_SERVER_ENTRY_BYTES = 16 * 1024;

export async function startNode(config: Config): Promise<RunningNode> {
  await Deno.mkdir(config.dataDir, { recursive: true });
  const { nodeId } = await loadNodeIdentity(config.dataDir);
  const hostname = Deno.hostname();
  const tls = config.cloud
    ? undefined
    : config.cert && config.key
    ? await loadCertificateFiles(config.cert, config.key)
    : await ensureCertificate({
      dataDir: config.dataDir,
      hostnames: [hostname, `${mdnsHostName()}.local`, "localhost"],
      ipAddresses: ["127.0.0.1", "::1", ...localAddresses()],
    });
  if (tls?.generated) {
    log.info(
      "made a self-signed certificate; browsers will ask to accept it once",
      { dataDir: config.dataDir, fingerprint: tls.fingerprintSha256 },
    );
  }

  const { srtp, udpFallbackReason } = applyWeriftPatches();
  if (udpFallbackReason) {
    log.warn(
      `UDP sends go through node:dgram, slower per packet and queued: ${udpFallbackReason}`,
    );
  }
  if (srtp.fallbackReason) {
    log.warn(
      `SRTP runs on node:crypto, several times slower per packet: ${srtp.fallbackReason}`,
    );
  } else {
    log.debug("SRTP implementation", { srtp: srtp.description });
  }

  const access = new Access(
    config.password === undefined && config.operatorPassword === undefined
      ? undefined
      : new Auth(
        {
          password: config.password,
          operatorPassword: config.operatorPassword,
        },
        await loadSessionSecret(config.dataDir),
        nodeId,
      ),
    { cookiePath: config.httpPrefix || "/", behindProxy: config.cloud },
  );
  const remotes = new RemoteStore(config.dataDir);
  await remotes.load([...(config.trunks ?? []), ...(config.cameras ?? [])]);

  const network: MediaNetworkOptions = {
    iceAddresses: config.iceAddresses,
    publicIp: config.publicIp,
    portRange: config.minPort && config.maxPort
      ? [config.minPort, config.maxPort]
      : undefined,
    iceServers: config.iceServers.map((urls) =>
      urls.startsWith("turn")
        ? {
          urls,
          username: config.turnUsername,
          credential: config.turnCredential,
        }
        : { urls }
    ),
  };
  const overload = new OverloadMonitor(
    limitsFor(config.maxPendingSends),
    (overloaded, stats) => {
      if (overloaded) {
        log.warn("overloaded: lowering or pausing video for some viewers", {
          lagMs: Math.round(stats.lagSeconds * 1000),
          peakPendingSends: stats.pendingSends,
        });
      } else {
        log.info("no longer overloaded: all video flows again");
      }
    },
  );
  const router = new Router();
  const context: NodeContext = {
    router,
    trunks: new TrunkRouting(router, nodeId),
    nodeId,
    site: config.name,
    version: VERSION,
    network,
    admission: overload,
    publishBitrateBps: config.maxPublishBitrateBps,
  };
  const sessions = new Set<SignallingSession>();
  // Load is watched while any session (participant or trunk) is open: an
  // idle node does not wake itself.
  const track = (session: SignallingSession) => {
    sessions.add(session);
    overload.start();
    const previous = session.onClosed;
    session.onClosed = (reason) => {
      sessions.delete(session);
      if (sessions.size === 0) overload.stop();
      previous?.(reason);
    };
  };
  const resolveLocalName = (host: string) =>
    /\.local\.?$/i.test(host)
      ? resolveMdns(host, { timeoutMs: MDNS_TIMEOUT_MS }).then((address) =>
        address ??
          Promise.reject(
            new Error(
              "no answer to mDNS: is the remote running, with mDNS on, on this network?",
            ),
          )
      )
      : Promise.resolve(undefined);
  // What each entry of the servers list runs: a trunk dialer or a camera.
  const sources = new Map<
    string,
    { start(): void; stop(): unknown; status(): RemoteStatus }
  >();
  const dialers = new Map<string, TrunkDialer>();
  const cameras = new Map<string, CameraSource>();
  const startSource = (entry: RemoteEntry) => {
    if (entry.kind === "trunk") {
      const dialer = new TrunkDialer(entry, context, {
        onSession: track,
        resolveHost: resolveLocalName,
      });
      dialers.set(entry.id, dialer);
      sources.set(entry.id, dialer);
    } else {
      const camera = new CameraSource(
        {
          id: entry.id,
          url: entry.url,
          name: entry.name,
          transport: entry.transport,
        },
        router,
        {
          site: config.name,
          nodeId,
          idleSeconds: entry.idleSeconds ?? config.cameraIdleSeconds,
          log: log.child({ camera: entry.id }),
        },
      );
      cameras.set(entry.id, camera);
      sources.set(entry.id, camera);
    }
    sources.get(entry.id)!.start();
  };
  const stopSource = async (id: string) => {
    const source = sources.get(id);
    sources.delete(id);
    dialers.delete(id);
    cameras.delete(id);
    await source?.stop();
  };
  for (const entry of remotes.list()) startSource(entry);
  const startedAt = Date.now();
  const prefix = config.httpPrefix;

  const status = () => ({
    node: {
      id: nodeId,
      name: config.name,
      site: config.name,
      version: VERSION,
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      cloud: config.cloud,
      certificateFingerprint: tls?.fingerprintSha256 ?? null,
      passwordRequired: config.password !== undefined,
      operatorPasswordRequired: config.password !== undefined ||
        config.operatorPassword !== undefined,
    },
    peers: [...sessions].filter((s) => s.peer).map((s) => {
      const states = s.peer!.connectionStates;
      return {
        id: s.id,
        name: s.name,
        kind: s.kind,
        site: s.kind === "node" ? s.remoteSite : config.name,
        // A peer without media legs yet is still connected for signalling.
        state: states.receive ?? states.send ?? "connected",
        connectedSeconds: Math.round((Date.now() - s.connectedAtMs) / 1000),
        // A simulcast video counts once, however many layers it sends.
        tracksPublished: new Set(
          s.peer!.inboundTracks.map((t) =>
            t.description.simulcast?.group ?? t.id
          ),
        ).size,
        tracksSubscribed: [...s.peer!.subscriptions].length,
      };
    }),
    tracks: [...router.tracks.values()].map((track) => {
      const d = track.description;
      return {
        id: d.id,
        kind: d.kind,
        mimeType: d.mimeType,
        participantId: d.participantId,
        participantName: d.participantName,
        site: d.site,
        source: d.source,
        label: d.label,
        muted: d.muted,
        simulcastLayer: d.simulcast?.layer,
        bitrateBps: track.bitrateBps(performance.now()),
        packetsReceived: track.packetsReceived,
        packetsLost: track.packetsLost,
        lossFraction: track.packetsReceived > 0
          ? track.packetsLost / (track.packetsReceived + track.packetsLost)
          : 0,
        subscribers: track.consumers.length,
      };
    }),
    trunks: [...sessions].filter((s) => s.kind === "node" && s.peer).map(
      (s) => ({
        id: s.id,
        remoteSite: s.remoteSite,
        remoteNodeId: s.remoteNodeId,
        direction: [...dialers.values()].some((d) => d.session === s)
          ? "outgoing"
          : "incoming",
        connectedSeconds: Math.round((Date.now() - s.connectedAtMs) / 1000),
        tracksIn: s.peer!.inboundTracks.length,
        tracksOut: [...s.peer!.subscriptions].length,
        bytesIn: s.peer!.mediaBytesReceived,
        bytesOut: s.peer!.mediaBytesSent,
      }),
    ),
    cameras: [...cameras.entries()].map(([id, camera]) => ({
      id,
      name: camera.name,
      ...camera.status(),
    })),
  });

  const remoteView = (entry: (ReturnType<RemoteStore["list"]>)[number]) => ({
    id: entry.id,
    url: redactUrl(entry.url),
    kind: entry.kind,
    ...(sources.get(entry.id)?.status() ?? {
      state: "idle",
      lastError: null,
      retryInSeconds: null,
      detail: {},
    }),
  });

  const api = async (request: Request, path: string): Promise<Response> => {
    if (path === "/api/status" && request.method === "GET") {
      return json(status());
    }
    if (path === "/api/servers") {
      if (request.method === "GET") {
        return json({ servers: remotes.list().map(remoteView) });
      }
      if (request.method === "POST") {
        const body = await readJsonBody(
          request,
          MAX_SERVER_ENTRY_BYTES,
          '{"url": "wss://host:8081/wsb"}',
        );
        if (!body.ok) return body.response;
        try {
          const entry = await remotes.add(
            (body.value ?? {}) as RemoteInput,
          );
          startSource(entry);
          log.info("remote source added", {
            kind: entry.kind,
            url: redactUrl(entry.url),
          });
          return json({ server: remoteView(entry) }, 201);
        } catch (error) {
          if (error instanceof InvalidRemoteError) {
            return json({ error: error.message }, 400);
          }
          throw error;
        }
      }
      return json({ error: "use GET or POST" }, 405);
    }
    const match = path.match(/^\/api\/servers\/([A-Za-z0-9-]+)$/);
    if (match && request.method === "DELETE") {
      await stopSource(match[1]);
      return (await remotes.remove(match[1]))
        ? new Response(null, { status: 204 })
        : json({ error: "no such server" }, 404);
    }
    return json({ error: "not found" }, 404);
  };

  const upgrade = (request: Request, info: Deno.ServeHandlerInfo): Response => {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response(
        "this endpoint speaks WebSocket (see docs/protocol.md)\n",
        { status: 426 },
      );
    }
    // The connection's address is gone once it is upgraded.
    const remote = info.remoteAddr as Deno.NetAddr;
    const { socket, response } = Deno.upgradeWebSocket(request);
    track(
      new SignallingSession(channelFromWebSocket(socket), context, {
        remote: `${remote.hostname}:${remote.port}`,
      }),
    );
    return response;
  };

  const handler = async (
    request: Request,
    info: Deno.ServeHandlerInfo,
  ): Promise<Response> => {
    const url = new URL(request.url);
    if (
      prefix && url.pathname !== prefix &&
      !url.pathname.startsWith(`${prefix}/`)
    ) {
      return new Response(`Umbrella is served under ${prefix}/\n`, {
        status: 404,
      });
    }
    const path = url.pathname.slice(prefix.length) || "/";
    try {
      if (path === "/") {
        return Response.redirect(new URL(`${prefix}/sfu`, url), 302);
      }
      if (path === "/healthz") return json({ ok: true, version: VERSION });
      if (Access.isSignInPath(path)) {
        return await access.signIn(request, info, path);
      }
      const refused = access.refusal(request, info, path);
      if (refused) return refused;
      if (path === "/wsb") return upgrade(request, info);
      if (path === "/metrics") {
        return new Response(
          renderMetrics(
            router,
            sessions,
            overload.stats(),
            access.stats(),
          ),
          {
            headers: {
              "content-type": "text/plain; version=0.0.4; charset=utf-8",
            },
          },
        );
      }
      if (path.startsWith("/api/")) return await api(request, path);
      const asset = request.method === "GET" ? uiAsset(path) : undefined;
      if (asset) {
        return new Response(asset.body as BodyInit, {
          headers: {
            "content-type": asset.contentType,
            "cache-control": asset.cacheControl,
            "x-content-type-options": "nosniff",
            ...asset.headers,
          },
        });
      }
      return new Response("not found\n", { status: 404 });
    } catch (error) {
      log.error("request failed", { path, error });
      return json({ error: "internal error" }, 500);
    }
  };

  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({
    hostname: config.listenHost,
    port: config.listenPort,
    ...(tls ? { cert: tls.certPem, key: tls.keyPem } : {}),
    onListen: (addr) => listening.resolve(addr as Deno.NetAddr),
    onError: (error) => {
      log.error("request failed", { error });
      return new Response("internal error\n", { status: 500 });
    },
  }, handler);
  const addr = await listening.promise;
  const scheme = tls ? "https" : "http";
  // Phones on the LAN find a local node by name; a cloud node has real DNS.
  const mdnsName = mdnsHostName();
  const mdns = !config.cloud && config.mdns
    ? await MdnsResponder.start({
      hostname: mdnsName,
      addresses: () =>
        config.iceAddresses.length > 0 ? config.iceAddresses : localAddresses(),
    }).then((responder) => {
      log.info(`answering mDNS queries for ${mdnsName}.local`);
      return responder;
    }, (error) => {
      log.warn(
        `not answering mDNS for ${mdnsName}.local; phones need this node's IP address`,
        { error },
      );
      return undefined;
    })
    : undefined;

  return {
    port: addr.port,
    origin: `${scheme}://${
      addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname
    }:${addr.port}`,
    nodeId,
    context,
    async shutdown() {
      overload.stop();
      mdns?.close();
      await Promise.all([...sources.keys()].map(stopSource));
      for (const session of sessions) {
        session.close(CloseCode.shuttingDown, "server shutting down");
      }
      await server.shutdown();
    },
  };
}
