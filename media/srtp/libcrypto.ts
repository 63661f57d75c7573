// SRTP's primitives from the system's OpenSSL 3 libcrypto through Deno FFI.
// node:crypto can only make a new cipher object per packet, which costs far
// more than the AES itself; here each SRTP session keeps its EVP contexts and
// a packet only resets the IV (EVP_CipherInit_ex with no cipher and no key)
// or re-initialises the HMAC from its cached key state (EVP_MAC_init with no
// key). HMAC goes through EVP_MAC, OpenSSL 3's API; HMAC_CTX is deprecated.
//
// Every call is synchronous and non-blocking, so Deno can use its fast call
// path; buffers are passed as typed arrays, never as raw addresses.
import type {
  CtrCipher,
  GcmCipher,
  HmacSha1,
  SrtpCryptoBackend,
} from "./backend.ts";
import { sizeT } from "../ffi_size.ts";

/** Names the one libcrypto to use instead of the candidates below. */
export const LIBCRYPTO_VARIABLE = "UMBRELLA_LIBCRYPTO";

/** Where Debian, Ubuntu, Fedora, Alpine/OpenWrt and Homebrew put it. */
export const LIBCRYPTO_CANDIDATES: readonly string[] = [
  "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
  "/usr/lib/aarch64-linux-gnu/libcrypto.so.3",
  "/usr/lib/arm-linux-gnueabihf/libcrypto.so.3",
  "/usr/lib64/libcrypto.so.3",
  "/usr/lib/libcrypto.so.3",
  "/lib/libcrypto.so.3",
  "/opt/homebrew/opt/openssl@3/lib/libcrypto.3.dylib",
  "/usr/local/opt/openssl@3/lib/libcrypto.3.dylib",
];

const SYMBOLS = {
  OpenSSL_version_num: { parameters: [], result: "usize" },
  EVP_aes_128_ctr: { parameters: [], result: "pointer" },
  EVP_aes_128_gcm: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  // (ctx, cipher, engine, key, iv, enc)
  EVP_CipherInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  // (ctx, out, int *outl, in, inl)
  EVP_CipherUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_CipherFinal_ex: {
    parameters: ["pointer", "buffer", "buffer"],
    result: "i32",
  },
  // (ctx, type, arg, ptr)
  EVP_CIPHER_CTX_ctrl: {
    parameters: ["pointer", "i32", "i32", "buffer"],
    result: "i32",
  },
  // (libctx, algorithm, properties)
  EVP_MAC_fetch: {
    parameters: ["pointer", "buffer", "pointer"],
    result: "pointer",
  },
  EVP_MAC_CTX_new: { parameters: ["pointer"], result: "pointer" },
  EVP_MAC_CTX_free: { parameters: ["pointer"], result: "void" },
  // (ctx, key, keylen, params)
  EVP_MAC_init: {
    parameters: ["pointer", "buffer", "usize", "buffer"],
    result: "i32",
  },
  EVP_MAC_update: {
    parameters: ["pointer", "buffer", "usize"],
    result: "i32",
  },
  // (ctx, out, size_t *outl, outsize)
  EVP_MAC_final: {
    parameters: ["pointer", "buffer", "buffer", "usize"],
    result: "i32",
  },
} as const;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const EVP_CTRL_GCM_GET_TAG = 0x10;
const EVP_CTRL_GCM_SET_TAG = 0x11;
const OSSL_PARAM_UTF8_STRING = 4;
const ENCRYPT = 1;
const DECRYPT = 0;
// size_t arguments are BigInts: Deno passes those on its fast call path
// (see ../ffi_size.ts).
const SHA1_LENGTH = 20n;
const GCM_TAG_LENGTH = 16;

/** A NUL-terminated string in its own ArrayBuffer, which V8 never moves
 * (small typed arrays made by size may live on the moving heap). */
function cString(s: string): Uint8Array {
  const bytes = new TextEncoder().encode(s);
  const out = new Uint8Array(new ArrayBuffer(bytes.length + 1));
  out.set(bytes);
  return out;
}

export class LibcryptoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LibcryptoError";
  }
}

function check(ok: number, what: string): void {
  if (ok !== 1) throw new LibcryptoError(`libcrypto: ${what} failed`);
}

// Native contexts are freed by dispose(); the registry is the backstop for
// sessions that are simply dropped (werift never tells a transport's SRTP
// session that it is finished).
type NativeHandle = {
  free: (p: Deno.PointerObject) => void;
  ptr: Deno.PointerObject;
};
const finalizer = new FinalizationRegistry<NativeHandle>((h) => h.free(h.ptr));

/** Owns one native pointer: a method called after dispose() throws instead of
 * touching freed memory. */
class Native {
  #handle: NativeHandle | undefined;

  constructor(
    ptr: Deno.PointerValue,
    free: (p: Deno.PointerObject) => void,
    what: string,
  ) {
    if (ptr === null) throw new LibcryptoError(`libcrypto: ${what} failed`);
    this.#handle = { free, ptr };
    finalizer.register(this, this.#handle, this);
  }

  get ptr(): Deno.PointerObject {
    const handle = this.#handle;
    if (!handle) {
      throw new LibcryptoError("libcrypto context used after dispose");
    }
    return handle.ptr;
  }

  dispose(): void {
    const handle = this.#handle;
    if (!handle) return;
    this.#handle = undefined;
    finalizer.unregister(this);
    handle.free(handle.ptr);
  }
}

class LibcryptoCtr implements CtrCipher {
  readonly #lib: Lib;
  readonly #ctx: Native;
  readonly #outLength = new Uint8Array(4);

  constructor(lib: Lib, key: Uint8Array) {
    if (key.length !== 16) throw new RangeError("AES-128 needs a 16-byte key");
    this.#lib = lib;
    this.#ctx = new Native(
      lib.EVP_CIPHER_CTX_new(),
      lib.EVP_CIPHER_CTX_free,
      "EVP_CIPHER_CTX_new",
    );
    check(
      lib.EVP_CipherInit_ex(
        this.#ctx.ptr,
        lib.EVP_aes_128_ctr(),
        null,
        key,
        new Uint8Array(16),
        ENCRYPT,
      ),
      "EVP_CipherInit_ex(aes-128-ctr)",
    );
  }

  apply(iv: Uint8Array, input: Uint8Array, output: Uint8Array): void {
    if (input.length === 0) return;
    const lib = this.#lib, ctx = this.#ctx.ptr;
    // No cipher and no key: OpenSSL keeps the key schedule and only loads
    // the new counter (and forgets any partial block of the last packet).
    check(
      lib.EVP_CipherInit_ex(ctx, null, null, null, iv, ENCRYPT),
      "EVP_CipherInit_ex(iv)",
    );
    check(
      lib.EVP_CipherUpdate(ctx, output, this.#outLength, input, input.length),
      "EVP_CipherUpdate(ctr)",
    );
  }

  dispose(): void {
    this.#ctx.dispose();
  }
}

class LibcryptoHmacSha1 implements HmacSha1 {
  readonly #lib: Lib;
  readonly #ctx: Native;
  readonly #outLength = new Uint8Array(8);

  constructor(
    lib: Lib,
    mac: Deno.PointerObject,
    params: Uint8Array,
    key: Uint8Array,
  ) {
    this.#lib = lib;
    this.#ctx = new Native(
      lib.EVP_MAC_CTX_new(mac),
      lib.EVP_MAC_CTX_free,
      "EVP_MAC_CTX_new",
    );
    check(
      lib.EVP_MAC_init(this.#ctx.ptr, key, BigInt(key.length), params),
      "EVP_MAC_init(HMAC-SHA1)",
    );
  }

  sign(data: Uint8Array, out: Uint8Array): void {
    const lib = this.#lib, ctx = this.#ctx.ptr;
    // A null key re-initialises from the key's cached inner/outer pads.
    check(lib.EVP_MAC_init(ctx, null, 0n, null), "EVP_MAC_init(reset)");
    check(lib.EVP_MAC_update(ctx, data, sizeT(data.length)), "EVP_MAC_update");
    check(
      lib.EVP_MAC_final(ctx, out, this.#outLength, SHA1_LENGTH),
      "EVP_MAC_final",
    );
  }

  dispose(): void {
    this.#ctx.dispose();
  }
}

class LibcryptoGcm implements GcmCipher {
  readonly #lib: Lib;
  readonly #key: Uint8Array;
  // GCM contexts keep their direction, and a session mostly goes one way,
  // so each direction's context is made on first use.
  #sealCtx: Native | undefined;
  #openCtx: Native | undefined;
  readonly #outLength = new Uint8Array(4);
  readonly #finalScratch = new Uint8Array(16);

  constructor(lib: Lib, key: Uint8Array) {
    if (key.length !== 16) throw new RangeError("AES-128 needs a 16-byte key");
    this.#lib = lib;
    this.#key = key.slice();
  }

  #context(direction: number): Deno.PointerObject {
    const lib = this.#lib;
    const ctx = new Native(
      lib.EVP_CIPHER_CTX_new(),
      lib.EVP_CIPHER_CTX_free,
      "EVP_CIPHER_CTX_new",
    );
    check(
      lib.EVP_CipherInit_ex(
        ctx.ptr,
        lib.EVP_aes_128_gcm(),
        null,
        this.#key,
        null,
        direction,
      ),
      "EVP_CipherInit_ex(aes-128-gcm)",
    );
    if (direction === ENCRYPT) this.#sealCtx = ctx;
    else this.#openCtx = ctx;
    return ctx.ptr;
  }

  seal(
    iv: Uint8Array,
    aad: Uint8Array,
    input: Uint8Array,
    output: Uint8Array,
    tagOut: Uint8Array,
  ): void {
    const lib = this.#lib, outLength = this.#outLength;
    const ctx = this.#sealCtx?.ptr ?? this.#context(ENCRYPT);
    check(
      lib.EVP_CipherInit_ex(ctx, null, null, null, iv, ENCRYPT),
      "EVP_CipherInit_ex(iv)",
    );
    this.#process(ctx, aad, input, output);
    check(
      lib.EVP_CipherFinal_ex(ctx, this.#finalScratch, outLength),
      "EVP_CipherFinal_ex",
    );
    check(
      lib.EVP_CIPHER_CTX_ctrl(
        ctx,
        EVP_CTRL_GCM_GET_TAG,
        GCM_TAG_LENGTH,
        tagOut,
      ),
      "EVP_CTRL_GCM_GET_TAG",
    );
  }

  open(
    iv: Uint8Array,
    aad: Uint8Array,
    input: Uint8Array,
    output: Uint8Array,
    tag: Uint8Array,
  ): boolean {
    const lib = this.#lib, outLength = this.#outLength;
    const ctx = this.#openCtx?.ptr ?? this.#context(DECRYPT);
    check(
      lib.EVP_CipherInit_ex(ctx, null, null, null, iv, DECRYPT),
      "EVP_CipherInit_ex(iv)",
    );
    check(
      lib.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LENGTH, tag),
      "EVP_CTRL_GCM_SET_TAG",
    );
    this.#process(ctx, aad, input, output);
    // Final fails exactly when the tag does not match.
    return lib.EVP_CipherFinal_ex(ctx, this.#finalScratch, outLength) === 1;
  }

  /** Authenticates `aad`, then encrypts or decrypts `input` into `output`,
   * in the direction the context was made for. */
  #process(
    ctx: Deno.PointerObject,
    aad: Uint8Array,
    input: Uint8Array,
    output: Uint8Array,
  ): void {
    const lib = this.#lib, outLength = this.#outLength;
    check(
      lib.EVP_CipherUpdate(ctx, null, outLength, aad, aad.length),
      "EVP_CipherUpdate(aad)",
    );
    if (input.length > 0) {
      check(
        lib.EVP_CipherUpdate(ctx, output, outLength, input, input.length),
        "EVP_CipherUpdate(gcm)",
      );
    }
  }

  dispose(): void {
    this.#sealCtx?.dispose();
    this.#openCtx?.dispose();
  }
}

/** An OSSL_PARAM array { "digest": name }, which points into `strings`:
 * whoever keeps the array must keep those too. */
function digestParams(name: string, strings: Uint8Array[]): Uint8Array {
  const key = cString("digest");
  const value = cString(name);
  strings.push(key, value);
  // struct ossl_param_st { const char *key; unsigned int data_type;
  //   void *data; size_t data_size; size_t return_size; } = 5 words on
  // 64-bit targets (data_type is padded); a zeroed entry ends the array.
  const words = new BigUint64Array(new ArrayBuffer(80));
  words[0] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(key)));
  new Uint32Array(words.buffer)[2] = OSSL_PARAM_UTF8_STRING;
  words[2] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(value)));
  words[3] = BigInt(value.length - 1);
  words[4] = 0xffffffffffffffffn; // OSSL_PARAM_UNMODIFIED
  return new Uint8Array(words.buffer);
}

class LibcryptoBackend implements SrtpCryptoBackend {
  readonly name = "libcrypto";
  readonly description: string;
  readonly #lib: Lib;
  readonly #hmac: Deno.PointerObject;
  readonly #paramStrings: Uint8Array[] = [];
  readonly #sha1Params = digestParams("SHA1", this.#paramStrings);

  constructor(lib: Lib, hmac: Deno.PointerObject, description: string) {
    this.#lib = lib;
    this.#hmac = hmac;
    this.description = description;
  }

  createCtr(key: Uint8Array): CtrCipher {
    return new LibcryptoCtr(this.#lib, key);
  }

  createHmacSha1(key: Uint8Array): HmacSha1 {
    return new LibcryptoHmacSha1(this.#lib, this.#hmac, this.#sha1Params, key);
  }

  createGcm(key: Uint8Array): GcmCipher {
    return new LibcryptoGcm(this.#lib, key);
  }
}

const opened = new Map<string, LibcryptoBackend>();

/** Opens OpenSSL 3's libcrypto from the first candidate path that FFI is
 * permitted for and that loads. Never prompts: without --allow-ffi (or with
 * it scoped to other paths) it reports why and the caller falls back. */
export function loadLibcryptoBackend(
  candidates: readonly string[] = LIBCRYPTO_CANDIDATES,
): { backend: SrtpCryptoBackend } | { reason: string } {
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    // A grant scoped to paths reports "prompt" for the unscoped query.
    const permitted = candidates.some((path) =>
      Deno.permissions.querySync({ name: "ffi", path }).state === "granted"
    );
    if (!permitted) return { reason: "FFI is not permitted (--allow-ffi)" };
  }
  const failures: string[] = [];
  for (const path of candidates) {
    const cached = opened.get(path);
    if (cached) return { backend: cached };
    if (Deno.permissions.querySync({ name: "ffi", path }).state !== "granted") {
      continue;
    }
    let library: Deno.DynamicLibrary<typeof SYMBOLS>;
    try {
      library = Deno.dlopen(path, SYMBOLS);
    } catch (error) {
      // Missing files are the common case and not worth a line each.
      if (!/no such file|cannot open shared object/i.test(String(error))) {
        failures.push(
          `${path}: ${error instanceof Error ? error.message : error}`,
        );
      }
      continue;
    }
    const lib = library.symbols;
    const version = Number(lib.OpenSSL_version_num());
    if (version < 0x30000000) {
      failures.push(`${path}: OpenSSL ${version.toString(16)} is older than 3`);
      library.close();
      continue;
    }
    const hmac = lib.EVP_MAC_fetch(null, cString("HMAC"), null);
    if (hmac === null) {
      failures.push(`${path}: EVP_MAC_fetch("HMAC") failed`);
      library.close();
      continue;
    }
    const major = version >>> 28,
      minor = (version >>> 20) & 0xff,
      patch = (version >>> 4) & 0xff;
    const backend = new LibcryptoBackend(
      lib,
      hmac,
      `${path} (OpenSSL ${major}.${minor}.${patch})`,
    );
    opened.set(path, backend);
    return { backend };
  }
  return {
    reason: failures.length > 0
      ? `no usable libcrypto: ${failures.join("; ")}`
      : `no libcrypto 3 at ${candidates.join(", ")}`,
  };
}
