// A real Umbrella process with a password: what is open, what is not, how a
// browser signs in, how scripts, participants and trunks give the password,
// and what wrong passwords get.
import assert from "node:assert/strict";
import { FAILURES_ALLOWED } from "../server/auth.ts";
import { waitForTrunks } from "./support/cluster.ts";
import { type ServerProcess, startServer } from "./support/server.ts";
import { waitFor, WeriftClient } from "./support/werift_client.ts";

const PASSWORD = "correct horse";
const BASIC = `Basic ${btoa(`anyone:${PASSWORD}`)}`;

function withPassword(
  options: Parameters<typeof startServer>[0] = {},
): Promise<ServerProcess> {
  return startServer({
    ...options,
    args: [...(options.args ?? []), "--password", PASSWORD],
  });
}

async function get(
  server: ServerProcess,
  path: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  const response = await fetch(`${server.origin}${server.prefix}${path}`, {
    headers,
    redirect: "manual",
  });
  await response.body?.cancel();
  return response;
}

async function post(
  server: ServerProcess,
  path: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<{ response: Response; json: unknown }> {
  const response = await fetch(`${server.origin}${server.prefix}${path}`, {
    method: "POST",
    body,
    headers: { "content-type": "application/json", ...headers },
  });
  const text = await response.text();
  return { response, json: text ? JSON.parse(text) : undefined };
}

/** The name=value part of a Set-Cookie header. */
const cookieOf = (response: Response) =>
  response.headers.get("set-cookie")!.split(";")[0];

Deno.test("with a password only health, sign-in and the page assets are open", async () => {
  const server = await withPassword({ prefix: "/umbrella" });
  try {
    for (
      const path of [
        "/healthz",
        "/login",
        "/app.js",
        "/favicon.svg",
        "/manifest.webmanifest",
      ]
    ) {
      assert.equal((await get(server, path)).status, 200, path);
    }
    const session = await fetch(
      `${server.origin}/umbrella/api/session`,
    ).then((r) => r.json());
    assert.deepEqual(session, {
      passwordRequired: true,
      operatorPasswordRequired: true,
      signedIn: false,
      role: null,
    });
    for (const page of ["sfu", "status", "servers"]) {
      const response = await get(server, `/${page}`);
      assert.equal(response.status, 302, page);
      // Relative, so it stays under the prefix.
      assert.equal(response.headers.get("location"), `login?next=${page}`);
    }
    for (const path of ["/api/status", "/api/servers", "/metrics", "/wsb"]) {
      const response = await get(server, path);
      assert.equal(response.status, 401, path);
      assert.equal(
        response.headers.get("www-authenticate"),
        'Bearer realm="Umbrella"',
      );
    }
    const added = await post(
      server,
      "/api/servers",
      JSON.stringify({ url: "rtsp://cam/1" }),
    );
    assert.equal(added.response.status, 401);
    assert.deepEqual(added.json, {
      error: "sign in first: this node needs a password",
    });
    for (
      const authorization of [BASIC, `Bearer ${PASSWORD}`]
    ) {
      for (const path of ["/api/status", "/metrics", "/sfu"]) {
        assert.equal(
          (await get(server, path, { authorization })).status,
          200,
          `${path} with ${authorization.split(" ")[0]}`,
        );
      }
    }
    const wrong = await fetch(`${server.origin}/umbrella/api/status`, {
      headers: { authorization: `Basic ${btoa("x:wrong")}` },
    });
    assert.equal(wrong.status, 401);
    assert.deepEqual(await wrong.json(), {
      error: "wrong password: this node needs its password",
    });
    assert.ok(
      server.logs.some((l) => l.msg === "refused a wrong password"),
      "the operator is told",
    );
  } finally {
    await server.stop();
  }
});

Deno.test("a browser signs in for a cookie that opens pages, the API and the WebSocket of its own site only", async () => {
  const server = await withPassword({ prefix: "/umbrella" });
  try {
    const wrong = await post(
      server,
      "/api/login",
      JSON.stringify({ password: "nope" }),
    );
    assert.equal(wrong.response.status, 401);
    assert.deepEqual(wrong.json, { error: "wrong password" });
    for (const body of ["not json", "{}", '{"password": 1}', "null"]) {
      const bad = await post(server, "/api/login", body);
      assert.equal(bad.response.status, 400, body);
    }
    const right = await post(
      server,
      "/api/login",
      JSON.stringify({ password: PASSWORD }),
    );
    assert.equal(right.response.status, 204);
    const setCookie = right.response.headers.get("set-cookie")!;
    assert.match(setCookie, /; Path=\/umbrella; /);
    // Plain HTTP here, so not Secure (a browser would drop it); through a
    // TLS proxy that says so, Secure.
    assert.match(setCookie, /; HttpOnly; SameSite=Strict$/);
    const proxied = await post(
      server,
      "/api/login",
      JSON.stringify({ password: PASSWORD }),
      { "x-forwarded-proto": "https" },
    );
    assert.match(
      proxied.response.headers.get("set-cookie")!,
      /; HttpOnly; SameSite=Strict; Secure$/,
    );
    const cookie = cookieOf(right.response);
    for (const path of ["/sfu", "/status", "/api/status", "/api/servers"]) {
      assert.equal((await get(server, path, { cookie })).status, 200, path);
    }
    const session = await fetch(`${server.origin}/umbrella/api/session`, {
      headers: { cookie },
    }).then((r) => r.json());
    assert.deepEqual(session, {
      passwordRequired: true,
      operatorPasswordRequired: true,
      signedIn: true,
      role: "operator",
    });

    // The WebSocket opens with the cookie from this site, not from another.
    const upgrade = {
      cookie,
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
    };
    const crossSite = await get(server, "/wsb", {
      ...upgrade,
      origin: "https://elsewhere.example",
    });
    assert.equal(crossSite.status, 403);
    for (
      const origin of [{ origin: server.origin }, {}] as Record<
        string,
        string
      >[]
    ) {
      const opened = await get(server, "/wsb", { ...upgrade, ...origin });
      assert.equal(opened.status, 101, JSON.stringify(origin));
    }
    const forged = await post(
      server,
      "/api/servers",
      JSON.stringify({ url: "rtsp://cam/1" }),
      { cookie, origin: "https://elsewhere.example" },
    );
    assert.equal(forged.response.status, 403);

    const out = await post(server, "/api/logout", "");
    assert.equal(out.response.status, 204);
    assert.match(
      out.response.headers.get("set-cookie")!,
      /^umbrella_session_[0-9a-f]{12}=; Path=\/umbrella; Max-Age=0;/,
    );
  } finally {
    await server.stop();
  }
});

Deno.test("participants give the password in the WebSocket URL and media flows", async () => {
  const server = await withPassword();
  const url = new URL(server.wsUrl);
  url.username = "umbrella";
  url.password = encodeURIComponent(PASSWORD);
  const clients: WeriftClient[] = [];
  try {
    await assert.rejects(
      WeriftClient.connect(server.wsUrl, "no password"),
      /closed before hello/,
    );
    const alice = await WeriftClient.connect(url.href, "alice");
    clients.push(alice);
    const bob = await WeriftClient.connect(url.href, "bob");
    clients.push(bob);
    await alice.publish({ audio: true, tag: 0 });
    await waitFor(
      "bob to receive alice's audio",
      () => [...bob.received.values()].some((t) => t.packets >= 10),
      15_000,
    );
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
  }
});

Deno.test("a trunk to a node with a password needs it in its URL, and says so", async () => {
  const a = await withPassword({ args: ["--name", "site-A"] });
  const url = (password?: string) => {
    const u = new URL(a.wsUrl);
    if (password !== undefined) {
      u.username = "umbrella";
      u.password = encodeURIComponent(password);
    }
    return u.href;
  };
  const nodes: ServerProcess[] = [a];
  try {
    const [missing, wrong, right] = await Promise.all(
      [undefined, "wrong", PASSWORD].map((password, i) =>
        startServer({
          args: ["--name", `site-${"BCD"[i]}`],
        }).then(async (node) => {
          nodes.push(node);
          const added = await post(
            node,
            "/api/servers",
            JSON.stringify({ url: url(password) }),
          );
          assert.equal(added.response.status, 201);
          return node;
        })
      ),
    );
    const lastError = async (node: ServerProcess) =>
      (await fetch(`${node.origin}/api/servers`).then((r) => r.json()))
        .servers[0].lastError;
    const deadline = performance.now() + 15_000;
    while (
      (await lastError(missing)) === null || (await lastError(wrong)) === null
    ) {
      assert.ok(performance.now() < deadline, "refused trunks say why in 15 s");
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.match(
      await lastError(missing),
      /needs a password: write it in the trunk URL, as in wss:\/\/umbrella:PASSWORD@127\.0\.0\.1:\d+\/wsb$/,
    );
    assert.match(
      await lastError(wrong),
      /refused the password in the trunk URL \(HTTP 401\)$/,
    );
    // The list shows the URL without the password.
    const listed = (await fetch(`${right.origin}/api/servers`).then((r) =>
      r.json()
    )).servers[0].url;
    assert.equal(listed, url("***").replace("%2A%2A%2A", "***"));
    await waitForTrunks([right], [1]);
    const status = await fetch(`${a.origin}/api/status`, {
      headers: { authorization: BASIC },
    }).then((r) => r.json());
    assert.deepEqual(
      status.trunks.map((t: { remoteSite: string }) => t.remoteSite),
      ["site-D"],
    );
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
  }
});

Deno.test("wrong passwords from one address wait, the right one too, until the window passes", async () => {
  const server = await withPassword();
  try {
    for (let i = 0; i < FAILURES_ALLOWED; i++) {
      const { response } = await post(
        server,
        "/api/login",
        JSON.stringify({ password: `guess ${i}` }),
      );
      assert.equal(response.status, 401);
    }
    const locked = await post(
      server,
      "/api/login",
      JSON.stringify({ password: PASSWORD }),
    );
    assert.equal(locked.response.status, 429);
    const wait = Number(locked.response.headers.get("retry-after"));
    assert.ok(wait > 0 && wait <= 300, `retry after ${wait} s`);
    assert.match(
      (locked.json as { error: string }).error,
      /^too many wrong passwords from this address; try again in \d+ s$/,
    );
    // Basic auth is counted and held back the same way.
    assert.equal(
      (await get(server, "/api/status", { authorization: BASIC })).status,
      429,
    );
    // The health check is not.
    assert.equal((await get(server, "/healthz")).status, 200);
  } finally {
    await server.stop();
  }
});

Deno.test("start-up says whether a password guards the node", async () => {
  // A public host name makes the node reachable from beyond loopback.
  const open = await startServer({ args: ["--public-host", "sfu.example"] });
  const guarded = await withPassword({
    args: ["--public-host", "sfu.example"],
  });
  try {
    // Said right after the "listening" line that startServer waits for.
    await waitFor(
      "an open node to warn",
      () =>
        open.logs.some((l) =>
          l.level === "warn" &&
          String(l.msg).startsWith("no password is set (UMBRELLA_PASSWORD)")
        ),
      5_000,
    );
    await waitFor(
      "a guarded node to say how to sign in",
      () =>
        guarded.logs.some((l) =>
          String(l.msg).startsWith("a password is needed: browsers sign in")
        ),
      5_000,
    );
    assert.ok(!guarded.logs.some((l) => String(l.msg).includes(PASSWORD)));
  } finally {
    await Promise.all([open.stop(), guarded.stop()]);
  }
});

Deno.test("with an operator password, participants take part and only the operator runs the node", async () => {
  const server = await startServer({
    args: ["--password", PASSWORD, "--operator-password", "op secret"],
  });
  const participant = { authorization: BASIC };
  const operator = { authorization: `Bearer op secret` };
  try {
    for (const path of ["/sfu", "/status", "/api/status"]) {
      assert.equal((await get(server, path, participant)).status, 200, path);
    }
    for (const path of ["/api/servers", "/metrics"]) {
      const response = await fetch(`${server.origin}${path}`, {
        headers: participant,
      });
      assert.equal(response.status, 403, path);
      assert.deepEqual(await response.json(), {
        error: "this needs the operator password",
      });
      assert.equal((await get(server, path, operator)).status, 200, path);
      const anonymous = await fetch(`${server.origin}${path}`);
      assert.equal(anonymous.status, 401);
      assert.deepEqual(await anonymous.json(), {
        error: "sign in first: this needs the operator password",
      });
    }
    const added = await post(
      server,
      "/api/servers",
      JSON.stringify({ url: "rtsp://cam/1" }),
      participant,
    );
    assert.equal(added.response.status, 403);
    const servers = await get(server, "/servers", participant);
    assert.equal(servers.status, 302);
    assert.equal(servers.headers.get("location"), "login?next=servers");

    // Browsers: the participant's cookie opens the call, not the servers
    // list; the operator's opens both.
    const signIn = async (password: string) => {
      const { response } = await post(
        server,
        "/api/login",
        JSON.stringify({ password }),
      );
      assert.equal(response.status, 204);
      return { cookie: cookieOf(response) };
    };
    const guest = await signIn(PASSWORD);
    assert.equal((await get(server, "/sfu", guest)).status, 200);
    assert.equal((await get(server, "/servers", guest)).status, 302);
    const session = await fetch(`${server.origin}/api/session`, {
      headers: guest,
    }).then((r) => r.json());
    assert.equal(session.role, "participant");
    const owner = await signIn("op secret");
    assert.equal((await get(server, "/servers", owner)).status, 200);
    assert.equal((await get(server, "/api/servers", owner)).status, 200);

    // The operator sees it all counted.
    const metrics = await fetch(`${server.origin}/metrics`, {
      headers: operator,
    }).then((r) => r.text());
    const count = (line: string) =>
      Number(
        new RegExp(`^${line.replace(/[{}]/g, "\\$&")} (\\d+)$`, "m")
          .exec(metrics)?.[1],
      );
    assert.equal(count('umbrella_sign_ins_total{role="participant"}'), 1);
    assert.equal(count('umbrella_sign_ins_total{role="operator"}'), 1);
    // The participant's password on api/servers (GET and POST), /metrics
    // and the servers page, and its cookie on the servers page.
    assert.equal(
      count('umbrella_access_refused_total{reason="operator_only"}'),
      5,
    );
    assert.equal(
      count('umbrella_access_refused_total{reason="wrong_password"}'),
      0,
    );
  } finally {
    await server.stop();
  }
});

Deno.test("with only an operator password, anyone takes part and only the operator runs the node", async () => {
  const server = await startServer({ args: ["--operator-password", "op"] });
  const clients: WeriftClient[] = [];
  try {
    const session = await fetch(`${server.origin}/api/session`).then((r) =>
      r.json()
    );
    assert.deepEqual(session, {
      passwordRequired: false,
      operatorPasswordRequired: true,
      signedIn: false,
      role: "participant",
    });
    for (const path of ["/sfu", "/status", "/api/status"]) {
      assert.equal((await get(server, path)).status, 200, path);
    }
    clients.push(await WeriftClient.connect(server.wsUrl, "anyone"));
    assert.equal((await get(server, "/servers")).status, 302);
    assert.equal((await get(server, "/api/servers")).status, 401);
    assert.equal((await get(server, "/metrics")).status, 401);
    assert.equal(
      (await get(server, "/metrics", { authorization: "Bearer op" })).status,
      200,
    );
    const status = await fetch(`${server.origin}/api/status`).then((r) =>
      r.json()
    );
    assert.equal(status.node.passwordRequired, false);
    assert.equal(status.node.operatorPasswordRequired, true);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
  }
});
