// X25519 for werift's DTLS handshakes in native code. werift computes the
// ECDHE key pair and shared secret of every handshake with tweetnacl, in
// JavaScript: about an eighth of Umbrella's CPU during a burst of joins. The
// same functions of the tweetnacl module werift imports are replaced here by
// node:crypto's X25519 (RFC 7748, the same clamping, the same results), so
// werift's code is untouched.
import { Buffer } from "node:buffer";
import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
} from "node:crypto";
import nacl from "tweetnacl";

/** DER framing of raw X25519 keys (RFC 8410): 32 key bytes follow each. */
const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");
const KEY_BYTES = 32;

/** The shared secret of a raw private key and a raw public key. */
export function x25519(privateKey: Uint8Array, publicKey: Uint8Array) {
  if (privateKey.length !== KEY_BYTES || publicKey.length !== KEY_BYTES) {
    throw new RangeError("X25519 keys are 32 bytes");
  }
  return new Uint8Array(diffieHellman({
    privateKey: createPrivateKey({
      key: Buffer.concat([PKCS8_PREFIX, privateKey]),
      format: "der",
      type: "pkcs8",
    }),
    publicKey: createPublicKey({
      key: Buffer.concat([SPKI_PREFIX, publicKey]),
      format: "der",
      type: "spki",
    }),
  }));
}

/** A fresh key pair as tweetnacl's box.keyPair returns it; each key owns
 * its 32-byte buffer (werift reads `secretKey.buffer`). */
export function x25519KeyPair(): {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
} {
  const { publicKey, privateKey } = generateKeyPairSync("x25519");
  const spki = publicKey.export({ format: "der", type: "spki" });
  const pkcs8 = privateKey.export({ format: "der", type: "pkcs8" });
  return {
    publicKey: new Uint8Array(spki.subarray(SPKI_PREFIX.length)),
    secretKey: new Uint8Array(pkcs8.subarray(PKCS8_PREFIX.length)),
  };
}

let applied = false;

/** Makes tweetnacl's scalarMult and box.keyPair (the two werift calls) use
 * node:crypto. Idempotent. */
export function applyNativeX25519(): void {
  if (applied) return;
  applied = true;
  const scalarMult = Object.assign(
    (n: Uint8Array, p: Uint8Array) => x25519(n, p),
    { base: nacl.scalarMult.base, scalarLength: 32, groupElementLength: 32 },
  );
  nacl.scalarMult = scalarMult as typeof nacl.scalarMult;
  nacl.box.keyPair = Object.assign(x25519KeyPair, {
    fromSecretKey: nacl.box.keyPair.fromSecretKey,
  });
}
