// The fallback when libcrypto cannot be loaded (no --allow-ffi, no OpenSSL
// 3). node:crypto offers no way to re-key or re-IV a cipher object, so:
// - counter mode runs one AES-128-ECB cipher per key for the whole session
//   and turns it into a keystream by encrypting the packet's counter blocks,
//   instead of building an aes-128-ctr cipher per packet;
// - HMAC-SHA1 is TypeScript with the key's pad states cached (hmac_sha1.ts);
// - GCM still builds a cipher per packet: there is no reusable primitive to
//   build it from short of GHASH in TypeScript, which is no faster here.
import { Buffer } from "node:buffer";
import {
  type Cipheriv,
  createCipheriv,
  createDecipheriv,
  type DecipherGCM,
} from "node:crypto";
import type {
  CtrCipher,
  GcmCipher,
  HmacSha1,
  SrtpCryptoBackend,
} from "./backend.ts";
import { TsHmacSha1 } from "./hmac_sha1.ts";

const AES_BLOCK = 16;

class EcbKeystreamCtr implements CtrCipher {
  readonly #ecb: Cipheriv;
  #counters = new Uint8Array(128 * AES_BLOCK);

  constructor(key: Uint8Array) {
    if (key.length !== 16) throw new RangeError("AES-128 needs a 16-byte key");
    this.#ecb = createCipheriv("aes-128-ecb", key, null);
    this.#ecb.setAutoPadding(false);
  }

  apply(iv: Uint8Array, input: Uint8Array, output: Uint8Array): void {
    const length = input.length;
    if (length === 0) return;
    const blocks = Math.ceil(length / AES_BLOCK);
    if (this.#counters.length < blocks * AES_BLOCK) {
      this.#counters = new Uint8Array(blocks * AES_BLOCK);
    }
    const counters = this.#counters;
    // The counter is the IV plus the block number, as a 128-bit big-endian
    // sum; SRTP's IVs end in 16 zero bits so the carry never leaves the
    // last word, but the general case is kept for correctness.
    const low = ((iv[12] << 24) | (iv[13] << 16) | (iv[14] << 8) | iv[15]) >>>
      0;
    for (let block = 0; block < blocks; block++) {
      const o = block * AES_BLOCK;
      for (let i = 0; i < 12; i++) counters[o + i] = iv[i];
      let word = low + block;
      if (word > 0xffffffff) {
        word -= 0x100000000;
        for (let i = o + 11; i >= o && ++counters[i] === 0x100; i--) {
          counters[i] = 0;
        }
      }
      counters[o + 12] = word >>> 24;
      counters[o + 13] = word >>> 16;
      counters[o + 14] = word >>> 8;
      counters[o + 15] = word;
    }
    // Allocates the keystream buffer: node:crypto has no update-into.
    const keystream = this.#ecb.update(
      counters.subarray(0, blocks * AES_BLOCK),
    );
    for (let i = 0; i < length; i++) output[i] = input[i] ^ keystream[i];
  }

  dispose(): void {}
}

class PerPacketGcm implements GcmCipher {
  readonly #key: Buffer;

  constructor(key: Uint8Array) {
    if (key.length !== 16) throw new RangeError("AES-128 needs a 16-byte key");
    this.#key = Buffer.from(key);
  }

  seal(
    iv: Uint8Array,
    aad: Uint8Array,
    input: Uint8Array,
    output: Uint8Array,
    tagOut: Uint8Array,
  ): void {
    const cipher = createCipheriv("aes-128-gcm", this.#key, iv);
    cipher.setAAD(aad);
    output.set(cipher.update(input));
    cipher.final();
    tagOut.set(cipher.getAuthTag());
  }

  open(
    iv: Uint8Array,
    aad: Uint8Array,
    input: Uint8Array,
    output: Uint8Array,
    tag: Uint8Array,
  ): boolean {
    const decipher: DecipherGCM = createDecipheriv(
      "aes-128-gcm",
      this.#key,
      iv,
    );
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    output.set(decipher.update(input));
    try {
      decipher.final();
      return true;
    } catch {
      return false;
    }
  }

  dispose(): void {}
}

export const nodeCryptoBackend: SrtpCryptoBackend = {
  name: "node",
  description: "node:crypto (AES-ECB keystream, TypeScript HMAC-SHA1)",
  createCtr: (key: Uint8Array): CtrCipher => new EcbKeystreamCtr(key),
  createHmacSha1: (key: Uint8Array): HmacSha1 => new TsHmacSha1(key),
  createGcm: (key: Uint8Array): GcmCipher => new PerPacketGcm(key),
};
