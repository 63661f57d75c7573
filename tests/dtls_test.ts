// werift's DTLS client and server when flights are retransmitted: the SRTP
// keys both sides derive must still agree (media/werift_patches.ts). The
// server's flight 4 is delivered twice, the copy just before its Finished;
// the client answers the copy by resending flight 5, which the server then
// sees twice. The server's HelloVerifyRequest, answering a ClientHello the
// client retransmitted, reaches a client already past it. Copies of the
// ClientHellos reach the server during and after the handshake, and a copy
// of flight 5 while the server is answering the first. Records after the
// handshake keep their sequence numbers unique.
import assert from "node:assert/strict";
import {
  CipherContext,
  DtlsClient,
  DtlsServer,
  HashAlgorithm,
  NamedCurveAlgorithm,
  ProtectionProfileAes128CmHmacSha1_80,
  SignatureAlgorithm,
} from "werift";
import { applyWeriftPatches } from "../media/werift_patches.ts";

type Deliver = (data: Buffer) => void;

/** One direction of an in-memory datagram link. */
class Endpoint {
  readonly type = "udp";
  readonly address = { address: "127.0.0.1", port: 0, family: "IPv4" };
  closed = false;
  onData: Deliver = () => {};
  constructor(readonly forward: Deliver) {}
  send = (data: Buffer) => {
    this.forward(data);
    return Promise.resolve();
  };
  close() {
    this.closed = true;
    return Promise.resolve();
  }
}

const HANDSHAKE = 22;
const CHANGE_CIPHER_SPEC = 20;
const FLIGHT_4 = new Set([2, 11, 12, 13, 14]);
const FLIGHT_5 = new Set([11, 15, 16]);
const HELLO_VERIFY_REQUEST = 3;
const CLIENT_HELLO = 1;

/** Records of a datagram as [content type, epoch, first handshake type]. */
function records(datagram: Buffer): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let at = 0; at + 13 <= datagram.length;) {
    const length = datagram.readUInt16BE(at + 11);
    out.push([
      datagram[at],
      datagram.readUInt16BE(at + 3),
      datagram[at + 13] ?? -1,
    ]);
    at += 13 + length;
  }
  return out;
}

async function certificate() {
  const { certPem, keyPem, signatureHash } = await CipherContext
    .createSelfSignedCertificateWithKey(
      { signature: SignatureAlgorithm.ecdsa_3, hash: HashAlgorithm.sha256_4 },
      NamedCurveAlgorithm.secp256r1_23,
    );
  return { cert: certPem, key: keyPem, signatureHash };
}

/** Both sides derived the same SRTP keys and salts, each its own way. */
function assertKeysAgree(client: DtlsClient, server: DtlsServer): void {
  const clientKeys = client.extractSessionKeys(16, 14);
  const serverKeys = server.extractSessionKeys(16, 14);
  assert.deepEqual(clientKeys.localKey, serverKeys.remoteKey);
  assert.deepEqual(clientKeys.localSalt, serverKeys.remoteSalt);
  assert.deepEqual(clientKeys.remoteKey, serverKeys.localKey);
  assert.deepEqual(clientKeys.remoteSalt, serverKeys.localSalt);
}

/** A DTLS server and client over the two endpoints; `connect()` runs the
 * handshake and resolves once both sides report it done (10 s at most). */
async function dtlsPair(clientSide: Endpoint, serverSide: Endpoint) {
  const srtpProfiles = [ProtectionProfileAes128CmHmacSha1_80];
  const server = new DtlsServer({
    ...(await certificate()),
    transport: serverSide,
    srtpProfiles,
    extendedMasterSecret: true,
    certificateRequest: true,
  });
  const client = new DtlsClient({
    ...(await certificate()),
    transport: clientSide,
    srtpProfiles,
    extendedMasterSecret: true,
  });
  const connected = Promise.all([
    new Promise((resolve) => server.onConnect.once(resolve)),
    new Promise((resolve) => client.onConnect.once(resolve)),
  ]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error("no DTLS connection in 10 s")),
      10_000,
    );
  });
  return {
    server,
    client,
    async connect(): Promise<void> {
      await client.connect();
      await Promise.race([connected, deadline]);
    },
    close(): void {
      clearTimeout(timer);
      client.close();
      server.close();
    },
  };
}

Deno.test("repeated DTLS flights (server flight 4 after our flight 5, client flight 5 after flight 6) leave the SRTP keys agreed", async () => {
  applyWeriftPatches();
  const flight4: Buffer[] = [];
  let replayed = false;
  const clientSide: Endpoint = new Endpoint((data) => serverSide.onData(data));
  const serverSide: Endpoint = new Endpoint((data) => {
    const kinds = records(data);
    const isFlight4 = kinds.some(([type, epoch, message]) =>
      type === HANDSHAKE && epoch === 0 && FLIGHT_4.has(message)
    );
    const isFlight6 = kinds.some(([type, epoch]) =>
      type === CHANGE_CIPHER_SPEC || epoch === 1
    );
    if (isFlight4) flight4.push(Buffer.from(data));
    // The peer "timed out" waiting for flight 5 and sent flight 4 again, and
    // its Finished follows right behind the copy.
    if (isFlight6 && !replayed) {
      replayed = true;
      for (const copy of flight4) clientSide.onData(copy);
    }
    clientSide.onData(data);
  });

  const pair = await dtlsPair(clientSide, serverSide);
  const { server, client } = pair;
  try {
    await pair.connect();
    assert.ok(replayed, "the test replayed flight 4");
    // Anything the client does about the copy of flight 4 runs after its
    // handshake handlers' own waits (up to a few hundred ms).
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assertKeysAgree(client, server);
  } finally {
    pair.close();
  }
});

Deno.test("a repeated HelloVerifyRequest neither fails the client nor changes the keys", async () => {
  applyWeriftPatches();
  let helloVerify: Buffer | undefined;
  let repeated = false;
  const clientSide: Endpoint = new Endpoint((data) => {
    // The client's flight 3 (ClientHello with the cookie) is out: the
    // server's answer to a retransmitted first ClientHello arrives now.
    if (helloVerify && !repeated) {
      repeated = true;
      clientSide.onData(helloVerify);
    }
    serverSide.onData(data);
  });
  const serverSide: Endpoint = new Endpoint((data) => {
    const isHelloVerify = records(data).some(([type, epoch, message]) =>
      type === HANDSHAKE && epoch === 0 && message === HELLO_VERIFY_REQUEST
    );
    if (isHelloVerify && !helloVerify) helloVerify = Buffer.from(data);
    clientSide.onData(data);
  });

  const pair = await dtlsPair(clientSide, serverSide);
  const { server, client } = pair;
  const errors: unknown[] = [];
  client.onError.subscribe((error) => errors.push(error));
  server.onError.subscribe((error) => errors.push(error));
  try {
    await pair.connect();
    assert.ok(repeated, "the test repeated the HelloVerifyRequest");
    assert.deepEqual(errors, []);
    assertKeysAgree(client, server);
  } finally {
    pair.close();
  }
});

Deno.test("a ClientHello arriving after the handshake does not restart it", async () => {
  applyWeriftPatches();
  const clientHellos: Buffer[] = [];
  let serverSentAfterConnect = 0;
  let connectedNow = false;
  const clientSide: Endpoint = new Endpoint((data) => {
    const isClientHello = records(data).some(([type, epoch, message]) =>
      type === HANDSHAKE && epoch === 0 && message === CLIENT_HELLO
    );
    if (isClientHello) clientHellos.push(Buffer.from(data));
    serverSide.onData(data);
  });
  const serverSide: Endpoint = new Endpoint((data) => {
    if (connectedNow) serverSentAfterConnect++;
    clientSide.onData(data);
  });

  const pair = await dtlsPair(clientSide, serverSide);
  const { server } = pair;
  try {
    await pair.connect();
    const before = server.extractSessionKeys(16, 14);
    assert.equal(clientHellos.length, 2, "both ClientHellos were seen");
    // A late copy of each, as a network may duplicate or delay them.
    connectedNow = true;
    for (const copy of clientHellos) serverSide.onData(copy);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(server.connected, true);
    assert.equal(serverSentAfterConnect, 0, "the server answered nothing");
    const after = server.extractSessionKeys(16, 14);
    assert.deepEqual(after.localKey, before.localKey);
    assert.deepEqual(after.remoteKey, before.remoteKey);
  } finally {
    pair.close();
  }
});

/** Endpoints whose client-to-server datagrams go through `route`, which
 * hands on (or holds back, or repeats) each with `deliver`. */
function routedFromClient(route: (data: Buffer, deliver: Deliver) => void) {
  const deliver = (data: Buffer) => serverSide.onData(data);
  const clientSide: Endpoint = new Endpoint((data) => route(data, deliver));
  const serverSide: Endpoint = new Endpoint((data) => clientSide.onData(data));
  return { clientSide, serverSide };
}

/** Runs the handshake over the endpoints, checks that the test's meddling
 * (`happened`) took place and that both sides derived the same keys. */
async function expectKeysAgreed(
  { clientSide, serverSide }: { clientSide: Endpoint; serverSide: Endpoint },
  happened: () => boolean,
  meddling: string,
): Promise<void> {
  const pair = await dtlsPair(clientSide, serverSide);
  try {
    await pair.connect();
    assert.ok(happened(), `the test ${meddling}`);
    assertKeysAgree(pair.client, pair.server);
  } finally {
    pair.close();
  }
}

Deno.test("a late copy of the first ClientHello, reaching the server after the second, leaves the keys agreed", async () => {
  applyWeriftPatches();
  let firstHello: Buffer | undefined;
  let delivered = false;
  const endpoints = routedFromClient((data, deliver) => {
    const isClientHello = records(data).some(([type, epoch, message]) =>
      type === HANDSHAKE && epoch === 0 && message === CLIENT_HELLO
    );
    deliver(data);
    if (!isClientHello || delivered) return;
    if (!firstHello) {
      firstHello = Buffer.from(data);
    } else {
      // The network reordered a retransmitted first ClientHello behind the
      // one carrying the cookie: the server sees it while in flight 4.
      delivered = true;
      deliver(firstHello);
    }
  });
  await expectKeysAgreed(
    endpoints,
    () => delivered,
    "delivered the late ClientHello",
  );
});

Deno.test("a copy of flight 5 reaching the server while it answers the first leaves the keys agreed", async () => {
  applyWeriftPatches();
  const flight5: Buffer[] = [];
  let copied = false;
  const endpoints = routedFromClient((data, deliver) => {
    const kinds = records(data);
    const isFinished = kinds.some(([, epoch]) => epoch === 1);
    const isChangeCipherSpec = !isFinished &&
      kinds.some(([type]) => type !== HANDSHAKE);
    if (
      isChangeCipherSpec ||
      kinds.some(([type, , message]) =>
        type === HANDSHAKE && FLIGHT_5.has(message)
      )
    ) {
      flight5.push(Buffer.from(data));
    }
    deliver(data);
    // The client timed out and resent flight 5; the copy arrives while the
    // server is still between the first Finished and its own flight 6.
    if (isFinished && !copied) {
      copied = true;
      for (const copy of flight5) deliver(copy);
      deliver(data);
    }
  });
  await expectKeysAgreed(endpoints, () => copied, "delivered flight 5 twice");
});

Deno.test("records after the handshake never reuse the Finished's sequence number", async () => {
  applyWeriftPatches();
  const seen = { client: new Set<string>(), server: new Set<string>() };
  const repeats: string[] = [];
  const note = (side: "client" | "server", datagram: Buffer) => {
    for (let at = 0; at + 13 <= datagram.length;) {
      const epoch = datagram.readUInt16BE(at + 3);
      const sequence = datagram.readUIntBE(at + 5, 6);
      const key = `${epoch}/${sequence}`;
      if (epoch > 0 && seen[side].has(key)) repeats.push(`${side} ${key}`);
      seen[side].add(key);
      at += 13 + datagram.readUInt16BE(at + 11);
    }
  };
  const clientSide: Endpoint = new Endpoint((data) => {
    note("client", data);
    serverSide.onData(data);
  });
  const serverSide: Endpoint = new Endpoint((data) => {
    note("server", data);
    clientSide.onData(data);
  });

  const pair = await dtlsPair(clientSide, serverSide);
  const { server, client } = pair;
  try {
    await pair.connect();
    for (let i = 0; i < 20; i++) {
      await server.send(Buffer.from([i]));
      await client.send(Buffer.from([i]));
    }
    assert.ok(seen.server.size > 20 && seen.client.size > 20);
    assert.deepEqual(repeats, []);
  } finally {
    pair.close();
  }
});
