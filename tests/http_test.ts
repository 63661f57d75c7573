// The HTTP surface of a real Umbrella process: health, metrics, the prefix,
// the servers API, HTTPS on its own certificate, and start-up errors.
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { startServer } from "./support/server.ts";

Deno.test("healthz, metrics and status answer", async () => {
  const server = await startServer();
  try {
    const health = await (await fetch(`${server.origin}/healthz`)).json();
    assert.deepEqual(Object.keys(health).sort(), ["ok", "version"]);
    assert.equal(health.ok, true);
    const metrics = await (await fetch(`${server.origin}/metrics`)).text();
    for (
      const name of [
        "umbrella_peers",
        "umbrella_tracks",
        "umbrella_packets_in_total",
        "umbrella_bytes_out_total",
        "umbrella_forwarding_errors_total",
        "umbrella_process_resident_memory_bytes",
        "umbrella_process_heap_total_bytes",
        "umbrella_process_external_memory_bytes",
      ]
    ) {
      assert.match(metrics, new RegExp(`^# TYPE ${name} `, "m"), name);
    }
    const status = await (await fetch(`${server.origin}/api/status`)).json();
    assert.equal(status.node.version, health.version);
    assert.deepEqual(status.peers, []);
  } finally {
    await server.stop();
  }
});

Deno.test("with a prefix everything is served under it and nothing outside it", async () => {
  const server = await startServer({ prefix: "/umbrella" });
  try {
    for (
      const path of [
        "/healthz",
        "/metrics",
        "/api/status",
        "/api/servers",
        "/sfu",
        "/status",
        "/servers",
        "/app.js",
      ]
    ) {
      const response = await fetch(`${server.origin}/umbrella${path}`);
      await response.body?.cancel();
      assert.equal(response.status, 200, path);
      const outside = await fetch(`${server.origin}${path}`);
      await outside.body?.cancel();
      assert.equal(outside.status, 404, `${path} outside the prefix`);
    }
    const root = await fetch(`${server.origin}/umbrella/`, {
      redirect: "manual",
    });
    await root.body?.cancel();
    assert.equal(root.status, 302);
    assert.equal(
      new URL(root.headers.get("location")!).pathname,
      "/umbrella/sfu",
    );
    const ws = await fetch(`${server.origin}/umbrella/wsb`);
    await ws.body?.cancel();
    assert.equal(
      ws.status,
      426,
      "the signalling path is there and wants a WebSocket",
    );
  } finally {
    await server.stop();
  }
});

Deno.test("the servers list validates input, redacts passwords and survives a restart", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "umbrella-test-" });
  let server = await startServer({ dataDir });
  try {
    const api = `${server.origin}/api/servers`;
    const post = (body: unknown) =>
      fetch(api, {
        method: "POST",
        body: JSON.stringify(body),
        headers: { "content-type": "application/json" },
      });
    for (
      const [body, message] of [
        [{ url: "http://example.test/" }, /unsupported scheme "http:"/],
        [{ url: "wss://host:8081/sfu" }, /ends in \/wsb/],
        [{ url: "not a url" }, /not a valid URL/],
        [{}, /give the url/],
        [{ url: "wss://host/wsb", fingerprint: "zz" }, /fingerprint must be/],
      ] as const
    ) {
      const response = await post(body);
      assert.equal(response.status, 400);
      assert.match((await response.json()).error, message);
    }
    const created = await post({
      url: "rtsp://admin:s3cret@192.0.2.10/stream1",
    });
    assert.equal(created.status, 201);
    const { server: camera } = await created.json();
    assert.equal(camera.kind, "camera");
    assert.equal(camera.url, "rtsp://admin:***@192.0.2.10/stream1");
    const trunk = await (await post({ url: "wss://other.example:8081/wsb" }))
      .json();
    assert.equal(trunk.server.kind, "trunk");

    await server.stop();
    server = await startServer({ dataDir });
    const listed = await (await fetch(`${server.origin}/api/servers`)).json();
    assert.deepEqual(listed.servers.map((s: { url: string }) => s.url), [
      "rtsp://admin:***@192.0.2.10/stream1",
      "wss://other.example:8081/wsb",
    ]);
    const removed = await fetch(`${server.origin}/api/servers/${camera.id}`, {
      method: "DELETE",
    });
    assert.equal(removed.status, 204);
    const after = await (await fetch(`${server.origin}/api/servers`)).json();
    assert.equal(after.servers.length, 1);
  } finally {
    await server.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("by default it serves HTTPS with the self-signed certificate it made", async () => {
  const server = await startServer({ cloud: false });
  try {
    assert.match(server.origin, /^https:/);
    const certPem = await Deno.readTextFile(join(server.dataDir, "cert.pem"));
    const client = Deno.createHttpClient({ caCerts: [certPem] });
    const response = await fetch(`https://localhost:${server.port}/healthz`, {
      client,
    });
    assert.equal((await response.json()).ok, true);
    client.close();
    const status =
      await (await fetch(`https://localhost:${server.port}/api/status`, {
        client: Deno.createHttpClient({ caCerts: [certPem] }),
      })).json();
    assert.match(
      status.node.certificateFingerprint,
      /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/,
    );
  } finally {
    await server.stop();
  }
});

Deno.test("an invalid setting stops start-up with one line and exit code 2", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      fromFileUrl(new URL("../main.ts", import.meta.url)),
    ],
    env: { UMBRELLA_MIN_PORT: "abc", UMBRELLA_MAX_PORT: "2000", NO_COLOR: "1" },
    stdin: "null",
  }).output();
  assert.equal(output.code, 2);
  const stderr = new TextDecoder().decode(output.stderr).trim();
  assert.equal(stderr.split("\n").length, 1, stderr);
  assert.match(
    stderr,
    /^umbrella: UMBRELLA_MIN_PORT: "abc" is not a port number/,
  );
});

Deno.test("pages carry a security policy that fits them: own script, no framing", async () => {
  const server = await startServer();
  try {
    const response = await fetch(`${server.origin}/sfu`);
    const html = await response.text();
    const policy = response.headers.get("content-security-policy") ?? "";
    for (
      const directive of [
        "script-src 'self' 'unsafe-eval'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
      ]
    ) {
      assert.ok(policy.split("; ").includes(directive), directive);
    }
    assert.equal(response.headers.get("x-frame-options"), "DENY");
    assert.equal(response.headers.get("x-content-type-options"), "nosniff");
    // Every script is a file of this node: nothing inline to allow.
    const scripts = [...html.matchAll(/<script\b[^>]*>/g)].map((m) => m[0]);
    assert.ok(scripts.length > 0);
    for (const script of scripts) assert.match(script, / src="app\.js\?v=/);
    const api = await fetch(`${server.origin}/api/status`);
    await api.body?.cancel();
    assert.equal(api.headers.get("x-content-type-options"), "nosniff");
  } finally {
    await server.stop();
  }
});

Deno.test("request bodies are bounded: too large is 413 whether declared or streamed, not JSON is 400", async () => {
  const server = await startServer({ args: ["--operator-password", "op"] });
  try {
    const send = (path: string, body: BodyInit, auth = true) =>
      fetch(`${server.origin}${path}`, {
        method: "POST",
        body,
        headers: {
          "content-type": "application/json",
          ...(auth ? { authorization: "Bearer op" } : {}),
        },
      });
    const huge = JSON.stringify({ url: "rtsp://cam/" + "x".repeat(1 << 20) });
    /** The same bytes with no Content-Length: a stream of 64 KiB chunks. */
    const streamed = () => {
      const bytes = new TextEncoder().encode(huge);
      let offset = 0;
      return new ReadableStream<Uint8Array>({
        pull(controller) {
          if (offset >= bytes.length) return controller.close();
          controller.enqueue(bytes.subarray(offset, offset += 65536));
        },
      });
    };
    for (const path of ["/api/servers", "/api/login"]) {
      for (const body of [huge, streamed()]) {
        const response = await send(path, body);
        assert.equal(response.status, 413, path);
        assert.match(
          (await response.json()).error,
          /^the request body is over \d+ bytes$/,
        );
      }
      const garbled = await send(path, "{not json");
      assert.equal(garbled.status, 400, path);
      assert.match((await garbled.json()).error, /must be JSON like/);
    }
    // The node still answers.
    const health = await fetch(`${server.origin}/healthz`);
    assert.equal((await health.json()).ok, true);
  } finally {
    await server.stop();
  }
});
