// HMAC-SHA1 in TypeScript for the fallback backend. node:crypto's Hmac
// objects cannot be reset, so every packet would build one (about 11 µs in
// Deno for a 1200-byte packet); here the key's inner and outer pad states are
// hashed once and each packet only runs the compression function over its
// own bytes, with no allocation.
import type { HmacSha1 } from "./backend.ts";

const BLOCK = 64;

export class TsHmacSha1 implements HmacSha1 {
  readonly #innerStart = new Int32Array(5);
  readonly #outerStart = new Int32Array(5);
  readonly #state = new Int32Array(5);
  readonly #w = new Int32Array(80);
  /** The last one or two blocks of a message, with SHA-1's padding. */
  readonly #tail = new Uint8Array(2 * BLOCK);

  constructor(key: Uint8Array) {
    const block = new Uint8Array(BLOCK);
    if (key.length > BLOCK) {
      const hashed = new Uint8Array(20);
      this.#hash(INITIAL_STATE, 0, key, hashed);
      block.set(hashed);
    } else {
      block.set(key);
    }
    for (let i = 0; i < BLOCK; i++) block[i] ^= 0x36;
    this.#state.set(INITIAL_STATE);
    this.#compress(block, 0);
    this.#innerStart.set(this.#state);
    for (let i = 0; i < BLOCK; i++) block[i] ^= 0x36 ^ 0x5c;
    this.#state.set(INITIAL_STATE);
    this.#compress(block, 0);
    this.#outerStart.set(this.#state);
  }

  sign(data: Uint8Array, out: Uint8Array): void {
    this.#hash(this.#innerStart, BLOCK, data, out);
    // out now holds the inner digest, which is the whole outer message.
    this.#hash(
      this.#outerStart,
      BLOCK,
      out.length === 20 ? out : out.subarray(0, 20),
      out,
    );
  }

  dispose(): void {}

  /** SHA-1 of (`prefixLength` bytes already absorbed into `start`) + `data`,
   * written to out[0..20). `data` and `out` may overlap: data is consumed
   * before out is written. */
  #hash(
    start: Int32Array,
    prefixLength: number,
    data: Uint8Array,
    out: Uint8Array,
  ): void {
    const state = this.#state, tail = this.#tail;
    state.set(start);
    const length = data.length;
    const fullBlocksEnd = length - (length % BLOCK);
    for (let offset = 0; offset < fullBlocksEnd; offset += BLOCK) {
      this.#compress(data, offset);
    }
    const rest = length - fullBlocksEnd;
    for (let i = 0; i < rest; i++) tail[i] = data[fullBlocksEnd + i];
    tail[rest] = 0x80;
    const tailLength = rest + 9 > BLOCK ? 2 * BLOCK : BLOCK;
    tail.fill(0, rest + 1, tailLength - 4);
    // Message length in bits, big-endian; packets never reach 2^29 bytes.
    const bits = (prefixLength + length) * 8;
    tail[tailLength - 4] = bits >>> 24;
    tail[tailLength - 3] = bits >>> 16;
    tail[tailLength - 2] = bits >>> 8;
    tail[tailLength - 1] = bits;
    this.#compress(tail, 0);
    if (tailLength > BLOCK) this.#compress(tail, BLOCK);
    for (let i = 0; i < 5; i++) {
      const word = state[i];
      out[i * 4] = word >>> 24;
      out[i * 4 + 1] = word >>> 16;
      out[i * 4 + 2] = word >>> 8;
      out[i * 4 + 3] = word;
    }
  }

  #compress(bytes: Uint8Array, offset: number): void {
    const w = this.#w, state = this.#state;
    for (let t = 0; t < 16; t++) {
      const o = offset + t * 4;
      w[t] = (bytes[o] << 24) | (bytes[o + 1] << 16) | (bytes[o + 2] << 8) |
        bytes[o + 3];
    }
    for (let t = 16; t < 80; t++) {
      const x = w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16];
      w[t] = (x << 1) | (x >>> 31);
    }
    let a = state[0], b = state[1], c = state[2], d = state[3], e = state[4];
    let t = 0;
    for (; t < 20; t++) {
      const f = (b & c) | (~b & d);
      const next = (((a << 5) | (a >>> 27)) + f + e + 0x5a827999 + w[t]) | 0;
      e = d, d = c, c = (b << 30) | (b >>> 2), b = a, a = next;
    }
    for (; t < 40; t++) {
      const f = b ^ c ^ d;
      const next = (((a << 5) | (a >>> 27)) + f + e + 0x6ed9eba1 + w[t]) | 0;
      e = d, d = c, c = (b << 30) | (b >>> 2), b = a, a = next;
    }
    for (; t < 60; t++) {
      const f = (b & c) | (b & d) | (c & d);
      const next = (((a << 5) | (a >>> 27)) + f + e + 0x8f1bbcdc + w[t]) | 0;
      e = d, d = c, c = (b << 30) | (b >>> 2), b = a, a = next;
    }
    for (; t < 80; t++) {
      const f = b ^ c ^ d;
      const next = (((a << 5) | (a >>> 27)) + f + e + 0xca62c1d6 + w[t]) | 0;
      e = d, d = c, c = (b << 30) | (b >>> 2), b = a, a = next;
    }
    state[0] = (state[0] + a) | 0;
    state[1] = (state[1] + b) | 0;
    state[2] = (state[2] + c) | 0;
    state[3] = (state[3] + d) | 0;
    state[4] = (state[4] + e) | 0;
  }
}

const INITIAL_STATE = new Int32Array([
  0x67452301,
  0xefcdab89 | 0,
  0x98badcfe | 0,
  0x10325476,
  0xc3d2e1f0 | 0,
]);
