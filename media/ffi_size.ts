// size_t arguments for Deno FFI calls on the media path.
//
// Deno's fast FFI call takes a 64-bit integer only as a BigInt: a number
// there deoptimizes the calling function (and whatever inlined it, here
// the whole forwarding path) each time V8 optimizes it, until V8 gives up
// optimizing it at all. BigInt(n) would allocate per call, so the lengths
// packets have come from a table.

const SMALL: readonly bigint[] = Array.from(
  { length: 2049 },
  (_, n) => BigInt(n),
);

/** `n` (a non-negative integer) as a size_t argument. */
export function sizeT(n: number): bigint {
  return n < SMALL.length ? SMALL[n] : BigInt(n);
}
