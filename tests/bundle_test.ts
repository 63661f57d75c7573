// `deno task bundle` makes one JavaScript file that is the whole program:
// server, media, UI and protocol, npm packages included. The Docker image
// and the OpenWrt package run it with a bare Deno, no project beside it.
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startPermissions, startServer } from "./support/server.ts";
import { expectForwarding } from "./support/werift_client.ts";

const REPO = fileURLToPath(new URL("../", import.meta.url));

/** Runs the bundle task's command, writing to `output`. */
export async function bundle(output: string): Promise<void> {
  const config = JSON.parse(await Deno.readTextFile(join(REPO, "deno.json")));
  const task = String(config.tasks.bundle);
  const args = task.split(" ").slice(1).map((arg) =>
    arg === "dist/umbrella.js" ? output : arg
  );
  assert.ok(args.includes(output), `the bundle task writes ${task}`);
  const result = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(
    result.code,
    0,
    `deno ${args.join(" ")}: ${new TextDecoder().decode(result.stderr)}`,
  );
}

Deno.test("the bundle alone serves the pages and forwards media", async () => {
  const dir = await Deno.makeTempDir({ prefix: "umbrella-bundle-" });
  try {
    const script = join(dir, "umbrella.js");
    await bundle(script);
    const permissions = await startPermissions();
    const server = await startServer({
      launch: (args) => ({
        program: Deno.execPath(),
        // No config and no node_modules: only the file itself.
        args: ["run", "--no-config", ...permissions, script, ...args],
      }),
    });
    try {
      // The fast paths (SRTP and UDP through FFI) work from the bundle too.
      const srtp = server.logs.find((l) => l.msg === "SRTP implementation");
      assert.match(String(srtp?.srtp), /libcrypto/);
      assert.ok(
        !server.logs.some((l) => l.level === "warn"),
        JSON.stringify(server.logs.filter((l) => l.level === "warn")),
      );
      for (const path of ["/sfu", "/app.js", "/healthz"]) {
        const response = await fetch(`${server.origin}${path}`);
        await response.body?.cancel();
        assert.equal(response.status, 200, path);
      }
      await expectForwarding(server.wsUrl, "through the bundle", 20_000);
    } finally {
      await server.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
