import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Config,
  ConfigError,
  ConfigExit,
  HELP_TEXT,
  loadConfig,
  prefixed,
} from "../server/config.ts";
import { VERSION } from "../server/version.ts";

type Env = Record<string, string | undefined>;

const BASE_ENV: Env = { HOME: "/home/tester" };

function load(args: string[] = [], env: Env = {}): Promise<Config> {
  return loadConfig(args, { ...BASE_ENV, ...env });
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "umbrella-config-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function writeConfigFile(
  dir: string,
  settings: unknown,
): Promise<string> {
  const path = join(dir, "umbrella.json");
  await Deno.writeTextFile(
    path,
    typeof settings === "string" ? settings : JSON.stringify(settings),
  );
  return path;
}

async function configErrorOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
    return err.message;
  }
  assert.fail("expected loadConfig to fail");
}

Deno.test("defaults apply when nothing is set", async () => {
  const config = await load();
  assert.equal(config.cloud, false);
  assert.equal(config.httpPrefix, "");
  assert.equal(config.listen, ":8081");
  assert.equal(config.listenHost, "0.0.0.0");
  assert.equal(config.listenPort, 8081);
  assert.equal(config.publicIp, undefined);
  assert.equal(config.publicHost, undefined);
  assert.equal(config.minPort, undefined);
  assert.equal(config.maxPort, undefined);
  assert.deepEqual(config.iceAddresses, []);
  assert.deepEqual(config.iceServers, []);
  assert.equal(config.turnUsername, undefined);
  assert.equal(config.dataDir, "/home/tester/.local/share/umbrella");
  assert.equal(config.name, Deno.hostname().slice(0, 64));
  assert.equal(config.cert, undefined);
  assert.equal(config.key, undefined);
  assert.equal(config.logLevel, "info");
  assert.equal(config.logFormat, "text");
  assert.equal(config.mdns, true);
  assert.deepEqual(config.trunks, []);
  assert.deepEqual(config.cameras, []);
  assert.equal(config.password, undefined);
  assert.equal(config.configFile, undefined);
});

Deno.test("data directory default follows XDG_DATA_HOME, ignoring a relative one", async () => {
  assert.equal(
    (await load([], { XDG_DATA_HOME: "/xdg" })).dataDir,
    "/xdg/umbrella",
  );
  assert.equal(
    (await load([], { XDG_DATA_HOME: "relative" })).dataDir,
    "/home/tester/.local/share/umbrella",
  );
});

Deno.test("flags beat environment, which beats the config file, which beats defaults", async () => {
  await withTempDir(async (dir) => {
    const file = await writeConfigFile(dir, {
      listen: "127.0.0.1:1001",
      logLevel: "warn",
      name: "from-file",
      minPort: 40000,
      maxPort: 40100,
      httpPrefix: "/file",
      cloud: false,
      mdns: true,
      publicIp: "198.51.100.1",
    });
    const env: Env = {
      UMBRELLA_CONFIG: file,
      UMBRELLA_HTTP_SERVE_ADDR: "127.0.0.1:1002",
      UMBRELLA_LOG_LEVEL: "error",
      UMBRELLA_NAME: "from-env",
      UMBRELLA_MIN_PORT: "41000",
      UMBRELLA_MAX_PORT: "41100",
      UMBRELLA_CLOUD: "yes",
      UMBRELLA_MDNS: "no",
    };
    const flags = [
      "--listen",
      "127.0.0.1:1003",
      "--log-level=debug",
      "--name",
      "from-flag",
      "--min-port",
      "42000",
      "--max-port",
      "42100",
      "--http-prefix",
      "/flag",
    ];

    const all = await load(flags, env);
    assert.deepEqual(
      [
        all.listenPort,
        all.logLevel,
        all.name,
        all.minPort,
        all.maxPort,
        all.httpPrefix,
      ],
      [1003, "debug", "from-flag", 42000, 42100, "/flag"],
    );
    assert.equal(all.configFile, file);

    const envAndFile = await load([], env);
    assert.deepEqual(
      [
        envAndFile.listenPort,
        envAndFile.logLevel,
        envAndFile.name,
        envAndFile.minPort,
        envAndFile.maxPort,
        envAndFile.httpPrefix,
        envAndFile.cloud,
        envAndFile.mdns,
      ],
      [1002, "error", "from-env", 41000, 41100, "/file", true, false],
    );

    const fileOnly = await load(["--config", file]);
    assert.deepEqual(
      [
        fileOnly.listenPort,
        fileOnly.logLevel,
        fileOnly.name,
        fileOnly.minPort,
        fileOnly.maxPort,
        fileOnly.httpPrefix,
        fileOnly.cloud,
        fileOnly.mdns,
        fileOnly.publicIp,
      ],
      [
        1001,
        "warn",
        "from-file",
        40000,
        40100,
        "/file",
        false,
        true,
        "198.51.100.1",
      ],
    );

    // Boolean flags only ever switch away from the default.
    const booleanFlags = await load(["--cloud", "--no-mdns"], {
      UMBRELLA_CLOUD: "0",
      UMBRELLA_MDNS: "1",
    });
    assert.equal(booleanFlags.cloud, true);
    assert.equal(booleanFlags.mdns, false);
  });
});

Deno.test("--config flag beats UMBRELLA_CONFIG", async () => {
  await withTempDir(async (dir) => {
    const flagFile = join(dir, "flag.json");
    const envFile = join(dir, "env.json");
    await Deno.writeTextFile(flagFile, JSON.stringify({ name: "flag-file" }));
    await Deno.writeTextFile(envFile, JSON.stringify({ name: "env-file" }));
    const config = await load(["--config", flagFile], {
      UMBRELLA_CONFIG: envFile,
    });
    assert.equal(config.name, "flag-file");
  });
});

Deno.test("empty environment variables count as unset", async () => {
  const config = await load([], {
    UMBRELLA_HTTP_SERVE_ADDR: "",
    UMBRELLA_MIN_PORT: "",
    UMBRELLA_NAME: "",
  });
  assert.equal(config.listen, ":8081");
  assert.equal(config.minPort, undefined);
});

Deno.test("null in the config file counts as unset", async () => {
  await withTempDir(async (dir) => {
    const file = await writeConfigFile(dir, { publicIp: null, listen: null });
    const config = await load(["--config", file]);
    assert.equal(config.publicIp, undefined);
    assert.equal(config.listen, ":8081");
  });
});

Deno.test("boolean words are accepted in any case", async () => {
  for (const word of ["1", "true", "YES", " yes "]) {
    assert.equal((await load([], { UMBRELLA_CLOUD: word })).cloud, true, word);
  }
  for (const word of ["0", "False", "no"]) {
    assert.equal((await load([], { UMBRELLA_MDNS: word })).mdns, false, word);
  }
});

Deno.test("camera idle time: 30 s by default, 0 for always on, flag over env", async () => {
  assert.equal((await load([], {})).cameraIdleSeconds, 30);
  assert.equal(
    (await load([], { UMBRELLA_CAMERA_IDLE_SECONDS: "0" })).cameraIdleSeconds,
    0,
  );
  assert.equal(
    (await load(["--camera-idle-seconds", "90"], {
      UMBRELLA_CAMERA_IDLE_SECONDS: "5",
    })).cameraIdleSeconds,
    90,
  );
});

Deno.test("publish bitrate: 3000 kbit/s by default, flag over env, in kbit/s", async () => {
  assert.equal((await load([], {})).maxPublishBitrateBps, 3_000_000);
  assert.equal(
    (await load([], { UMBRELLA_MAX_PUBLISH_BITRATE: "1200" }))
      .maxPublishBitrateBps,
    1_200_000,
  );
  assert.equal(
    (await load(["--max-publish-bitrate", "500"], {
      UMBRELLA_MAX_PUBLISH_BITRATE: "1200",
    })).maxPublishBitrateBps,
    500_000,
  );
  for (const bad of ["50", "100001", "1.5", "fast"]) {
    await assert.rejects(
      load(["--max-publish-bitrate", bad], {}),
      /max-publish-bitrate.*kbit\/s/,
      bad,
    );
  }
});

Deno.test("HTTP prefix is normalised", async () => {
  const cases: [string, string][] = [
    ["", ""],
    ["/", ""],
    ["umbrella", "/umbrella"],
    ["/umbrella/", "/umbrella"],
    ["/a/b//", "/a/b"],
    ["a/b", "/a/b"],
    ["/a..b/c.d", "/a..b/c.d"],
  ];
  for (const [input, expected] of cases) {
    assert.equal(
      (await load(["--http-prefix", input])).httpPrefix,
      expected,
      input,
    );
  }
});

Deno.test("listen addresses are parsed into host and port", async () => {
  const cases: [string, string, number][] = [
    [":8081", "0.0.0.0", 8081],
    [":0", "0.0.0.0", 0],
    ["127.0.0.1:0", "127.0.0.1", 0],
    ["localhost:9000", "localhost", 9000],
    ["[::1]:65535", "::1", 65535],
    ["[::]:443", "::", 443],
  ];
  for (const [input, host, port] of cases) {
    const config = await load(["--listen", input]);
    assert.deepEqual([config.listen, config.listenHost, config.listenPort], [
      input,
      host,
      port,
    ]);
  }
});

Deno.test("lists come from commas on the command line and arrays in the file", async () => {
  await withTempDir(async (dir) => {
    const file = await writeConfigFile(dir, {
      iceAddresses: ["10.0.0.2", "::1"],
      iceServers: ["stun:stun.example.com:3478"],
      trunks: ["wss://cloud.example.com/umbrella/wsb"],
      cameras: ["rtsp://user:pass@192.0.2.7/stream1"],
    });
    const fromFile = await load(["--config", file]);
    assert.deepEqual(fromFile.iceAddresses, ["10.0.0.2", "::1"]);
    assert.deepEqual(fromFile.iceServers, ["stun:stun.example.com:3478"]);
    assert.deepEqual(fromFile.trunks, ["wss://cloud.example.com/umbrella/wsb"]);
    assert.deepEqual(fromFile.cameras, ["rtsp://user:pass@192.0.2.7/stream1"]);

    const fromFlags = await load([
      "--ice-addresses",
      "127.0.0.1, 0:0:0:0:0:0:0:1,",
      "--ice-servers",
      "stun:a.example.com,turns:b.example.com:5349?transport=tcp",
      "--turn-username",
      "u",
      "--turn-credential",
      "p",
    ]);
    assert.deepEqual(fromFlags.iceAddresses, ["127.0.0.1", "::1"]);
    assert.deepEqual(fromFlags.iceServers, [
      "stun:a.example.com",
      "turns:b.example.com:5349?transport=tcp",
    ]);
    assert.deepEqual([fromFlags.turnUsername, fromFlags.turnCredential], [
      "u",
      "p",
    ]);
  });
});

Deno.test("cert and key are accepted when both files are readable", async () => {
  await withTempDir(async (dir) => {
    const cert = join(dir, "c.pem");
    const key = join(dir, "k.pem");
    await Deno.writeTextFile(cert, "cert");
    await Deno.writeTextFile(key, "key");
    const config = await load([], { UMBRELLA_CERT: cert, UMBRELLA_KEY: key });
    assert.deepEqual([config.cert, config.key], [cert, key]);
  });
});

Deno.test("other settings pass through", async () => {
  const config = await load([
    "--public-host",
    "umbrella.example.com",
    "--public-ip",
    "2001:db8:0::7",
    "--data-dir",
    "/srv/umbrella/",
    "--log-format",
    "json",
    "--name",
    "Front door 📷",
  ]);
  assert.equal(config.publicHost, "umbrella.example.com");
  assert.equal(config.publicIp, "2001:db8::7");
  assert.equal(config.dataDir, "/srv/umbrella");
  assert.equal(config.logFormat, "json");
  assert.equal(config.name, "Front door 📷");
});

Deno.test("--help and --version end start-up without validating anything else", async () => {
  for (const args of [["--help"], ["-h"], ["--name", "", "--help"]]) {
    await assert.rejects(
      load(args, { UMBRELLA_MIN_PORT: "abc" }),
      (err) => err instanceof ConfigExit && err.output === HELP_TEXT,
    );
  }
  await assert.rejects(
    load(["--version"]),
    (err) => err instanceof ConfigExit && err.output === `umbrella ${VERSION}`,
  );
  for (
    const flag of [
      "--cloud",
      "--http-prefix",
      "--listen",
      "UMBRELLA_TURN_CREDENTIAL",
      "--no-mdns",
      "dataDir",
    ]
  ) {
    assert.ok(HELP_TEXT.includes(flag), flag);
  }
});

Deno.test("prefixed joins the HTTP prefix with a path", () => {
  assert.equal(prefixed({ httpPrefix: "/umbrella" }, "/sfu"), "/umbrella/sfu");
  assert.equal(prefixed({ httpPrefix: "" }, "/sfu"), "/sfu");
  assert.equal(prefixed({ httpPrefix: "/u" }, "/"), "/u/");
  assert.throws(() => prefixed({ httpPrefix: "" }, "sfu"));
});

interface InvalidCase {
  args?: string[];
  env?: Env;
  /** Written to a config file passed with --config; "$DIR" in the message is the temp directory. */
  file?: unknown;
  message: string;
}

const PORT_RANGE = "(expected an integer from 1 to 65535)";
const BOOL_WORDS = "(expected 1, true, yes, 0, false or no)";
const PREFIX_CHAR = "which is not allowed in a URL path prefix";
const LISTEN_FORMS = "(expected host:port, :port or [ipv6]:port)";
const IP_FORMS = "(expected an IPv4 or IPv6 literal)";
const STUN_FORMS = "(expected stun:, turn: or turns: followed by host[:port])";
const KNOWN_KEYS =
  "cloud, httpPrefix, listen, publicIp, publicHost, minPort, maxPort, " +
  "iceAddresses, iceServers, turnUsername, turnCredential, dataDir, name, cert, key, " +
  "logLevel, logFormat, mdns, cameraIdleSeconds, maxPendingSends, maxPublishBitrate, password, passwordFile, operatorPassword, operatorPasswordFile, trunks, cameras";

const INVALID: InvalidCase[] = [
  // command line syntax
  {
    args: ["--bogus"],
    message: 'unknown option "--bogus" (run with --help to list the options)',
  },
  {
    args: ["-x"],
    message: 'unknown option "-x" (run with --help to list the options)',
  },
  {
    args: ["extra"],
    message:
      'unexpected argument "extra" (options start with "--"; run with --help to list them)',
  },
  {
    args: ["--listen"],
    message:
      '--listen needs a value (for a value starting with "-", write --listen=VALUE)',
  },
  {
    args: ["--name", "--cloud"],
    message:
      '--name needs a value (for a value starting with "-", write --name=VALUE)',
  },
  { args: ["--cloud=yes"], message: "--cloud does not take a value" },
  { args: ["--no-mdns=1"], message: "--no-mdns does not take a value" },
  // cloud, mdns
  {
    env: { UMBRELLA_CLOUD: "maybe" },
    message: `UMBRELLA_CLOUD: "maybe" is not a yes/no value ${BOOL_WORDS}`,
  },
  {
    file: { cloud: 1 },
    message: `config file key "cloud": 1 is not a yes/no value ${BOOL_WORDS}`,
  },
  {
    env: { UMBRELLA_MDNS: "on" },
    message: `UMBRELLA_MDNS: "on" is not a yes/no value ${BOOL_WORDS}`,
  },
  {
    env: { UMBRELLA_CAMERA_IDLE_SECONDS: "-5" },
    message:
      `UMBRELLA_CAMERA_IDLE_SECONDS: "-5" is not a number of seconds (expected an integer from 0 to 86400)`,
  },
  {
    file: { cameraIdleSeconds: 1.5 },
    message:
      `config file key "cameraIdleSeconds": 1.5 is not a number of seconds (expected an integer from 0 to 86400)`,
  },
  {
    file: { mdns: "sometimes" },
    message:
      `config file key "mdns": "sometimes" is not a yes/no value ${BOOL_WORDS}`,
  },
  // httpPrefix
  {
    args: ["--http-prefix", "/a b"],
    message: `--http-prefix: "/a b" contains " ", ${PREFIX_CHAR}`,
  },
  {
    env: { UMBRELLA_HTTP_PREFIX: "/a?b" },
    message: `UMBRELLA_HTTP_PREFIX: "/a?b" contains "?", ${PREFIX_CHAR}`,
  },
  {
    file: { httpPrefix: "/a#b" },
    message:
      `config file key "httpPrefix": "/a#b" contains "#", ${PREFIX_CHAR}`,
  },
  {
    args: ["--http-prefix", "/caf\u00e9"],
    message: `--http-prefix: "/caf\u00e9" contains "\u00e9", ${PREFIX_CHAR}`,
  },
  {
    args: ["--http-prefix", "/a\\b"],
    message: `--http-prefix: "/a\\\\b" contains "\\\\", ${PREFIX_CHAR}`,
  },
  {
    args: ["--http-prefix", "/a/../b"],
    message:
      '--http-prefix: "/a/../b" must not contain "." or ".." path segments',
  },
  {
    args: ["--http-prefix", ".."],
    message: '--http-prefix: ".." must not contain "." or ".." path segments',
  },
  {
    args: ["--http-prefix", "/a//b"],
    message: '--http-prefix: "/a//b" contains an empty path segment ("//")',
  },
  {
    file: { httpPrefix: 5 },
    message: 'config file key "httpPrefix": expected a string, got 5',
  },
  // listen
  {
    args: ["--listen", "8081"],
    message: `--listen: "8081" is not a listen address ${LISTEN_FORMS}`,
  },
  {
    args: ["--listen", "::1:8081"],
    message: `--listen: "::1:8081" is not a listen address ${LISTEN_FORMS}`,
  },
  {
    args: ["--listen", "host:port"],
    message: `--listen: "host:port" is not a listen address ${LISTEN_FORMS}`,
  },
  {
    env: { UMBRELLA_HTTP_SERVE_ADDR: ":65536" },
    message:
      'UMBRELLA_HTTP_SERVE_ADDR: ":65536" has an invalid port (expected an integer from 0 to 65535)',
  },
  {
    args: ["--listen", "[localhost]:80"],
    message:
      '--listen: "[localhost]:80" has an invalid host "localhost" (expected an IP address or host name)',
  },
  {
    file: { listen: "bad_host!:80" },
    message:
      'config file key "listen": "bad_host!:80" has an invalid host "bad_host!" (expected an IP address or host name)',
  },
  // publicIp, publicHost
  {
    args: ["--public-ip", "1.2.3"],
    message: `--public-ip: "1.2.3" is not an IP address ${IP_FORMS}`,
  },
  {
    env: { UMBRELLA_PUBLIC_IP: "example.com" },
    message:
      `UMBRELLA_PUBLIC_IP: "example.com" is not an IP address ${IP_FORMS}`,
  },
  {
    file: { publicIp: "fe80::1%eth0" },
    message:
      `config file key "publicIp": "fe80::1%eth0" is not an IP address ${IP_FORMS}`,
  },
  {
    args: ["--public-host", "https://example.com"],
    message:
      '--public-host: "https://example.com" is not a host name (expected a name such as umbrella.example.com or an IP address, without scheme or port)',
  },
  {
    env: { UMBRELLA_PUBLIC_HOST: "example.com:443" },
    message:
      'UMBRELLA_PUBLIC_HOST: "example.com:443" is not a host name (expected a name such as umbrella.example.com or an IP address, without scheme or port)',
  },
  // minPort, maxPort
  {
    env: { UMBRELLA_MIN_PORT: "abc", UMBRELLA_MAX_PORT: "50000" },
    message: `UMBRELLA_MIN_PORT: "abc" is not a port number ${PORT_RANGE}`,
  },
  {
    args: ["--min-port", "0", "--max-port", "10"],
    message: `--min-port: "0" is not a port number ${PORT_RANGE}`,
  },
  {
    args: ["--min-port", "10", "--max-port", "65536"],
    message: `--max-port: "65536" is not a port number ${PORT_RANGE}`,
  },
  {
    args: ["--min-port=-5", "--max-port", "10"],
    message: `--min-port: "-5" is not a port number ${PORT_RANGE}`,
  },
  {
    file: { minPort: 1.5, maxPort: 10 },
    message:
      `config file key "minPort": 1.5 is not a port number ${PORT_RANGE}`,
  },
  {
    args: ["--min-port", "40000"],
    message: "--min-port is set but --max-port is not (set both or neither)",
  },
  {
    env: { UMBRELLA_MAX_PORT: "40000" },
    message:
      "UMBRELLA_MAX_PORT is set but UMBRELLA_MIN_PORT is not (set both or neither)",
  },
  {
    file: { minPort: 40000 },
    message:
      'config file key "minPort" is set but config file key "maxPort" is not (set both or neither)',
  },
  {
    args: ["--min-port", "50000"],
    env: { UMBRELLA_MAX_PORT: "40000" },
    message: "--min-port: 50000 must be less than UMBRELLA_MAX_PORT (40000)",
  },
  {
    args: ["--min-port", "5", "--max-port", "5"],
    message: "--min-port: 5 must be less than --max-port (5)",
  },
  // iceAddresses, iceServers, TURN credentials
  {
    env: { UMBRELLA_ICE_ADDRESSES: "10.0.0.1,foo" },
    message: `UMBRELLA_ICE_ADDRESSES: "foo" is not an IP address ${IP_FORMS}`,
  },
  {
    file: { iceAddresses: "10.0.0.1" },
    message:
      'config file key "iceAddresses": expected an array of strings, got "10.0.0.1"',
  },
  {
    args: ["--ice-servers", "stun:ok.example.com,http://x"],
    message:
      `--ice-servers: "http://x" is not a STUN or TURN server URL ${STUN_FORMS}`,
  },
  {
    file: { iceServers: ["stun://double-slash.example.com"] },
    message:
      `config file key "iceServers": "stun://double-slash.example.com" is not a STUN or TURN server URL ${STUN_FORMS}`,
  },
  {
    args: ["--ice-servers", "turn:t.example.com"],
    message:
      '--ice-servers: "turn:t.example.com" is a TURN server, which needs --turn-username and --turn-credential',
  },
  {
    env: { UMBRELLA_ICE_SERVERS: "stun:s.example.com,turns:t.example.com" },
    message:
      'UMBRELLA_ICE_SERVERS: "turns:t.example.com" is a TURN server, which needs UMBRELLA_TURN_USERNAME and UMBRELLA_TURN_CREDENTIAL',
  },
  {
    args: ["--turn-username", "u"],
    message:
      "--turn-username is set but --turn-credential is not (set both or neither)",
  },
  {
    env: { UMBRELLA_TURN_CREDENTIAL: "p" },
    message:
      "UMBRELLA_TURN_CREDENTIAL is set but UMBRELLA_TURN_USERNAME is not (set both or neither)",
  },
  {
    args: ["--turn-username", "", "--turn-credential", "p"],
    message: "--turn-username: must not be empty",
  },
  // dataDir, name
  { args: ["--data-dir", ""], message: "--data-dir: must not be empty" },
  {
    env: { HOME: undefined },
    message:
      "no default data directory because HOME is not set; set --data-dir or UMBRELLA_DATA_DIR",
  },
  {
    args: ["--name", ""],
    message: '--name: "" must be 1 to 64 characters long (it has 0)',
  },
  {
    env: { UMBRELLA_NAME: "n".repeat(65) },
    message: `UMBRELLA_NAME: "${
      "n".repeat(65)
    }" must be 1 to 64 characters long (it has 65)`,
  },
  {
    env: { UMBRELLA_NAME: "bell\u0007" },
    message: 'UMBRELLA_NAME: "bell\\u0007" contains a control character',
  },
  {
    file: { name: "two\nlines" },
    message:
      'config file key "name": "two\\nlines" contains a control character',
  },
  {
    file: { name: ["x"] },
    message: 'config file key "name": expected a string, got ["x"]',
  },
  // cert, key
  {
    args: ["--cert", "/nonexistent/cert.pem"],
    message: "--cert is set but --key is not (set both or neither)",
  },
  {
    env: { UMBRELLA_KEY: "/nonexistent/key.pem" },
    message:
      "UMBRELLA_KEY is set but UMBRELLA_CERT is not (set both or neither)",
  },
  {
    args: ["--cert", "$DIR/missing.pem", "--key", "$DIR/also-missing.pem"],
    message: '--cert: certificate file "$DIR/missing.pem" does not exist',
  },
  {
    args: ["--cert", "$DIR", "--key", "$DIR"],
    message: '--cert: certificate file "$DIR" is a directory, not a file',
  },
  // logLevel, logFormat
  {
    args: ["--log-level", "verbose"],
    message:
      '--log-level: "verbose" is not a log level (expected debug, info, warn or error)',
  },
  {
    env: { UMBRELLA_LOG_FORMAT: "xml" },
    message:
      'UMBRELLA_LOG_FORMAT: "xml" is not a log format (expected text or json)',
  },
  // the config file itself
  {
    args: ["--config", "$DIR/none.json"],
    message: '--config: config file "$DIR/none.json" does not exist',
  },
  {
    env: { UMBRELLA_CONFIG: "$DIR/none.json" },
    message: 'UMBRELLA_CONFIG: config file "$DIR/none.json" does not exist',
  },
  {
    file: ["listen"],
    message:
      'config file "$DIR/umbrella.json" must contain a JSON object of settings',
  },
  {
    file: { minport: 40000 },
    message:
      `config file key "minport" is not a known setting (known keys: ${KNOWN_KEYS})`,
  },
  {
    file: { trunks: "wss://x" },
    message:
      'config file key "trunks": expected an array of strings, got "wss://x"',
  },
  {
    file: { cameras: [1] },
    message: 'config file key "cameras": expected an array of strings, got [1]',
  },
];

Deno.test("every invalid setting is reported on one line naming where it came from", async () => {
  await withTempDir(async (dir) => {
    const expand = (text: string) => text.replaceAll("$DIR", dir);
    for (const testCase of INVALID) {
      const args = (testCase.args ?? []).map(expand);
      const env = Object.fromEntries(
        Object.entries(testCase.env ?? {}).map((
          [k, v],
        ) => [k, v === undefined ? v : expand(v)]),
      );
      if (testCase.file !== undefined) {
        args.push("--config", await writeConfigFile(dir, testCase.file));
      }
      const message = await configErrorOf(load(args, env));
      assert.equal(message, expand(testCase.message));
    }
  });
});

Deno.test("a config file that is not JSON names the file and the parse error", async () => {
  await withTempDir(async (dir) => {
    const file = await writeConfigFile(dir, '{\n  "name": "x",\n}\n');
    const message = await configErrorOf(load(["--config", file]));
    assert.ok(
      message.startsWith(`config file "${file}" is not valid JSON: `),
      message,
    );
    assert.ok(
      message.length > `config file "${file}" is not valid JSON: `.length,
      message,
    );
    assert.ok(!message.includes("\n"), message);
  });
});

Deno.test("the password comes from a flag, the environment, the config file or a file", async () => {
  assert.equal((await load(["--password", "s3cret"])).password, "s3cret");
  assert.equal(
    (await load([], { UMBRELLA_PASSWORD: "from env" })).password,
    "from env",
  );
  await withTempDir(async (dir) => {
    const file = join(dir, "password");
    await Deno.writeTextFile(file, "in a file: spaces kept \n");
    assert.equal(
      (await load([], { UMBRELLA_PASSWORD_FILE: file })).password,
      "in a file: spaces kept ",
    );
    await assert.rejects(
      load(["--password-file", file, "--password", "x"]),
      (err) =>
        err instanceof ConfigError &&
        err.message === "--password and --password-file are both set (set one)",
    );
    await Deno.writeTextFile(file, "\n");
    await assert.rejects(
      load(["--password-file", file]),
      (err) =>
        err instanceof ConfigError &&
        err.message ===
          `--password-file (${JSON.stringify(file)}): must not be empty`,
    );
    await assert.rejects(
      load(["--password-file", join(dir, "missing")]),
      (err) =>
        err instanceof ConfigError &&
        err.message.includes("password file") &&
        err.message.includes("does not exist"),
    );
  });
  await assert.rejects(
    load(["--password", ""]),
    (err) =>
      err instanceof ConfigError &&
      err.message === "--password: must not be empty",
  );
});

Deno.test("the operator password: text or file, and not the same as the password", async () => {
  assert.equal(
    (await load(["--operator-password", "op"])).operatorPassword,
    "op",
  );
  await withTempDir(async (dir) => {
    const file = join(dir, "operator");
    await Deno.writeTextFile(file, "from file\n");
    const config = await load([], {
      UMBRELLA_OPERATOR_PASSWORD_FILE: file,
      UMBRELLA_PASSWORD: "pw",
    });
    assert.equal(config.operatorPassword, "from file");
    assert.equal(config.password, "pw");
    await assert.rejects(
      load(["--operator-password-file", file, "--operator-password", "x"]),
      (err) =>
        err instanceof ConfigError &&
        err.message ===
          "--operator-password and --operator-password-file are both set (set one)",
    );
  });
  await assert.rejects(
    load(["--password", "same", "--operator-password", "same"]),
    (err) =>
      err instanceof ConfigError &&
      err.message ===
        "--operator-password: the operator password must differ from the password",
  );
});
