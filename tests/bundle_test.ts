// `deno task bundle` makes one JavaScript file that is the whole program:
// server, media, UI and protocol, npm packages included. The Docker image
// and the OpenWrt package run it with a bare Deno, no project beside it.
import assert from "node:assert/strict";
import { join } from "node:path";
import { bundleProgram } from "../openwrt/package.ts";
import { startPermissions, startServer } from "./support/server.ts";
import { expectForwarding } from "./support/werift_client.ts";

Deno.test("the bundle alone serves the pages and forwards media", async () => {
  const dir = await Deno.makeTempDir({ prefix: "umbrella-bundle-" });
  try {
    const script = join(dir, "umbrella.js");
    await bundleProgram(script);
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
