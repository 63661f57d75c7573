// The TLS certificate. Browsers only allow WebRTC in a secure context, so on
// a LAN without a real certificate we make a self-signed one once and keep
// it: users accept it in the browser a single time, and reusing it keeps
// that exception valid across restarts.

import * as x509 from "@peculiar/x509";
import { createPrivateKey, randomBytes, X509Certificate } from "node:crypto";
import { join } from "node:path";
import { ConfigError, ensureDataDir } from "./config.ts";
import { errorMessage, log } from "./log.ts";
import { canonicalIp, isIpLiteral } from "./net.ts";

export interface Certificate {
  certPem: string;
  keyPem: string;
  /** SHA-256 of the DER certificate as uppercase colon-separated hex, as browsers show it. */
  fingerprintSha256: string;
  /** True when this call created a new self-signed certificate. */
  generated: boolean;
}

const DAY_MS = 24 * 60 * 60 * 1000;
// Apple platforms (and so Safari) reject server certificates valid for longer.
const VALIDITY_DAYS = 825;
const RENEW_WITHIN_DAYS = 7;
// Tolerates clients whose clocks are a little behind ours.
const BACKDATE_MS = 60 * 60 * 1000;

const EC_ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

x509.cryptoProvider.set(crypto);

/** Parses a certificate and key, checking that they belong together; throws an Error saying what is wrong. */
function parsePair(certPem: string, keyPem: string): X509Certificate {
  if (!certPem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new Error(
      'the certificate file has no "BEGIN CERTIFICATE" PEM block',
    );
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(keyPem)) {
    throw new Error('the key file has no "BEGIN PRIVATE KEY" PEM block');
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new Error(`the certificate cannot be parsed (${errorMessage(err)})`);
  }
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new Error(`the private key cannot be parsed (${errorMessage(err)})`);
  }
  if (!cert.checkPrivateKey(key)) {
    throw new Error("the private key does not belong to the certificate");
  }
  return cert;
}

function validUntil(cert: X509Certificate): Date {
  return new Date(cert.validTo);
}

function dnsNames(hostnames: string[]): string[] {
  // A dNSName must be ASCII; a host name that is not a DNS name cannot be
  // used to reach us anyway.
  const names = hostnames.map((name) => name.toLowerCase()).filter((name) =>
    /^[a-z0-9._-]+$/.test(name)
  );
  return [...new Set(names)];
}

function ipNames(ipAddresses: string[]): string[] {
  return [...new Set(ipAddresses.filter(isIpLiteral).map(canonicalIp))];
}

/** Names and addresses we were asked to cover that the certificate does not. */
function uncovered(
  cert: X509Certificate,
  hostnames: string[],
  ipAddresses: string[],
): string[] {
  const entries = (cert.subjectAltName ?? "").split(", ");
  const dns = new Set(
    entries.filter((e) => e.startsWith("DNS:")).map((e) =>
      e.slice(4).toLowerCase()
    ),
  );
  const ips = new Set(
    entries.filter((e) => e.startsWith("IP Address:")).map((e) =>
      canonicalIp(e.slice(11))
    ),
  );
  return [
    ...dnsNames(hostnames).filter((name) => !dns.has(name)),
    ...ipNames(ipAddresses).filter((ip) => !ips.has(ip)),
  ];
}

async function generate(
  hostnames: string[],
  ipAddresses: string[],
): Promise<{ certPem: string; keyPem: string }> {
  const dns = dnsNames(hostnames);
  const keys = await crypto.subtle.generateKey(EC_ALGORITHM, true, [
    "sign",
    "verify",
  ]);
  const serial = randomBytes(16);
  serial[0] &= 0x7f; // serial numbers must be positive
  const notBefore = new Date(Date.now() - BACKDATE_MS);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString("hex"),
    name: [{ CN: [dns[0] ?? "umbrella"] }],
    notBefore,
    notAfter: new Date(notBefore.getTime() + VALIDITY_DAYS * DAY_MS),
    signingAlgorithm: EC_ALGORITHM,
    keys,
    extensions: [
      // Not a CA: Firefox refuses a CA certificate used as a server's own.
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...dns.map((value) => ({ type: "dns" as const, value })),
        ...ipNames(ipAddresses).map((value) => ({
          type: "ip" as const,
          value,
        })),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return {
    certPem: cert.toString("pem") + "\n",
    keyPem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY") + "\n",
  };
}

// Write-then-rename so a crash never leaves a half-written file; a fresh
// temporary file guarantees the requested mode is applied.
async function writeFileAtomically(
  path: string,
  text: string,
  mode: number,
): Promise<void> {
  const temporary = `${path}.tmp`;
  try {
    await Deno.remove(temporary);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  await Deno.writeTextFile(temporary, text, { mode, createNew: true });
  await Deno.rename(temporary, path);
}

async function readIfPresent(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw new ConfigError(
      `cannot read ${JSON.stringify(path)} (${errorMessage(err)})`,
    );
  }
}

/**
 * Returns the self-signed certificate kept in dataDir, creating it (and the
 * directory) when missing, unreadable or expiring within a week.
 */
export async function ensureCertificate(opts: {
  dataDir: string;
  hostnames: string[];
  ipAddresses: string[];
}): Promise<Certificate> {
  const certFile = join(opts.dataDir, "cert.pem");
  const keyFile = join(opts.dataDir, "key.pem");
  await ensureDataDir(opts.dataDir);
  const [certPem, keyPem] = await Promise.all([
    readIfPresent(certFile),
    readIfPresent(keyFile),
  ]);

  if (certPem !== undefined && keyPem !== undefined) {
    let reason: string;
    try {
      const cert = parsePair(certPem, keyPem);
      const expiry = validUntil(cert);
      if (expiry.getTime() - Date.now() > RENEW_WITHIN_DAYS * DAY_MS) {
        const missing = uncovered(cert, opts.hostnames, opts.ipAddresses);
        if (missing.length > 0) {
          // Browsers keep their exception for the certificate itself, so a
          // new one would cost every user another warning page.
          log.info(
            "reusing the certificate although it does not name all current addresses",
            {
              missing: missing.join(","),
              hint: `delete ${certFile} to make a new one`,
            },
          );
        }
        return {
          certPem,
          keyPem,
          fingerprintSha256: cert.fingerprint256,
          generated: false,
        };
      }
      reason = `it expires ${expiry.toISOString()}`;
    } catch (err) {
      reason = errorMessage(err);
    }
    log.warn("replacing the self-signed certificate", {
      reason,
      file: certFile,
    });
  }

  const made = await generate(opts.hostnames, opts.ipAddresses);
  try {
    // Key first: if we stop in between, the old certificate no longer matches
    // the new key and is replaced on the next start.
    await writeFileAtomically(keyFile, made.keyPem, 0o600);
    await writeFileAtomically(certFile, made.certPem, 0o644);
  } catch (err) {
    throw new ConfigError(
      `cannot save the certificate in ${JSON.stringify(opts.dataDir)} (${
        errorMessage(err)
      })`,
    );
  }
  const fingerprintSha256 = new X509Certificate(made.certPem).fingerprint256;
  return { ...made, fingerprintSha256, generated: true };
}

/** Loads a certificate and key supplied by the user (--cert / --key). Throws ConfigError with the reason. */
export async function loadCertificateFiles(
  certFile: string,
  keyFile: string,
): Promise<Certificate> {
  const [certPem, keyPem] = await Promise.all([
    readIfPresent(certFile),
    readIfPresent(keyFile),
  ]);
  if (certPem === undefined || keyPem === undefined) {
    throw new ConfigError(
      `${
        JSON.stringify(certPem === undefined ? certFile : keyFile)
      } does not exist`,
    );
  }
  const files = `certificate ${JSON.stringify(certFile)} with key ${
    JSON.stringify(keyFile)
  }`;
  let cert: X509Certificate;
  try {
    cert = parsePair(certPem, keyPem);
  } catch (err) {
    throw new ConfigError(`${files} cannot be used: ${errorMessage(err)}`);
  }
  const expiry = validUntil(cert);
  if (expiry.getTime() <= Date.now()) {
    throw new ConfigError(
      `${files} cannot be used: the certificate expired ${expiry.toISOString()}`,
    );
  }
  if (expiry.getTime() - Date.now() < RENEW_WITHIN_DAYS * DAY_MS) {
    log.warn("the certificate expires soon", {
      file: certFile,
      expires: expiry.toISOString(),
    });
  }
  return {
    certPem,
    keyPem,
    fingerprintSha256: cert.fingerprint256,
    generated: false,
  };
}
