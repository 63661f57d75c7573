// Server settings from command-line flags, environment variables and an
// optional JSON file (precedence in that order, then defaults). Any invalid
// value stops start-up with a ConfigError whose message is one line naming
// the setting exactly as the user wrote it (`--flag`, ENV_VAR or
// `config file key "name"`).

import { parseArgs } from "node:util";
import { isAbsolute, join, resolve } from "node:path";
import {
  errorMessage,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type LogLevel,
} from "./log.ts";
import { DEFAULT_MAX_PENDING_SENDS } from "../media/overload.ts";
import { DEFAULT_PUBLISH_BITRATE_BPS } from "../media/webrtc_peer.ts";
import { canonicalIp, isIpLiteral } from "./net.ts";
import { VERSION } from "./version.ts";

export interface Config {
  /** Serve plain HTTP because a TLS-terminating reverse proxy sits in front. */
  cloud: boolean;
  /** "" or "/seg[/seg...]" without a trailing slash; see prefixed(). */
  httpPrefix: string;
  /** The listen address as written, e.g. ":8081". */
  listen: string;
  /** "0.0.0.0" when the address was written as ":PORT"; IPv6 without brackets. */
  listenHost: string;
  /** 0 asks the OS for a free port. */
  listenPort: number;
  /** Public address of a 1:1 NAT, advertised in ICE candidates. */
  publicIp?: string;
  /** Host name used in URLs printed for users; may be an IP literal (IPv6 unbracketed). */
  publicHost?: string;
  /** UDP port range for ICE; both set or both unset (any port). */
  minPort?: number;
  maxPort?: number;
  /** Canonical IP literals to gather ICE candidates on; empty means every non-loopback interface. */
  iceAddresses: string[];
  /** stun:, turn: or turns: URLs. */
  iceServers: string[];
  /** Set whenever iceServers contains a TURN server. */
  turnUsername?: string;
  turnCredential?: string;
  /** Absolute path; not created by loadConfig. */
  dataDir: string;
  name: string;
  /** PEM files supplied by the user; both set or both unset (self-signed). Checked readable. */
  cert?: string;
  key?: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  mdns: boolean;
  /** How long a camera keeps streaming with nobody watching; 0: always on. */
  cameraIdleSeconds: number;
  /** UDP datagrams waiting to be sent before more are dropped; new
   * participants are refused from a quarter of it. */
  maxPendingSends: number;
  /** What each publisher is told it may send, all its streams together
   * (a REMB), in bit/s. */
  maxPublishBitrateBps: number;
  /** Needed for every page, API call and WebSocket when set
   * (server/auth.ts); unset, the node is open to anyone who reaches it. */
  password?: string;
  /** Also needed for the servers list and metrics when set. */
  operatorPassword?: string;
  trunks: string[];
  cameras: string[];
  /** The config file that was read, if any. */
  configFile?: string;
}

/** An invalid setting; the message is the single line to show the user. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * Thrown by loadConfig for --help and --version: not a failure, so main
 * should print `output` to stdout and exit 0.
 */
export class ConfigExit {
  constructor(readonly output: string) {}
}

type Source = "flag" | "env" | "file";

interface SettingSources {
  flag?: string;
  /** For boolean flags: the value their presence selects. */
  flagSets?: boolean;
  env?: string;
}

const SETTINGS = {
  cloud: { flag: "cloud", flagSets: true, env: "UMBRELLA_CLOUD" },
  httpPrefix: { flag: "http-prefix", env: "UMBRELLA_HTTP_PREFIX" },
  listen: { flag: "listen", env: "UMBRELLA_HTTP_SERVE_ADDR" },
  publicIp: { flag: "public-ip", env: "UMBRELLA_PUBLIC_IP" },
  publicHost: { flag: "public-host", env: "UMBRELLA_PUBLIC_HOST" },
  minPort: { flag: "min-port", env: "UMBRELLA_MIN_PORT" },
  maxPort: { flag: "max-port", env: "UMBRELLA_MAX_PORT" },
  iceAddresses: { flag: "ice-addresses", env: "UMBRELLA_ICE_ADDRESSES" },
  iceServers: { flag: "ice-servers", env: "UMBRELLA_ICE_SERVERS" },
  turnUsername: { flag: "turn-username", env: "UMBRELLA_TURN_USERNAME" },
  turnCredential: { flag: "turn-credential", env: "UMBRELLA_TURN_CREDENTIAL" },
  dataDir: { flag: "data-dir", env: "UMBRELLA_DATA_DIR" },
  name: { flag: "name", env: "UMBRELLA_NAME" },
  cert: { flag: "cert", env: "UMBRELLA_CERT" },
  key: { flag: "key", env: "UMBRELLA_KEY" },
  logLevel: { flag: "log-level", env: "UMBRELLA_LOG_LEVEL" },
  logFormat: { flag: "log-format", env: "UMBRELLA_LOG_FORMAT" },
  mdns: { flag: "no-mdns", flagSets: false, env: "UMBRELLA_MDNS" },
  cameraIdleSeconds: {
    flag: "camera-idle-seconds",
    env: "UMBRELLA_CAMERA_IDLE_SECONDS",
  },
  maxPendingSends: {
    flag: "max-pending-sends",
    env: "UMBRELLA_MAX_PENDING_SENDS",
  },
  maxPublishBitrate: {
    flag: "max-publish-bitrate",
    env: "UMBRELLA_MAX_PUBLISH_BITRATE",
  },
  password: { flag: "password", env: "UMBRELLA_PASSWORD" },
  passwordFile: { flag: "password-file", env: "UMBRELLA_PASSWORD_FILE" },
  operatorPassword: {
    flag: "operator-password",
    env: "UMBRELLA_OPERATOR_PASSWORD",
  },
  operatorPasswordFile: {
    flag: "operator-password-file",
    env: "UMBRELLA_OPERATOR_PASSWORD_FILE",
  },
  trunks: {},
  cameras: {},
} satisfies Record<string, SettingSources>;

type SettingName = keyof typeof SETTINGS;
const SETTING_NAMES = Object.keys(SETTINGS) as SettingName[];

export const HELP_TEXT = `Usage: umbrella [options]

Umbrella is a multi-site WebRTC SFU. Every option can also be set with the
environment variable shown, or in a JSON config file using the key shown.
Precedence: flags, then environment, then config file, then defaults.

  -h, --help                 show this help and exit
      --version              show the version and exit
      --config FILE          JSON config file            UMBRELLA_CONFIG
      --cloud                serve plain HTTP behind a TLS-terminating proxy
                             UMBRELLA_CLOUD=1|0          cloud
      --http-prefix PATH     serve under a path, e.g. /umbrella (default: none)
                             UMBRELLA_HTTP_PREFIX        httpPrefix
      --listen ADDR          host:port, :port (all interfaces) or [ipv6]:port;
                             port 0 picks a free port (default :8081)
                             UMBRELLA_HTTP_SERVE_ADDR    listen
      --public-ip IP         public address of a 1:1 NAT, offered to peers
                             UMBRELLA_PUBLIC_IP          publicIp
      --public-host NAME     host name to use in printed URLs
                             UMBRELLA_PUBLIC_HOST        publicHost
      --min-port N           lowest UDP port for media (set with --max-port)
                             UMBRELLA_MIN_PORT           minPort
      --max-port N           highest UDP port for media (default: any port)
                             UMBRELLA_MAX_PORT           maxPort
      --ice-addresses LIST   comma-separated local IPs to offer for media
                             (default: every non-loopback interface)
                             UMBRELLA_ICE_ADDRESSES      iceAddresses
      --ice-servers LIST     comma-separated stun:, turn: or turns: URLs
                             UMBRELLA_ICE_SERVERS        iceServers
      --turn-username NAME   username for the TURN servers
                             UMBRELLA_TURN_USERNAME      turnUsername
      --turn-credential PW   credential for the TURN servers
                             UMBRELLA_TURN_CREDENTIAL    turnCredential
      --data-dir DIR         where the certificate and node id are kept
                             (default: $XDG_DATA_HOME/umbrella or
                             ~/.local/share/umbrella; %LOCALAPPDATA%\\umbrella)
                             UMBRELLA_DATA_DIR           dataDir
      --name NAME            name shown to users (default: the host name)
                             UMBRELLA_NAME               name
      --cert FILE            PEM certificate (set with --key; default:
                             a self-signed certificate in the data directory)
                             UMBRELLA_CERT               cert
      --key FILE             PEM private key for --cert
                             UMBRELLA_KEY                key
      --log-level LEVEL      debug, info, warn or error (default info)
                             UMBRELLA_LOG_LEVEL          logLevel
      --log-format FORMAT    text or json (default text)
                             UMBRELLA_LOG_FORMAT         logFormat
      --no-mdns              do not announce this server on the local network
                             UMBRELLA_MDNS=1|0           mdns
      --camera-idle-seconds N  keep a camera streaming this long after its
                             last viewer leaves; 0 keeps it always on
                             (default 30)
                             UMBRELLA_CAMERA_IDLE_SECONDS cameraIdleSeconds
      --max-pending-sends N  overload limit: media datagrams that may wait
                             to be sent before more are dropped; from a
                             quarter of it video is shed for some viewers
                             and new participants are refused (default
                             ${DEFAULT_MAX_PENDING_SENDS}, at most about 70 MB)
                             UMBRELLA_MAX_PENDING_SENDS  maxPendingSends
      --max-publish-bitrate KBPS  what each participant may send, audio and
                             every video layer together, in kbit/s (default
                             ${
  DEFAULT_PUBLISH_BITRATE_BPS / 1000
}: the Call page's three layers with room to
                             spare); lower it where uplinks or the backhaul
                             are short
                             UMBRELLA_MAX_PUBLISH_BITRATE maxPublishBitrate
      --password PW          require this password for every page, the API,
                             metrics and WebSocket (default: none, open to
                             anyone who can reach the node)
                             UMBRELLA_PASSWORD           password
      --password-file FILE   read the password from a file (e.g. a Docker
                             secret); its last line break is ignored
                             UMBRELLA_PASSWORD_FILE      passwordFile
      --operator-password PW  a second password, needed to manage servers
                             and read metrics; the first then only lets
                             people take part (default: none)
                             UMBRELLA_OPERATOR_PASSWORD  operatorPassword
      --operator-password-file FILE  the same, from a file
                             UMBRELLA_OPERATOR_PASSWORD_FILE operatorPasswordFile

The config file may also list "trunks" and "cameras" as arrays of URLs.`;

const quote = (value: unknown) => JSON.stringify(value);

const DEFAULT_CAMERA_IDLE_SECONDS = 30;

function labelFor(name: SettingName, source: Source): string {
  const sources: SettingSources = SETTINGS[name];
  if (source === "flag" && sources.flag) return `--${sources.flag}`;
  if (source === "env" && sources.env) return sources.env;
  return `config file key ${quote(name)}`;
}

async function readUserFile(
  path: string,
  label: string,
  what: string,
): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    const problem = err instanceof Deno.errors.NotFound
      ? "does not exist"
      : err instanceof Deno.errors.PermissionDenied
      ? "cannot be read (permission denied)"
      : err instanceof Deno.errors.IsADirectory
      ? "is a directory, not a file"
      : `cannot be read (${errorMessage(err)})`;
    throw new ConfigError(`${label}: ${what} ${quote(path)} ${problem}`);
  }
}

// ---- value parsers: (raw value, label) -> typed value or ConfigError ----
// Flags and environment variables give strings; the config file gives JSON values.

function parseString(value: unknown, label: string): string {
  if (typeof value === "string") return value;
  throw new ConfigError(`${label}: expected a string, got ${quote(value)}`);
}

function parseNonEmpty(value: unknown, label: string): string {
  const text = parseString(value, label);
  if (text === "") throw new ConfigError(`${label}: must not be empty`);
  return text;
}

const TRUE_WORDS = ["1", "true", "yes"];
const FALSE_WORDS = ["0", "false", "no"];

function parseBool(value: unknown, label: string): boolean {
  if (typeof value === "boolean") return value;
  const word = typeof value === "string" ? value.trim().toLowerCase() : "";
  if (TRUE_WORDS.includes(word)) return true;
  if (FALSE_WORDS.includes(word)) return false;
  throw new ConfigError(
    `${label}: ${
      quote(value)
    } is not a yes/no value (expected 1, true, yes, 0, false or no)`,
  );
}

/** A parser for whole numbers from min to max; `what` completes "is not". */
function parseInteger(min: number, max: number, what: string) {
  return (value: unknown, label: string): number => {
    const number = typeof value === "number"
      ? value
      : typeof value === "string" && /^\d+$/.test(value.trim())
      ? Number(value)
      : NaN;
    if (Number.isInteger(number) && number >= min && number <= max) {
      return number;
    }
    throw new ConfigError(
      `${label}: ${
        quote(value)
      } is not ${what} (expected an integer from ${min} to ${max})`,
    );
  };
}

const parsePort = parseInteger(1, 65535, "a port number");
const parseSeconds = parseInteger(0, 86_400, "a number of seconds");
const parseKilobits = parseInteger(100, 100_000, "a number of kbit/s");
const parsePendingSends = parseInteger(
  1,
  1_000_000,
  "a number of datagrams",
);

// Lists are comma-separated on the command line and in the environment, but
// JSON arrays in the config file.
function parseList(value: unknown, label: string, source: Source): string[] {
  if (typeof value === "string" && source !== "file") {
    return value.split(",").map((item) => item.trim()).filter((item) =>
      item !== ""
    );
  }
  if (Array.isArray(value) && value.every((item) => typeof item === "string")) {
    return value;
  }
  throw new ConfigError(
    `${label}: expected an array of strings, got ${quote(value)}`,
  );
}

function parseChoice<T extends string>(choices: readonly T[], what: string) {
  return (value: unknown, label: string): T => {
    const text = parseString(value, label).trim().toLowerCase();
    const choice = choices.find((c) => c === text);
    if (choice) return choice;
    const expected = `${choices.slice(0, -1).join(", ")} or ${choices.at(-1)}`;
    throw new ConfigError(
      `${label}: ${quote(value)} is not a ${what} (expected ${expected})`,
    );
  };
}

function parseIp(value: unknown, label: string): string {
  const text = parseString(value, label).trim();
  if (isIpLiteral(text)) return canonicalIp(text);
  throw new ConfigError(
    `${label}: ${
      quote(value)
    } is not an IP address (expected an IPv4 or IPv6 literal)`,
  );
}

function parseIpList(value: unknown, label: string, source: Source): string[] {
  return parseList(value, label, source).map((item) => parseIp(item, label));
}

const HOST_NAME =
  /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/i;

function parsePublicHost(value: unknown, label: string): string {
  const text = parseString(value, label).trim();
  if (HOST_NAME.test(text) || isIpLiteral(text)) return text;
  throw new ConfigError(
    `${label}: ${
      quote(value)
    } is not a host name (expected a name such as umbrella.example.com or an IP address, without scheme or port)`,
  );
}

// Characters a URL path may contain literally (RFC 3986 pchar plus "/");
// anything else would be percent-encoded by browsers and never match.
const PATH_CHAR = /[A-Za-z0-9\-._~!$&'()*+,;=:@%/]/;

function parseHttpPrefix(value: unknown, label: string): string {
  const text = parseString(value, label);
  const bad = [...text].find((char) => !PATH_CHAR.test(char));
  if (bad !== undefined) {
    throw new ConfigError(
      `${label}: ${quote(text)} contains ${
        quote(bad)
      }, which is not allowed in a URL path prefix`,
    );
  }
  const prefix = ("/" + text.replace(/^\//, "")).replace(/\/+$/, "");
  const segments = prefix.split("/").slice(1);
  if (segments.includes("")) {
    throw new ConfigError(
      `${label}: ${quote(text)} contains an empty path segment ("//")`,
    );
  }
  if (segments.some((segment) => segment === "." || segment === "..")) {
    throw new ConfigError(
      `${label}: ${quote(text)} must not contain "." or ".." path segments`,
    );
  }
  return prefix;
}

type ListenAddress = Pick<Config, "listen" | "listenHost" | "listenPort">;

const DEFAULT_LISTEN: ListenAddress = {
  listen: ":8081",
  listenHost: "0.0.0.0",
  listenPort: 8081,
};

function parseListen(value: unknown, label: string): ListenAddress {
  const text = parseString(value, label).trim();
  const match = /^\[([^\]]*)\]:(\d+)$/.exec(text) ??
    /^([^:[\]]*):(\d+)$/.exec(text);
  if (!match) {
    throw new ConfigError(
      `${label}: ${
        quote(value)
      } is not a listen address (expected host:port, :port or [ipv6]:port)`,
    );
  }
  const [, host, portText] = match;
  const bracketed = text.startsWith("[");
  const hostOk = bracketed
    ? isIpLiteral(host) && host.includes(":")
    : host === "" || HOST_NAME.test(host);
  if (!hostOk) {
    throw new ConfigError(
      `${label}: ${quote(value)} has an invalid host ${
        quote(host)
      } (expected an IP address or host name)`,
    );
  }
  const port = Number(portText);
  if (port > 65535) {
    throw new ConfigError(
      `${label}: ${
        quote(value)
      } has an invalid port (expected an integer from 0 to 65535)`,
    );
  }
  return {
    listen: text,
    listenHost: host === "" ? "0.0.0.0" : host,
    listenPort: port,
  };
}

function parseName(value: unknown, label: string): string {
  const text = parseString(value, label);
  const length = [...text].length;
  if (length < 1 || length > 64) {
    throw new ConfigError(
      `${label}: ${
        quote(text)
      } must be 1 to 64 characters long (it has ${length})`,
    );
  }
  if (/\p{Cc}/u.test(text)) {
    throw new ConfigError(
      `${label}: ${quote(text)} contains a control character`,
    );
  }
  return text;
}

const STUN_TURN_URL =
  /^(?:stun|turns?):[^\s/?#]+(?:\?transport=(?:udp|tcp))?$/i;

function parseIceServers(
  value: unknown,
  label: string,
  source: Source,
): string[] {
  const urls = parseList(value, label, source);
  const bad = urls.find((url) => !STUN_TURN_URL.test(url));
  if (bad !== undefined) {
    throw new ConfigError(
      `${label}: ${
        quote(bad)
      } is not a STUN or TURN server URL (expected stun:, turn: or turns: followed by host[:port])`,
    );
  }
  return urls;
}

// ---- sources ----

const FLAG_OPTIONS: Record<
  string,
  { type: "string" | "boolean"; short?: string }
> = {
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
  config: { type: "string" },
};
for (
  const sources of Object.values(SETTINGS as Record<string, SettingSources>)
) {
  if (sources.flag) {
    FLAG_OPTIONS[sources.flag] = {
      type: sources.flagSets === undefined ? "string" : "boolean",
    };
  }
}

function parseFlags(
  args: string[],
): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({
      args,
      options: FLAG_OPTIONS,
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    const code = (err as { code?: string }).code;
    const message = errorMessage(err);
    const named = /'(-[^' ]*)/.exec(message)?.[1] ?? "";
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      throw new ConfigError(
        `unknown option ${quote(named)} (run with --help to list the options)`,
      );
    }
    if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
      const argument = /'([^']*)'/.exec(message)?.[1] ?? "";
      throw new ConfigError(
        `unexpected argument ${
          quote(argument)
        } (options start with "--"; run with --help to list them)`,
      );
    }
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      throw new ConfigError(
        message.includes("does not take an argument")
          ? `${named} does not take a value`
          : `${named} needs a value (for a value starting with "-", write ${named}=VALUE)`,
      );
    }
    throw new ConfigError(message);
  }
}

async function readConfigFile(
  path: string,
  label: string,
): Promise<Record<string, unknown>> {
  const text = await readUserFile(path, label, "config file");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(
      `config file ${quote(path)} is not valid JSON: ${errorMessage(err)}`,
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(
      `config file ${quote(path)} must contain a JSON object of settings`,
    );
  }
  const unknown = Object.keys(parsed).find((key) =>
    !(SETTING_NAMES as string[]).includes(key)
  );
  if (unknown !== undefined) {
    throw new ConfigError(
      `config file key ${quote(unknown)} is not a known setting (known keys: ${
        SETTING_NAMES.join(", ")
      })`,
    );
  }
  return parsed as Record<string, unknown>;
}

function defaultDataDir(env: Record<string, string | undefined>): string {
  if (Deno.build.os === "windows") {
    if (env.LOCALAPPDATA) return join(env.LOCALAPPDATA, "umbrella");
    throw new ConfigError(
      "no default data directory because LOCALAPPDATA is not set; set --data-dir or UMBRELLA_DATA_DIR",
    );
  }
  // The XDG spec says relative values are invalid and must be ignored.
  if (env.XDG_DATA_HOME && isAbsolute(env.XDG_DATA_HOME)) {
    return join(env.XDG_DATA_HOME, "umbrella");
  }
  if (env.HOME) return join(env.HOME, ".local", "share", "umbrella");
  throw new ConfigError(
    "no default data directory because HOME is not set; set --data-dir or UMBRELLA_DATA_DIR",
  );
}

function defaultName(): string {
  try {
    return [...Deno.hostname()].slice(0, 64).join("") || "umbrella";
  } catch {
    // Without --allow-sys the host name is unavailable; any stable name will do.
    return "umbrella";
  }
}

interface Picked {
  value: unknown;
  source: Source;
  label: string;
}

/**
 * Reads the settings. Throws ConfigError for any invalid value, and
 * ConfigExit for --help / --version. Reads the config, cert and key files
 * but creates nothing.
 */
export async function loadConfig(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<Config> {
  const flags = parseFlags(args);
  if (flags.help) throw new ConfigExit(HELP_TEXT);
  if (flags.version) throw new ConfigExit(`umbrella ${VERSION}`);

  // An empty environment variable counts as unset, as compose files and
  // shell scripts often define every variable whether used or not.
  const envValue = (name: string) => env[name] === "" ? undefined : env[name];

  const configFlag = flags.config as string | undefined;
  const configFile = configFlag ?? envValue("UMBRELLA_CONFIG");
  const file = configFile === undefined ? {} : await readConfigFile(
    configFile,
    configFlag !== undefined ? "--config" : "UMBRELLA_CONFIG",
  );

  const pick = (name: SettingName): Picked | undefined => {
    const sources: SettingSources = SETTINGS[name];
    const flag = sources.flag && flags[sources.flag];
    if (flag !== undefined && flag !== false) {
      return {
        value: sources.flagSets ?? flag,
        source: "flag",
        label: labelFor(name, "flag"),
      };
    }
    const fromEnv = sources.env && envValue(sources.env);
    if (fromEnv !== undefined) {
      return { value: fromEnv, source: "env", label: labelFor(name, "env") };
    }
    // null in the file means "not set", which helps templated files.
    if (file[name] !== undefined && file[name] !== null) {
      return {
        value: file[name],
        source: "file",
        label: labelFor(name, "file"),
      };
    }
    return undefined;
  };
  const get = <T>(
    name: SettingName,
    parse: (value: unknown, label: string, source: Source) => T,
  ): T | undefined => {
    const picked = pick(name);
    return picked && parse(picked.value, picked.label, picked.source);
  };
  const requireBoth = (first: SettingName, second: SettingName) => {
    const [a, b] = [pick(first), pick(second)];
    const lone = a && !b
      ? [a, second] as const
      : b && !a
      ? [b, first] as const
      : undefined;
    if (lone) {
      const [set, missing] = lone;
      throw new ConfigError(
        `${set.label} is set but ${
          labelFor(missing, set.source)
        } is not (set both or neither)`,
      );
    }
  };

  requireBoth("minPort", "maxPort");
  const minPort = get("minPort", parsePort);
  const maxPort = get("maxPort", parsePort);
  if (minPort !== undefined && maxPort !== undefined && minPort >= maxPort) {
    throw new ConfigError(
      `${pick("minPort")!.label}: ${minPort} must be less than ${
        pick("maxPort")!.label
      } (${maxPort})`,
    );
  }

  requireBoth("turnUsername", "turnCredential");
  const turnUsername = get("turnUsername", parseNonEmpty);
  const turnCredential = get("turnCredential", parseNonEmpty);
  const iceServers = get("iceServers", parseIceServers) ?? [];
  const turnServer = iceServers.find((url) => /^turns?:/i.test(url));
  if (turnServer !== undefined && turnUsername === undefined) {
    const { label, source } = pick("iceServers")!;
    throw new ConfigError(
      `${label}: ${quote(turnServer)} is a TURN server, which needs ${
        labelFor("turnUsername", source)
      } and ${labelFor("turnCredential", source)}`,
    );
  }

  requireBoth("cert", "key");
  const cert = get("cert", parseNonEmpty);
  const key = get("key", parseNonEmpty);
  if (cert !== undefined && key !== undefined) {
    await readUserFile(cert, pick("cert")!.label, "certificate file");
    await readUserFile(key, pick("key")!.label, "key file");
  }

  /** A secret given as text or as a file (not both). */
  const secret = async (
    name: "password" | "operatorPassword",
    fileName: "passwordFile" | "operatorPasswordFile",
  ): Promise<string | undefined> => {
    const [text, file] = [pick(name), pick(fileName)];
    if (text && file) {
      throw new ConfigError(
        `${text.label} and ${file.label} are both set (set one)`,
      );
    }
    const path = get(fileName, parseNonEmpty);
    if (path === undefined) return get(name, parseNonEmpty);
    const content = await readUserFile(path, file!.label, "password file");
    return parseNonEmpty(
      content.replace(/\r?\n$/, ""),
      `${file!.label} (${quote(path)})`,
    );
  };
  const password = await secret("password", "passwordFile");
  const operatorPassword = await secret(
    "operatorPassword",
    "operatorPasswordFile",
  );
  if (password !== undefined && password === operatorPassword) {
    const given = pick("operatorPassword") ?? pick("operatorPasswordFile")!;
    throw new ConfigError(
      `${given.label}: the operator password must differ from the password`,
    );
  }

  return {
    cloud: get("cloud", parseBool) ?? false,
    httpPrefix: get("httpPrefix", parseHttpPrefix) ?? "",
    ...get("listen", parseListen) ?? DEFAULT_LISTEN,
    publicIp: get("publicIp", parseIp),
    publicHost: get("publicHost", parsePublicHost),
    minPort,
    maxPort,
    iceAddresses: get("iceAddresses", parseIpList) ?? [],
    iceServers,
    turnUsername,
    turnCredential,
    dataDir: resolve(get("dataDir", parseNonEmpty) ?? defaultDataDir(env)),
    name: get("name", parseName) ?? defaultName(),
    cert,
    key,
    logLevel: get("logLevel", parseChoice(LOG_LEVELS, "log level")) ?? "info",
    logFormat: get("logFormat", parseChoice(LOG_FORMATS, "log format")) ??
      "text",
    mdns: get("mdns", parseBool) ?? true,
    cameraIdleSeconds: get("cameraIdleSeconds", parseSeconds) ??
      DEFAULT_CAMERA_IDLE_SECONDS,
    maxPendingSends: get("maxPendingSends", parsePendingSends) ??
      DEFAULT_MAX_PENDING_SENDS,
    maxPublishBitrateBps: (get("maxPublishBitrate", parseKilobits) ??
      DEFAULT_PUBLISH_BITRATE_BPS / 1000) * 1000,
    password,
    operatorPassword,
    trunks: get("trunks", parseList) ?? [],
    cameras: get("cameras", parseList) ?? [],
    configFile,
  };
}

/** Joins the HTTP prefix with an absolute path: prefixed(config, "/sfu") -> "/umbrella/sfu". */
export function prefixed(
  config: Pick<Config, "httpPrefix">,
  path: string,
): string {
  if (!path.startsWith("/")) {
    throw new Error(`prefixed: path ${quote(path)} must start with "/"`);
  }
  return config.httpPrefix + path;
}

/** Creates the data directory (and parents) with a clear error if that is impossible. */
export async function ensureDataDir(dataDir: string): Promise<void> {
  try {
    await Deno.mkdir(dataDir, { recursive: true });
  } catch (err) {
    throw new ConfigError(
      `data directory ${quote(dataDir)} cannot be created (${
        errorMessage(err)
      })`,
    );
  }
}
