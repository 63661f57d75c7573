// The three primitives SRTP needs, keyed once per session so that protecting
// a packet never builds a cipher: AES-128 counter mode, HMAC-SHA1 and
// AES-128-GCM. Two implementations exist: the system's libcrypto through Deno
// FFI (media/srtp/libcrypto.ts) and node:crypto plus TypeScript as the
// fallback that runs everywhere (media/srtp/node_backend.ts).
import {
  LIBCRYPTO_CANDIDATES,
  LIBCRYPTO_VARIABLE,
  loadLibcryptoBackend,
} from "./libcrypto.ts";
import { nodeCryptoBackend } from "./node_backend.ts";

/** AES-128 in counter mode under one key. */
export interface CtrCipher {
  /** XORs the keystream that starts at the 16-byte counter block `iv` onto
   * `input`, writing `input.length` bytes to `output` (which may be `input`
   * itself, or start at the same address). */
  apply(iv: Uint8Array, input: Uint8Array, output: Uint8Array): void;
  dispose(): void;
}

/** HMAC-SHA1 under one key. */
export interface HmacSha1 {
  /** Writes the 20-byte MAC of `data` to the start of `out`. */
  sign(data: Uint8Array, out: Uint8Array): void;
  dispose(): void;
}

/** AES-128-GCM under one key, with 12-byte IVs and 16-byte tags. */
export interface GcmCipher {
  /** Encrypts `input` into `output` (same length) and writes the tag to the
   * first 16 bytes of `tagOut`. */
  seal(
    iv: Uint8Array,
    aad: Uint8Array,
    input: Uint8Array,
    output: Uint8Array,
    tagOut: Uint8Array,
  ): void;
  /** Decrypts `input` into `output`; false when the tag does not verify, in
   * which case `output` holds garbage. */
  open(
    iv: Uint8Array,
    aad: Uint8Array,
    input: Uint8Array,
    output: Uint8Array,
    tag: Uint8Array,
  ): boolean;
  dispose(): void;
}

export interface SrtpCryptoBackend {
  /** "libcrypto" or "node", for start-up logs and benchmarks. */
  readonly name: string;
  /** One line on where the primitives come from (library path, version). */
  readonly description: string;
  createCtr(key: Uint8Array): CtrCipher;
  createHmacSha1(key: Uint8Array): HmacSha1;
  createGcm(key: Uint8Array): GcmCipher;
}

export interface BackendSelection {
  backend: SrtpCryptoBackend;
  /** Why libcrypto is not in use; undefined when it is. */
  fallbackReason?: string;
}

let selected: BackendSelection | undefined;

/** UMBRELLA_LIBCRYPTO names the one libcrypto to use: a package that
 * carries its own (the OpenWrt package's glibc build) must not pick up the
 * system's, built for another C library. */
function libcryptoCandidates(): readonly string[] {
  const permitted = Deno.permissions.querySync({
    name: "env",
    variable: LIBCRYPTO_VARIABLE,
  }).state === "granted";
  const path = permitted ? Deno.env.get(LIBCRYPTO_VARIABLE) : undefined;
  return path ? [path] : LIBCRYPTO_CANDIDATES;
}

/** The fastest backend this process can use: libcrypto when FFI is permitted
 * and the library loads, node:crypto otherwise. Decided once; never prompts
 * for a permission. */
export function selectSrtpBackend(): BackendSelection {
  if (selected) return selected;
  const loaded = loadLibcryptoBackend(libcryptoCandidates());
  selected = "backend" in loaded
    ? { backend: loaded.backend }
    : { backend: nodeCryptoBackend, fallbackReason: loaded.reason };
  return selected;
}
