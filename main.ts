// Umbrella: a multi-site WebRTC SFU. `deno task start` runs this.
import { startNode } from "./server/app.ts";
import { ConfigError, ConfigExit, loadConfig } from "./server/config.ts";
import { log, setLogFormat, setLogLevel } from "./server/log.ts";
import { localAddresses, mdnsHostName } from "./server/net.ts";
import { VERSION } from "./server/version.ts";

async function main(): Promise<number> {
  let config;
  try {
    config = await loadConfig(Deno.args, Deno.env.toObject());
  } catch (error) {
    if (error instanceof ConfigExit) {
      console.log(error.output);
      return 0;
    }
    if (error instanceof ConfigError) {
      console.error(`umbrella: ${error.message}`);
      return 2;
    }
    throw error;
  }
  setLogLevel(config.logLevel);
  setLogFormat(config.logFormat);
  // A rejection or exception nobody handled is a bug, but one session's bug
  // must not end every other call on the node: say so loudly and go on.
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    log.error("unhandled rejection; this is a bug, the server goes on", {
      error: event.reason,
    });
  });
  globalThis.addEventListener("error", (event) => {
    event.preventDefault();
    log.error("uncaught exception; this is a bug, the server goes on", {
      error: event.error,
    });
  });

  const node = await startNode(config);
  const scheme = config.cloud ? "http" : "https";
  const prefix = config.httpPrefix;
  const port = node.port;
  log.info("listening", {
    url: `${node.origin}${prefix}/`,
    version: VERSION,
    site: config.name,
    nodeId: node.nodeId,
    mode: config.cloud
      ? "cloud (plain HTTP behind a TLS proxy)"
      : "local (HTTPS)",
  });
  const wildcard = config.listenHost === "0.0.0.0" ||
    config.listenHost === "::";
  const hosts = config.publicHost
    ? [config.publicHost]
    : wildcard
    ? [`${mdnsHostName()}.local`, ...localAddresses()]
    : [config.listenHost];
  for (const host of hosts) {
    const shown = host.includes(":") ? `[${host}]` : host;
    log.info(`open ${scheme}://${shown}:${port}${prefix}/sfu`);
  }
  if (config.operatorPassword !== undefined) {
    log.info(
      config.password === undefined
        ? "anyone who reaches this node can take part; managing servers and reading metrics need the operator password"
        : "the password lets people take part; managing servers and reading metrics need the operator password",
    );
  }
  if (config.password !== undefined) {
    log.info(
      "a password is needed: browsers sign in on the page; scripts, Prometheus and trunks from other nodes send it with HTTP Basic auth (wss://umbrella:PASSWORD@host/wsb for a trunk)",
    );
  } else if (!hosts.every((host) => /^(127\.|::1$|localhost$)/.test(host))) {
    log.warn(
      config.operatorPassword === undefined
        ? "no password is set (UMBRELLA_PASSWORD): anyone who can reach this node can join calls, watch its cameras and change its servers"
        : "no password is set (UMBRELLA_PASSWORD): anyone who can reach this node can join calls and watch its cameras",
    );
  }

  const stop = Promise.withResolvers<string>();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => stop.resolve(signal));
  }
  const signal = await stop.promise;
  log.info("shutting down", { signal });
  await node.shutdown();
  return 0;
}

Deno.exit(await main());
