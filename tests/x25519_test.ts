// Native X25519 (media/x25519.ts) against RFC 7748's test vector and
// tweetnacl's own JavaScript, which it replaces inside werift's handshakes.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import nacl from "tweetnacl";
import { applyNativeX25519, x25519, x25519KeyPair } from "../media/x25519.ts";

// Captured before anything in this process patches them.
const pureScalarMult = nacl.scalarMult;
const pureBase = nacl.scalarMult.base;
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const bytes = (text: string) => new Uint8Array(Buffer.from(text, "hex"));

Deno.test("X25519 gives RFC 7748's shared secret from both sides", () => {
  const alice = bytes(
    "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
  );
  const alicePublic = bytes(
    "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
  );
  const bob = bytes(
    "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
  );
  const bobPublic = bytes(
    "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
  );
  const shared =
    "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
  assert.equal(hex(x25519(alice, bobPublic)), shared);
  assert.equal(hex(x25519(bob, alicePublic)), shared);
});

Deno.test("key pairs and secrets match tweetnacl's for random keys", () => {
  for (let i = 0; i < 20; i++) {
    const ours = x25519KeyPair();
    assert.equal(ours.secretKey.buffer.byteLength, 32, "owns its buffer");
    assert.equal(ours.publicKey.length, 32);
    assert.equal(hex(ours.publicKey), hex(pureBase(ours.secretKey)));
    const peer = new Uint8Array(randomBytes(32));
    const peerPublic = pureBase(peer);
    assert.equal(
      hex(x25519(ours.secretKey, peerPublic)),
      hex(pureScalarMult(ours.secretKey, peerPublic)),
    );
    assert.equal(
      hex(x25519(peer, ours.publicKey)),
      hex(x25519(ours.secretKey, peerPublic)),
    );
  }
  assert.throws(
    () => x25519(new Uint8Array(31), new Uint8Array(32)),
    RangeError,
  );
});

Deno.test("applying it replaces the two functions werift calls", () => {
  applyNativeX25519();
  applyNativeX25519();
  assert.notEqual(nacl.scalarMult, pureScalarMult);
  assert.equal(nacl.scalarMult.base, pureBase, "the rest of tweetnacl stays");
  const pair = nacl.box.keyPair();
  assert.equal(pair.secretKey.buffer.byteLength, 32);
  assert.equal(hex(pair.publicKey), hex(pureBase(pair.secretKey)));
  const peer = nacl.box.keyPair();
  assert.equal(
    hex(nacl.scalarMult(pair.secretKey, peer.publicKey)),
    hex(pureScalarMult(pair.secretKey, peer.publicKey)),
  );
});
