// The trunk WebSocket client against a real Umbrella (plain and with its
// self-signed certificate) and against a scripted server that sends the
// frames a real one never would.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash, X509Certificate } from "node:crypto";
import net from "node:net";
import { join } from "node:path";
import tls from "node:tls";
import { ensureCertificate } from "../server/cert.ts";
import {
  MAX_TRUNK_MESSAGE_BYTES,
  openTrunkSocket,
  TrunkConnectError,
  type TrunkSocket,
} from "../server/trunk_socket.ts";
import { decodeEnvelope, encodeEnvelope } from "../proto/codec.ts";
import { PeerKind, PROTOCOL_VERSION } from "../proto/messages.ts";
import { type ServerProcess, startServer } from "./support/server.ts";

const WAIT_MS = 10_000;

async function within<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`timed out waiting for ${what}`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function connectError(
  opening: Promise<TrunkSocket>,
  expected: RegExp,
): Promise<string> {
  const error = await within(
    opening.then(
      (socket) => {
        socket.close();
        throw new Error("the connection was opened");
      },
      (error) => error,
    ),
    WAIT_MS,
    "the connection to fail",
  );
  assert.ok(error instanceof TrunkConnectError, String(error));
  assert.match(error.message, expected);
  return error.message;
}

function closed(socket: TrunkSocket): Promise<[number, string]> {
  return new Promise((resolve) => {
    socket.onclose = (code, reason) => resolve([code, reason]);
  });
}

/** Greets a real Umbrella and returns its Hello; then closes normally. */
async function exchangeHello(socket: TrunkSocket) {
  const first = new Promise<Uint8Array>((resolve) => {
    socket.onmessage = resolve;
  });
  const ended = closed(socket);
  socket.send(encodeEnvelope({
    hello: {
      protocolVersion: PROTOCOL_VERSION,
      kind: PeerKind.Client,
      name: "trunk-socket-test",
    },
  }));
  const reply = decodeEnvelope(await within(first, WAIT_MS, "the Hello"));
  assert.ok(socket.open);
  socket.close(1000, "done");
  assert.deepEqual(await within(ended, WAIT_MS, "the close"), [1000, "done"]);
  assert.equal(socket.open, false);
  return reply.hello;
}

async function fingerprintFromStatus(server: ServerProcess): Promise<string> {
  const certPem = await Deno.readTextFile(join(server.dataDir, "cert.pem"));
  const client = Deno.createHttpClient({ caCerts: [certPem] });
  try {
    const status = await (await fetch(`${server.origin}/api/status`, {
      client,
    })).json();
    assert.equal(
      status.node.certificateFingerprint,
      new X509Certificate(certPem).fingerprint256,
    );
    return status.node.certificateFingerprint;
  } finally {
    client.close();
  }
}

Deno.test("ws:// to a cloud node exchanges Hello; other paths and TLS are refused in plain words", async () => {
  const server = await startServer();
  try {
    const socket = await openTrunkSocket(server.wsUrl, {});
    assert.equal(socket.peerCertificateFingerprint, undefined);
    const hello = await exchangeHello(socket);
    assert.equal(hello?.protocolVersion, PROTOCOL_VERSION);
    assert.equal(hello?.kind, PeerKind.Node);
    assert.ok(hello?.assignedPeerId);

    await connectError(
      openTrunkSocket(server.wsUrl.replace("/wsb", "/nope"), {}),
      new RegExp(
        `^the server at ws://127\\.0\\.0\\.1:${server.port}/nope did not accept a WebSocket \\(HTTP 404\\)$`,
      ),
    );
    await connectError(
      openTrunkSocket(server.wsUrl.replace("ws:", "wss:"), {}),
      /did not answer TLS: use ws:\/\//,
    );
  } finally {
    await server.stop();
  }
});

Deno.test("wss:// to a self-signed node needs the right pinned fingerprint", async (t) => {
  const server = await startServer({ cloud: false });
  try {
    const fingerprint = await fingerprintFromStatus(server);
    const label = `127\\.0\\.0\\.1:${server.port}`;

    await t.step("without a pin it is not trusted", async () => {
      const message = await connectError(
        openTrunkSocket(server.wsUrl, {}),
        new RegExp(
          `^certificate of ${label} is not trusted \\(self-signed\\?\\)`,
        ),
      );
      assert.match(
        message,
        /pin its fingerprint \(shown on the remote's \/status page\)/,
      );
    });

    await t.step("a wrong pin is refused before any WebSocket", async () => {
      const wrong = fingerprint.replace(
        /^../,
        (byte) => byte === "00" ? "01" : "00",
      );
      const message = await connectError(
        openTrunkSocket(server.wsUrl, { fingerprint: wrong }),
        /^certificate fingerprint mismatch: /,
      );
      assert.ok(message.includes(`expected ${wrong}, got ${fingerprint}`));
      assert.match(
        message,
        /the remote's certificate changed or this is not the expected server$/,
      );
      assert.ok(
        !server.logs.some((entry) => entry.msg === "participant joined"),
      );
    });

    await t.step(
      "the right pin, in any case and without colons, connects",
      async () => {
        for (
          const pin of [
            fingerprint,
            fingerprint.replaceAll(":", "").toLowerCase(),
          ]
        ) {
          const socket = await openTrunkSocket(server.wsUrl, {
            fingerprint: pin,
          });
          assert.equal(socket.peerCertificateFingerprint, fingerprint);
          const hello = await exchangeHello(socket);
          assert.equal(hello?.kind, PeerKind.Node);
        }
      },
    );

    await t.step(
      "resolveHost supplies the address of a name DNS does not know",
      async () => {
        const asked: string[] = [];
        const socket = await openTrunkSocket(
          `wss://umbrella-test.local:${server.port}/wsb`,
          {
            fingerprint,
            resolveHost: (host) => {
              asked.push(host);
              return Promise.resolve("127.0.0.1");
            },
          },
        );
        assert.deepEqual(asked, ["umbrella-test.local"]);
        assert.equal((await exchangeHello(socket))?.kind, PeerKind.Node);
      },
    );

    await t.step("ws:// to a TLS port says to use wss://", async () => {
      await connectError(
        openTrunkSocket(server.wsUrl.replace("wss:", "ws:"), {}),
        new RegExp(`^${label} speaks TLS: use wss:// instead of ws://$`),
      );
    });
  } finally {
    await server.stop();
  }
});

Deno.test("without a pin the chain and the name are verified against the trusted roots", async () => {
  const server = await startServer({ cloud: false });
  try {
    // DENO_CERT adds a root for the whole process, so the client runs in its own.
    const module = new URL("../server/trunk_socket.ts", import.meta.url).href;
    const code = `
      import { openTrunkSocket } from ${JSON.stringify(module)};
      const results = [];
      for (const host of ["localhost", "127.0.0.1", "not-in-the-cert.test"]) {
        try {
          const socket = await openTrunkSocket("wss://" + host + ":${server.port}/wsb", {
            timeoutMs: 5000,
            resolveHost: () => Promise.resolve("127.0.0.1"),
          });
          results.push({ host, fingerprint: socket.peerCertificateFingerprint });
          socket.close();
        } catch (error) {
          results.push({ host, error: error.message });
        }
      }
      console.log(JSON.stringify(results));
      Deno.exit(0);
    `;
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      env: { DENO_CERT: join(server.dataDir, "cert.pem"), NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    const fingerprint = await fingerprintFromStatus(server);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(output.stdout)), [
      { host: "localhost", fingerprint },
      { host: "127.0.0.1", fingerprint },
      {
        host: "not-in-the-cert.test",
        error:
          `certificate of not-in-the-cert.test:${server.port} (127.0.0.1) is not valid for the name not-in-the-cert.test; use a name it lists or pin its fingerprint (shown on the remote's /status page) to trust it`,
      },
    ]);
  } finally {
    await server.stop();
  }
});

Deno.test("connection failures are told in plain words", async () => {
  const closedPort = (() => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const { port } = listener.addr as Deno.NetAddr;
    listener.close();
    return port;
  })();
  await connectError(
    openTrunkSocket(`ws://127.0.0.1:${closedPort}/wsb`, {}),
    new RegExp(`^connection refused by 127\\.0\\.0\\.1:${closedPort}$`),
  );

  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const { port } = silent.addr as Deno.NetAddr;
    await connectError(
      openTrunkSocket(`ws://127.0.0.1:${port}/wsb`, { timeoutMs: 300 }),
      new RegExp(
        `^127\\.0\\.0\\.1:${port} did not answer: timed out after 0\\.3 s$`,
      ),
    );
  } finally {
    silent.close();
  }

  await connectError(
    openTrunkSocket("wss://umbrella-test.local:8081/wsb", {
      resolveHost: () => Promise.reject(new Error("no mDNS answer")),
    }),
    /^host not found: umbrella-test\.local \(no mDNS answer\)$/,
  );
  await connectError(
    openTrunkSocket("ws://127.0.0.1:8081/wsb", { fingerprint: "AB" }),
    /^a certificate fingerprint only applies to wss:\/\/ URLs$/,
  );
  await connectError(
    openTrunkSocket("wss://127.0.0.1:8081/wsb", { fingerprint: "AB:CD" }),
    /^the pinned fingerprint is not a SHA-256 fingerprint/,
  );
  await connectError(
    openTrunkSocket("https://127.0.0.1:8081/wsb", {}),
    /^a trunk URL starts with wss:\/\/ or ws:\/\//,
  );
});

// ---- A scripted server: raw bytes in, hand-made frames out. ----

interface ClientFrame {
  opcode: number;
  payload: Uint8Array;
}

/** One accepted connection, read as raw bytes. */
class RawPeer {
  received = new Uint8Array(0);
  readonly ended: Promise<void>;
  /** The SNI name a TLS client sent. */
  readonly servername?: string;
  #changed = Promise.withResolvers<void>();

  constructor(readonly socket: net.Socket) {
    socket.on("data", (chunk: Uint8Array) => {
      const joined = new Uint8Array(this.received.length + chunk.length);
      joined.set(this.received);
      joined.set(chunk, this.received.length);
      this.received = joined;
      this.#changed.resolve();
    });
    socket.on("error", () => {});
    const { servername } = socket as { servername?: unknown };
    if (typeof servername === "string") this.servername = servername;
    this.ended = new Promise((resolve) => socket.on("close", () => resolve()));
  }

  /** Waits until read() finds something in the bytes received so far. */
  async #until<T>(read: () => T | undefined, what: string): Promise<T> {
    let ended = false;
    this.ended.then(() => ended = true);
    for (;;) {
      const value = read();
      if (value !== undefined) return value;
      if (ended) throw new Error(`connection ended before ${what}`);
      this.#changed = Promise.withResolvers<void>();
      await within(
        Promise.race([this.#changed.promise, this.ended]),
        WAIT_MS,
        what,
      );
    }
  }

  /** The upgrade request; answers it with 101 plus any frames in the same write. */
  async accept(...frames: Uint8Array[]): Promise<string> {
    const head = await this.#until(() => {
      const text = new TextDecoder().decode(this.received);
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return undefined;
      this.received = this.received.subarray(end + 4);
      return text.slice(0, end);
    }, "the upgrade request");
    const key = head.match(/^sec-websocket-key: (.*)$/im)![1];
    const accept = createHash("sha1")
      .update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
    this.socket.write(Buffer.concat([
      Buffer.from(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
          `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
      ),
      ...frames,
    ]));
    return head;
  }

  /** The next frame from the client, which must be masked. */
  frame(): Promise<ClientFrame> {
    return this.#until(() => {
      const bytes = this.received;
      if (bytes.length < 2) return undefined;
      assert.equal(bytes[1] & 0x80, 0x80, "client frames are masked");
      let length = bytes[1] & 0x7f;
      let offset = 2;
      if (length === 126) {
        length = (bytes[2] << 8) | bytes[3];
        offset = 4;
      } else if (length === 127) {
        length = Number(
          new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(2),
        );
        offset = 10;
      }
      if (bytes.length < offset + 4 + length) return undefined;
      const mask = bytes.subarray(offset, offset + 4);
      const payload = bytes.slice(offset + 4, offset + 4 + length);
      for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
      this.received = bytes.subarray(offset + 4 + length);
      return { opcode: bytes[0] & 0x0f, payload };
    }, "a frame");
  }
}

function serverFrame(
  opcode: number,
  payload: Uint8Array,
  final = true,
): Uint8Array {
  const length = payload.length;
  const header = length < 126 ? 2 : length < 0x10000 ? 4 : 10;
  const frame = new Uint8Array(header + length);
  frame[0] = (final ? 0x80 : 0) | opcode;
  if (header === 2) frame[1] = length;
  else if (header === 4) {
    frame[1] = 126;
    frame[2] = length >> 8;
    frame[3] = length & 0xff;
  } else {
    frame[1] = 127;
    new DataView(frame.buffer).setBigUint64(2, BigInt(length));
  }
  frame.set(payload, header);
  return frame;
}

function closePayload(code: number, reason: string): Uint8Array {
  const text = new TextEncoder().encode(reason);
  return new Uint8Array([code >> 8, code & 0xff, ...text]);
}

const bytes = (text: string) => new TextEncoder().encode(text);

async function withScriptedServer(
  options: { cert?: string; key?: string },
  run: (
    port: number,
    accepted: () => Promise<RawPeer>,
  ) => Promise<void>,
): Promise<void> {
  const peers: RawPeer[] = [];
  let arrived = Promise.withResolvers<void>();
  const onSocket = (socket: net.Socket) => {
    peers.push(new RawPeer(socket));
    arrived.resolve();
  };
  const server = options.cert
    ? tls.createServer({ cert: options.cert, key: options.key }, onSocket)
    : net.createServer(onSocket);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  let taken = 0;
  const accepted = async () => {
    while (peers.length <= taken) {
      await within(arrived.promise, WAIT_MS, "a connection");
      arrived = Promise.withResolvers<void>();
    }
    return peers[taken++];
  };
  try {
    await run(port, accepted);
  } finally {
    for (const peer of peers) peer.socket.destroy();
    await Promise.all(peers.map((peer) => peer.ended));
    await new Promise((resolve) => server.close(resolve));
  }
}

Deno.test("with a wrong pin not one byte follows the TLS handshake; with the right one the host name is kept", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "umbrella-trunk-test-" });
  try {
    const certificate = await ensureCertificate({
      dataDir,
      hostnames: ["localhost"],
      ipAddresses: ["127.0.0.1"],
    });
    const keys = { cert: certificate.certPem, key: certificate.keyPem };
    await withScriptedServer(keys, async (port, accepted) => {
      const wrong = "AB:".repeat(31) + "AB";
      await connectError(
        openTrunkSocket(`wss://127.0.0.1:${port}/wsb`, { fingerprint: wrong }),
        /^certificate fingerprint mismatch/,
      );
      const refused = await accepted();
      await within(refused.ended, WAIT_MS, "the refused connection to end");
      assert.equal(refused.received.length, 0);

      const opening = openTrunkSocket(
        `wss://umbrella-test.local:${port}/prefix/wsb?x=1`,
        {
          fingerprint: certificate.fingerprintSha256,
          resolveHost: () => Promise.resolve("127.0.0.1"),
        },
      );
      const peer = await accepted();
      const head = await peer.accept();
      const socket = await within(opening, WAIT_MS, "the pinned connection");
      assert.equal(peer.servername, "umbrella-test.local");
      assert.match(head, /^GET \/prefix\/wsb\?x=1 HTTP\/1\.1\r\n/);
      assert.match(
        head,
        new RegExp(`^host: umbrella-test\\.local:${port}$`, "im"),
      );
      const ended = closed(socket);
      socket.close();
      assert.deepEqual(await peer.frame(), {
        opcode: 0x8,
        payload: closePayload(1000, ""),
      });
      peer.socket.end();
      assert.deepEqual(await within(ended, WAIT_MS, "the close"), [1000, ""]);
    });
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("frames: fragments join, pings are answered, data waits for onmessage, the server's close is echoed", async () => {
  await withScriptedServer({}, async (port, accepted) => {
    const opening = openTrunkSocket(`ws://127.0.0.1:${port}/wsb`, {});
    const peer = await accepted();
    // The first message rides in the same write as the 101 answer.
    await peer.accept(serverFrame(0x2, bytes("early")));
    const socket = await within(opening, WAIT_MS, "the connection");
    // A message that arrives before any handler is set must wait for it. The
    // pause only gives it time to arrive; it cannot make a lost one appear.
    peer.socket.write(serverFrame(0x2, bytes("before the handler")));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const messages: string[] = [];
    let nextMessage = Promise.withResolvers<void>();
    socket.onmessage = (data) => {
      assert.ok(data instanceof Uint8Array);
      messages.push(new TextDecoder().decode(data));
      nextMessage.resolve();
    };
    const ended = closed(socket);

    const big = new Uint8Array(MAX_TRUNK_MESSAGE_BYTES - 10).fill(7);
    peer.socket.write(Buffer.concat([
      serverFrame(0x2, bytes("frag"), false),
      serverFrame(0x9, bytes("are you there")),
      serverFrame(0x0, bytes("men"), false),
      serverFrame(0x0, bytes("ted")),
      serverFrame(0x2, big.subarray(0, 5), false),
      serverFrame(0x0, big.subarray(5)),
    ]));
    assert.deepEqual(await peer.frame(), {
      opcode: 0xa,
      payload: bytes("are you there"),
    });
    while (messages.length < 4) {
      await within(nextMessage.promise, WAIT_MS, "messages");
      nextMessage = Promise.withResolvers<void>();
    }
    assert.deepEqual(messages.slice(0, 3), [
      "early",
      "before the handler",
      "fragmented",
    ]);
    assert.equal(messages[3].length, big.length);

    socket.send(bytes("x".repeat(70_000)));
    assert.deepEqual(await peer.frame(), {
      opcode: 0x2,
      payload: bytes("x".repeat(70_000)),
    });

    peer.socket.write(
      serverFrame(0x8, closePayload(4008, "nothing heard for 30 s")),
    );
    assert.deepEqual(await peer.frame(), {
      opcode: 0x8,
      payload: closePayload(4008, ""),
    });
    await within(peer.ended, WAIT_MS, "the client to end the connection");
    assert.deepEqual(await within(ended, WAIT_MS, "onclose"), [
      4008,
      "nothing heard for 30 s",
    ]);
    assert.equal(socket.open, false);
    socket.send(bytes("dropped after close"));
  });
});

Deno.test("a text frame closes with 1003 and a frame over 1 MiB with 1009", async () => {
  await withScriptedServer({}, async (port, accepted) => {
    for (
      const [frame, code] of [
        [serverFrame(0x1, bytes("hello")), 1003],
        // Only the header: the limit applies before the payload arrives.
        [
          serverFrame(0x2, new Uint8Array(MAX_TRUNK_MESSAGE_BYTES + 1))
            .subarray(0, 10),
          1009,
        ],
      ] as const
    ) {
      const opening = openTrunkSocket(`ws://127.0.0.1:${port}/wsb`, {});
      const peer = await accepted();
      await peer.accept();
      const socket = await within(opening, WAIT_MS, "the connection");
      const messages: Uint8Array[] = [];
      socket.onmessage = (data) => messages.push(data);
      const ended = closed(socket);
      peer.socket.write(frame);
      const close = await peer.frame();
      assert.equal(close.opcode, 0x8);
      assert.equal((close.payload[0] << 8) | close.payload[1], code);
      await within(peer.ended, WAIT_MS, "the client to end the connection");
      const [closeCode] = await within(ended, WAIT_MS, "onclose");
      assert.equal(closeCode, code);
      assert.deepEqual(messages, []);
    }
  });
});
