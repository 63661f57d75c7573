// `deno task package:openwrt`: a tarball to unpack over an OpenWrt root
// (docs/openwrt.md). OpenWrt's C library is musl, and Deno is built for
// glibc, so the package carries Deno with the glibc it needs (and glibc's
// libcrypto for SRTP) under /usr/lib/umbrella, started through glibc's own
// loader: nothing of the system's libraries is used or replaced.
import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("../", import.meta.url));
const HERE = join(REPO, "openwrt");

const ARCHES = {
  aarch64: { npm: "linux-arm64-glibc", loader: "ld-linux-aarch64.so.1" },
  x86_64: { npm: "linux-x64-glibc", loader: "ld-linux-x86-64.so.2" },
} as const;
type Arch = keyof typeof ARCHES;

/** What Deno and libcrypto link against (ldd), besides the loader. */
const LIBRARIES = [
  "libc.so.6",
  "libm.so.6",
  "libdl.so.2",
  "librt.so.1",
  "libpthread.so.0",
  "libgcc_s.so.1",
  "libcrypto.so.3",
];

const USAGE = `Usage: deno task package:openwrt [options]

  --arch=ARCH      aarch64 (default) or x86_64
  --deno=PATH      the Deno binary to package (default: Deno ${Deno.version.deno}
                   for ARCH from the npm registry, @deno/<platform>)
  --libs=DIR       where glibc and libcrypto 3 for ARCH are (default:
                   /usr/lib/ARCH-linux-gnu; for aarch64 on another machine:
                   dpkg --add-architecture arm64 && apt-get update &&
                   apt-get install libc6:arm64 libgcc-s1:arm64 libssl3:arm64)
  --out=FILE       the package (default: dist/umbrella-openwrt-ARCH.tar.gz;
                   a name ending in .tar is left uncompressed)`;

class UsageError extends Error {}

async function run(program: string, args: string[], cwd = REPO) {
  const result = await new Deno.Command(program, {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (result.code !== 0) {
    throw new Error(
      `${program} ${args.join(" ")} failed: ${
        new TextDecoder().decode(result.stderr).trim()
      }`,
    );
  }
  return new TextDecoder().decode(result.stdout);
}

/** Deno for `arch` from the npm registry, unpacked into `dir`. */
async function fetchDeno(arch: Arch, dir: string): Promise<string> {
  const spec = `@deno/${ARCHES[arch].npm}@${Deno.version.deno}`;
  const tarball = (await run("npm", ["pack", "--silent", spec], dir)).trim();
  await run("tar", ["-xzf", tarball], dir);
  return join(dir, "package", "deno");
}

/** Runs `deno task bundle`'s command with `output` for its dist/umbrella.js,
 * so that a test or a package gets exactly what the task makes. */
export async function bundleProgram(output: string): Promise<void> {
  const config = JSON.parse(await Deno.readTextFile(join(REPO, "deno.json")));
  const task = String(config.tasks.bundle);
  const args = task.split(" ").slice(1).map((arg) =>
    arg === "dist/umbrella.js" ? output : arg
  );
  if (!args.includes(output)) {
    throw new Error(
      `the bundle task no longer writes dist/umbrella.js: ${task}`,
    );
  }
  await run(Deno.execPath(), args);
}

export interface PackageOptions {
  arch: Arch;
  deno?: string;
  libs?: string;
  out: string;
}

export async function buildPackage(options: PackageOptions): Promise<void> {
  const { loader } = ARCHES[options.arch];
  const libs = options.libs ?? `/usr/lib/${options.arch}-linux-gnu`;
  for (const name of [loader, ...LIBRARIES]) {
    try {
      await Deno.stat(join(libs, name));
    } catch {
      throw new UsageError(
        `${
          join(libs, name)
        } is missing: --libs must hold glibc and libcrypto 3 for ${options.arch}`,
      );
    }
  }
  const work = await Deno.makeTempDir({ prefix: "umbrella-openwrt-" });
  try {
    const stage = join(work, "root");
    const root = join(stage, "usr/lib/umbrella");
    await Deno.mkdir(join(root, "lib"), { recursive: true });
    await Deno.mkdir(join(stage, "etc/init.d"), { recursive: true });
    await Deno.mkdir(join(stage, "usr/bin"), { recursive: true });

    await bundleProgram(join(root, "umbrella.js"));

    const deno = options.deno ??
      await fetchDeno(options.arch, await Deno.makeTempDir({ dir: work }));
    await Deno.copyFile(deno, join(root, "deno"));
    await Deno.chmod(join(root, "deno"), 0o755);
    for (const name of [loader, ...LIBRARIES]) {
      // Copies what a symbolic link points to.
      await Deno.copyFile(join(libs, name), join(root, "lib", name));
    }
    await Deno.chmod(join(root, "lib", loader), 0o755);

    const config = JSON.parse(
      await Deno.readTextFile(join(REPO, "deno.json")),
    );
    const permissions = String(config.tasks.start).match(/--allow-[\w-]+/g)!;
    const wrapper = (await Deno.readTextFile(join(HERE, "umbrella.sh")))
      .replace("@LOADER@", loader)
      .replace("@PERMISSIONS@", permissions.join(" "));
    await Deno.writeTextFile(join(root, "umbrella"), wrapper, { mode: 0o755 });
    await Deno.chmod(join(root, "umbrella"), 0o755);
    await Deno.symlink(
      "../lib/umbrella/umbrella",
      join(stage, "usr/bin/umbrella"),
    );
    await Deno.copyFile(
      join(HERE, "umbrella.init"),
      join(stage, "etc/init.d/umbrella"),
    );
    await Deno.chmod(join(stage, "etc/init.d/umbrella"), 0o755);
    await Deno.copyFile(
      join(HERE, "umbrella.config"),
      join(root, "umbrella.config"),
    );

    await Deno.mkdir(dirname(options.out), { recursive: true });
    await run("tar", [
      options.out.endsWith(".tar") ? "-cf" : "-czf",
      options.out,
      "--owner=0",
      "--group=0",
      "-C",
      stage,
      ".",
    ]);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

if (import.meta.main) {
  try {
    const { values } = parseArgs({
      args: Deno.args,
      options: {
        arch: { type: "string", default: "aarch64" },
        deno: { type: "string" },
        libs: { type: "string" },
        out: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      console.log(USAGE);
      Deno.exit(0);
    }
    if (!(values.arch in ARCHES)) {
      throw new UsageError(`--arch: ${values.arch} is not aarch64 or x86_64`);
    }
    const arch = values.arch as Arch;
    const out = values.out ??
      join(REPO, "dist", `umbrella-openwrt-${arch}.tar.gz`);
    await buildPackage({ arch, deno: values.deno, libs: values.libs, out });
    console.log(`wrote ${out}`);
  } catch (error) {
    console.error(`package:openwrt: ${(error as Error).message}`);
    if (error instanceof UsageError || (error as { code?: string }).code) {
      console.error(USAGE);
    }
    Deno.exit(2);
  }
}
