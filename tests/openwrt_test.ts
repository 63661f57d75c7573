// The OpenWrt package (openwrt/, docs/openwrt.md): its init script turns
// UCI options into Umbrella's environment, and the package runs on a root
// with no C library of its own (OpenWrt's is musl): unpacked into a chroot
// that holds nothing else but a static busybox, it serves pages and
// forwards media with SRTP on its own libcrypto.
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildPackage } from "../openwrt/package.ts";
import { startServer } from "./support/server.ts";
import { expectForwarding } from "./support/werift_client.ts";

const REPO = fileURLToPath(new URL("../", import.meta.url));
/** Deno for aarch64, which .ci/run fetches from the npm registry (tests do
 * not reach beyond loopback). */
const AARCH64_DENO = join(REPO, ".ci/cache/deno-linux-arm64");
const AARCH64_LIBS = "/usr/lib/aarch64-linux-gnu";
/** OpenWrt's shell is busybox's; Debian's busybox-static is a static one. */
const BUSYBOX = "/bin/busybox";

/** Stand-ins for the OpenWrt shell functions the init script calls: UCI
 * options are read from CONFIG_<section>_<option> variables, as OpenWrt's
 * functions.sh keeps them, and each procd call is printed. */
const PROCD_STUBS = `
config_load() { :; }
config_get() { eval "$1=\\"\\\${CONFIG_$2_$3:-$4}\\""; }
config_get_bool() {
  local value; config_get value "$2" "$3" "$4"
  case "$value" in 1|on|true|yes|enabled) value=1;; *) value=0;; esac
  eval "$1=$value"
}
procd_open_instance() { echo open; }
procd_close_instance() { echo close; }
procd_set_param() { printf 'set %s' "$1"; shift; printf ' <%s>' "$@"; echo; }
procd_append_param() { printf 'append %s' "$1"; shift; printf ' <%s>' "$@"; echo; }
`;

/** The options of the shipped /etc/config/umbrella, as OpenWrt's UCI
 * functions would hold them. */
async function shippedOptions(): Promise<Record<string, string>> {
  const text = await Deno.readTextFile(join(REPO, "openwrt/umbrella.config"));
  const options: Record<string, string> = {};
  for (const match of text.matchAll(/^\s*option (\w+) '([^']*)'$/gm)) {
    options[`CONFIG_main_${match[1]}`] = match[2];
  }
  return options;
}

/** Runs the init script's start_service; returns what it asked procd. */
async function startService(
  env: Record<string, string>,
): Promise<string[]> {
  const result = await new Deno.Command(BUSYBOX, {
    args: [
      "sh",
      "-c",
      `${PROCD_STUBS}\n. ${join(REPO, "openwrt/umbrella.init")}\nstart_service`,
    ],
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(result.stderr);
  assert.equal(result.code, 0, stderr);
  assert.equal(stderr, "");
  return new TextDecoder().decode(result.stdout).trim().split("\n")
    .filter((line) => line !== "");
}

/** The environment the service gets, from procd's env parameters. */
function serviceEnv(calls: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const call of calls.filter((c) => / env </.test(c))) {
    for (const [, pair] of call.matchAll(/<([^>]*)>/g)) {
      const eq = pair.indexOf("=");
      assert.ok(!(pair.slice(0, eq) in env), `${pair} is set once`);
      env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  return env;
}

Deno.test("the init script gives Umbrella its UCI options as environment", async () => {
  const dir = await Deno.makeTempDir({ prefix: "umbrella-uci-" });
  try {
    const root = join(dir, "usr-lib-umbrella");
    await Deno.mkdir(root);
    await Deno.copyFile(
      join(REPO, "openwrt/umbrella.config"),
      join(root, "umbrella.config"),
    );
    const base = {
      PATH: "/usr/bin:/bin",
      UCI_CONFIG_DIR: join(dir, "config"),
      UMBRELLA_ROOT: root,
    };
    await Deno.mkdir(base.UCI_CONFIG_DIR);

    const calls = await startService({ ...base, ...await shippedOptions() });
    assert.equal(calls[0], "open");
    assert.equal(calls.at(-1), "close");
    assert.ok(calls.includes(`set command <${root}/umbrella>`), calls.join());
    assert.ok(calls.includes("set respawn <3600> <5> <0>"), calls.join());
    assert.deepEqual(serviceEnv(calls), {
      DENO_DIR: "/tmp/umbrella-deno",
      UMBRELLA_DATA_DIR: "/etc/umbrella",
      UMBRELLA_HTTP_SERVE_ADDR: ":8081",
      UMBRELLA_MDNS: "1",
      UMBRELLA_LOG_LEVEL: "info",
    });
    // A fresh install gets the shipped settings to edit.
    assert.equal(
      await Deno.readTextFile(join(base.UCI_CONFIG_DIR, "umbrella")),
      await Deno.readTextFile(join(REPO, "openwrt/umbrella.config")),
    );

    const set = await startService({
      ...base,
      ...await shippedOptions(),
      CONFIG_main_password: "two words",
      CONFIG_main_operator_password: "three more words",
      CONFIG_main_data_dir: "/mnt/usb/umbrella",
      CONFIG_main_min_port: "50000",
      CONFIG_main_max_port: "50100",
      CONFIG_main_name: "cabin",
    });
    const env = serviceEnv(set);
    assert.equal(env.UMBRELLA_PASSWORD, "two words");
    assert.equal(env.UMBRELLA_OPERATOR_PASSWORD, "three more words");
    assert.equal(env.UMBRELLA_DATA_DIR, "/mnt/usb/umbrella");
    assert.equal(env.UMBRELLA_MIN_PORT, "50000");
    assert.equal(env.UMBRELLA_MAX_PORT, "50100");
    assert.equal(env.UMBRELLA_NAME, "cabin");
    assert.ok(
      !set.some((c) => c.startsWith("set command") && c.includes("two words")),
      "the password is not on the command line",
    );

    assert.deepEqual(
      await startService({
        ...base,
        ...await shippedOptions(),
        CONFIG_main_enabled: "0",
      }),
      [],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the package runs where the system has no C library of its own", async () => {
  const arch = Deno.build.arch;
  const dir = await Deno.makeTempDir({ prefix: "umbrella-openwrt-root-" });
  try {
    const tarball = join(dir, "package.tar");
    await buildPackage({
      arch,
      deno: Deno.execPath(),
      libs: `/usr/lib/${arch}-linux-gnu`,
      out: tarball,
    });
    const root = join(dir, "root");
    for (const sub of ["bin", "dev", "proc", "tmp", "data"]) {
      await Deno.mkdir(join(root, sub), { recursive: true });
    }
    const untar = await new Deno.Command("tar", {
      args: ["-xf", tarball, "-C", root],
    }).output();
    assert.equal(untar.code, 0);
    const busybox = await new Deno.Command("ldd", { args: [BUSYBOX] })
      .output().catch(() => undefined);
    assert.match(
      new TextDecoder().decode(busybox?.stdout) +
        new TextDecoder().decode(busybox?.stderr),
      /not a dynamic executable|statically linked/,
      `${BUSYBOX} must be a static busybox (Debian's busybox-static; .ci/run installs it)`,
    );
    await Deno.copyFile(BUSYBOX, join(root, "bin/busybox"));
    await Deno.symlink("busybox", join(root, "bin/sh"));
    for (const [name, minor] of [["null", 3], ["urandom", 9]] as const) {
      const made = await new Deno.Command("mknod", {
        args: ["-m", "666", join(root, "dev", name), "c", "1", String(minor)],
      }).output();
      assert.equal(made.code, 0, `mknod /dev/${name}`);
    }
    const libraries = [];
    for await (
      const entry of Deno.readDir(join(root, "usr/lib/umbrella/lib"))
    ) {
      libraries.push(entry.name);
    }
    assert.ok(libraries.includes("libc.so.6"), libraries.join());
    for (const outside of ["lib", "lib64", "usr/lib/" + arch + "-linux-gnu"]) {
      await assert.rejects(Deno.stat(join(root, outside)), `no /${outside}`);
    }

    const server = await startServer({
      dataDir: join(root, "data"),
      env: { DENO_DIR: "/tmp/deno" },
      // A private mount namespace, so that /proc is mounted for the chroot
      // alone and goes with it; the service is the packaged /usr/bin/umbrella.
      launch: (args) => ({
        program: "unshare",
        args: [
          "--mount",
          "--fork",
          "--kill-child=SIGTERM",
          "sh",
          "-c",
          `mount -t proc proc "$0/proc" && exec chroot "$0" /usr/bin/umbrella "$@"`,
          root,
          ...args.map((arg) => arg === join(root, "data") ? "/data" : arg),
        ],
      }),
    });
    try {
      const srtp = server.logs.find((l) => l.msg === "SRTP implementation");
      assert.match(
        String(srtp?.srtp),
        /^\/usr\/lib\/umbrella\/lib\/libcrypto\.so\.3 \(OpenSSL 3\./,
      );
      const page = await fetch(`${server.origin}/sfu`);
      assert.equal(page.status, 200);
      await page.body?.cancel();
      await expectForwarding(server.wsUrl, "through the chrooted node", 20_000);
      // Its state lives in the data directory inside the root.
      await Deno.stat(join(root, "data/node-id"));
    } finally {
      await server.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the aarch64 package, as access points run it, forwards media (on qemu-user)", async () => {
  const missing: string[] = [];
  for (
    const [path, what] of [
      [AARCH64_DENO, "Deno for aarch64"],
      [join(AARCH64_LIBS, "libc.so.6"), "glibc for arm64 (libc6:arm64)"],
      [join(AARCH64_LIBS, "libcrypto.so.3"), "libssl3:arm64"],
      ["/usr/bin/qemu-aarch64-static", "qemu-user-static"],
    ]
  ) {
    await Deno.stat(path).catch(() => missing.push(`${what} (${path})`));
  }
  assert.deepEqual(missing, [], "bash .ci/run installs these");
  const dir = await Deno.makeTempDir({ prefix: "umbrella-openwrt-arm-" });
  try {
    const tarball = join(dir, "package.tar");
    await buildPackage({
      arch: "aarch64",
      deno: AARCH64_DENO,
      libs: AARCH64_LIBS,
      out: tarball,
    });
    const untar = await new Deno.Command("tar", {
      args: ["-xf", tarball, "-C", dir],
    }).output();
    assert.equal(untar.code, 0);
    const installed = join(dir, "usr/lib/umbrella");
    const wrapper = await Deno.readTextFile(join(installed, "umbrella"));
    // What the wrapper runs, with its paths moved under this directory
    // (binfmt_misc cannot be set up here, so qemu runs the loader itself).
    const command = /exec (.*) "\$@"$/ms.exec(wrapper)![1]
      .replaceAll("\\\n", " ").replaceAll('"$ROOT', `"${installed}`)
      .split(/\s+/).filter((word) => word !== "")
      .map((word) => word.replace(/^"(.*)"$/, "$1"));
    assert.equal(command[0], `${installed}/lib/ld-linux-aarch64.so.1`);
    const server = await startServer({
      env: {
        DENO_DIR: join(dir, "deno-dir"),
        UMBRELLA_LIBCRYPTO: join(installed, "lib/libcrypto.so.3"),
      },
      listenTimeoutMs: 120_000,
      launch: (args) => ({
        program: "qemu-aarch64-static",
        args: [...command, ...args],
      }),
    });
    try {
      const srtp = server.logs.find((l) => l.msg === "SRTP implementation");
      assert.match(String(srtp?.srtp), /lib\/libcrypto\.so\.3 \(OpenSSL 3\./);
      await expectForwarding(server.wsUrl, "through the emulated node", 90_000);
    } finally {
      await server.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
