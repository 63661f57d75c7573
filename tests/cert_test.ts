import assert from "node:assert/strict";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { ensureCertificate, loadCertificateFiles } from "../server/cert.ts";
import { ConfigError } from "../server/config.ts";

const HOSTNAMES = ["testhost", "testhost.local", "localhost"];
const ADDRESSES = ["127.0.0.1", "::1"];
const DAY_MS = 24 * 60 * 60 * 1000;

x509.cryptoProvider.set(crypto);

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "umbrella-cert-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function ensure(dataDir: string, ipAddresses = ADDRESSES) {
  return ensureCertificate({ dataDir, hostnames: HOSTNAMES, ipAddresses });
}

async function browserStyleFingerprint(pem: string): Promise<string> {
  const der = new x509.X509Certificate(pem).rawData;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", der));
  return Array.from(
    digest,
    (b) => b.toString(16).padStart(2, "0").toUpperCase(),
  ).join(":");
}

/** A self-signed pair with chosen validity, made independently of the code under test. */
async function makePair(
  notBefore: Date,
  notAfter: Date,
): Promise<{ certPem: string; keyPem: string }> {
  const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = await crypto.subtle.generateKey(algorithm, true, [
    "sign",
    "verify",
  ]);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name: "CN=testhost",
    notBefore,
    notAfter,
    signingAlgorithm: algorithm,
    keys,
  });
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return {
    certPem: cert.toString("pem"),
    keyPem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY"),
  };
}

async function configErrorOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
    return err.message;
  }
  assert.fail("expected a ConfigError");
}

Deno.test("a self-signed certificate is generated once, stored, and reused", async () => {
  await withTempDir(async (dir) => {
    const dataDir = join(dir, "nested", "data");
    const first = await ensure(dataDir);
    assert.equal(first.generated, true);
    assert.equal(
      await Deno.readTextFile(join(dataDir, "cert.pem")),
      first.certPem,
    );
    assert.equal(
      await Deno.readTextFile(join(dataDir, "key.pem")),
      first.keyPem,
    );
    assert.equal(
      first.fingerprintSha256,
      await browserStyleFingerprint(first.certPem),
    );
    assert.match(first.fingerprintSha256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    if (Deno.build.os !== "windows") {
      assert.equal(
        (await Deno.stat(join(dataDir, "key.pem"))).mode! & 0o777,
        0o600,
      );
    }

    const second = await ensure(dataDir);
    assert.equal(second.generated, false);
    assert.equal(second.fingerprintSha256, first.fingerprintSha256);
    assert.equal(second.certPem, first.certPem);
    assert.equal(second.keyPem, first.keyPem);

    // A new address is not worth a new certificate: browsers keep their exception.
    const moved = await ensure(dataDir, ["192.0.2.50"]);
    assert.equal(moved.generated, false);
    assert.equal(moved.fingerprintSha256, first.fingerprintSha256);
  });
});

Deno.test("the generated certificate names every host and address, for 825 days", async () => {
  await withTempDir(async (dir) => {
    const { certPem } = await ensure(dir);
    const cert = new x509.X509Certificate(certPem);
    assert.equal(cert.subject, "CN=testhost");
    const names = cert.getExtension(x509.SubjectAlternativeNameExtension)!.names
      .items
      .map((name) => `${name.type}:${name.value}`);
    assert.deepEqual(names.sort(), [
      "dns:localhost",
      "dns:testhost",
      "dns:testhost.local",
      "ip:127.0.0.1",
      "ip:::1",
    ]);
    assert.equal(
      cert.notAfter.getTime() - cert.notBefore.getTime(),
      825 * DAY_MS,
    );
    assert.ok(cert.notBefore.getTime() <= Date.now());
    assert.equal(cert.getExtension(x509.BasicConstraintsExtension)?.ca, false);
    assert.ok(await cert.verify({ signatureOnly: true }));
  });
});

Deno.test("Deno.serve accepts the certificate and a client trusting it completes TLS", async () => {
  await withTempDir(async (dir) => {
    const { certPem, keyPem } = await ensure(dir);
    const server = Deno.serve(
      {
        hostname: "127.0.0.1",
        port: 0,
        cert: certPem,
        key: keyPem,
        onListen: () => {},
      },
      () => new Response("umbrella"),
    );
    const client = Deno.createHttpClient({ caCerts: [certPem] });
    try {
      const response = await fetch(`https://localhost:${server.addr.port}/`, {
        client,
      });
      assert.equal(await response.text(), "umbrella");
      const byAddress = await fetch(`https://127.0.0.1:${server.addr.port}/`, {
        client,
      });
      assert.equal(await byAddress.text(), "umbrella");
    } finally {
      client.close();
      await server.shutdown();
    }
  });
});

Deno.test("an unusable stored certificate is replaced", async () => {
  await withTempDir(async (dir) => {
    const original = await ensure(dir);

    await Deno.writeTextFile(
      join(dir, "cert.pem"),
      "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    const afterCorruptCert = await ensure(dir);
    assert.equal(afterCorruptCert.generated, true);
    assert.notEqual(
      afterCorruptCert.fingerprintSha256,
      original.fingerprintSha256,
    );
    assert.equal(
      await Deno.readTextFile(join(dir, "cert.pem")),
      afterCorruptCert.certPem,
    );

    await Deno.writeTextFile(join(dir, "key.pem"), "not a key");
    const afterCorruptKey = await ensure(dir);
    assert.equal(afterCorruptKey.generated, true);
    assert.equal((await ensure(dir)).generated, false);

    // A key from some other certificate.
    await Deno.writeTextFile(join(dir, "key.pem"), original.keyPem);
    assert.equal((await ensure(dir)).generated, true);

    await Deno.remove(join(dir, "key.pem"));
    assert.equal((await ensure(dir)).generated, true);
    if (Deno.build.os !== "windows") {
      assert.equal(
        (await Deno.stat(join(dir, "key.pem"))).mode! & 0o777,
        0o600,
      );
    }
  });
});

Deno.test("a stored certificate expiring within a week is replaced", async () => {
  await withTempDir(async (dir) => {
    const now = Date.now();
    const expiring = await makePair(
      new Date(now - 800 * DAY_MS),
      new Date(now + 6 * DAY_MS),
    );
    await Deno.writeTextFile(join(dir, "cert.pem"), expiring.certPem);
    await Deno.writeTextFile(join(dir, "key.pem"), expiring.keyPem);
    assert.equal((await ensure(dir)).generated, true);

    const healthy = await makePair(
      new Date(now - DAY_MS),
      new Date(now + 8 * DAY_MS),
    );
    await Deno.writeTextFile(join(dir, "cert.pem"), healthy.certPem);
    await Deno.writeTextFile(join(dir, "key.pem"), healthy.keyPem);
    const reused = await ensure(dir);
    assert.equal(reused.generated, false);
    assert.equal(reused.certPem, healthy.certPem);
  });
});

Deno.test("user-supplied certificate files are loaded and checked", async () => {
  await withTempDir(async (dir) => {
    const generated = await ensure(join(dir, "data"));
    const certFile = join(dir, "data", "cert.pem");
    const keyFile = join(dir, "data", "key.pem");
    const loaded = await loadCertificateFiles(certFile, keyFile);
    assert.deepEqual(loaded, { ...generated, generated: false });

    const now = Date.now();
    const other = await makePair(
      new Date(now - DAY_MS),
      new Date(now + 30 * DAY_MS),
    );
    const otherKey = join(dir, "other-key.pem");
    await Deno.writeTextFile(otherKey, other.keyPem);
    const pair = (cert: string, key: string) =>
      `certificate "${cert}" with key "${key}" cannot be used`;
    assert.equal(
      await configErrorOf(loadCertificateFiles(certFile, otherKey)),
      `${
        pair(certFile, otherKey)
      }: the private key does not belong to the certificate`,
    );

    assert.equal(
      await configErrorOf(loadCertificateFiles(otherKey, keyFile)),
      `${
        pair(otherKey, keyFile)
      }: the certificate file has no "BEGIN CERTIFICATE" PEM block`,
    );
    assert.equal(
      await configErrorOf(loadCertificateFiles(certFile, certFile)),
      `${
        pair(certFile, certFile)
      }: the key file has no "BEGIN PRIVATE KEY" PEM block`,
    );

    const expired = await makePair(
      new Date(now - 30 * DAY_MS),
      new Date(now - DAY_MS),
    );
    const expiredCert = join(dir, "expired-cert.pem");
    const expiredKey = join(dir, "expired-key.pem");
    await Deno.writeTextFile(expiredCert, expired.certPem);
    await Deno.writeTextFile(expiredKey, expired.keyPem);
    const expiredMessage = await configErrorOf(
      loadCertificateFiles(expiredCert, expiredKey),
    );
    assert.match(expiredMessage, /: the certificate expired \d{4}-\d\d-\d\dT/);
    assert.ok(expiredMessage.startsWith(pair(expiredCert, expiredKey)));

    const missing = join(dir, "missing.pem");
    assert.equal(
      await configErrorOf(loadCertificateFiles(missing, keyFile)),
      `"${missing}" does not exist`,
    );
  });
});
