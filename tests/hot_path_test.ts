// The per-packet send path must stay in V8's optimized code. A call V8
// cannot make on Deno's fast FFI path (a 64-bit integer given as a number,
// for one) throws the optimized code away each time it is made, and
// forwarding then runs unoptimized: in the benchmark that cost 15-20% of
// the SFU's CPU per forwarded packet.
import assert from "node:assert/strict";

Deno.test("sealing and sending a packet never deoptimizes", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-ffi",
      "--allow-read",
      "--allow-env",
      "--allow-net",
      "--v8-flags=--trace-deopt",
      new URL("./support/hot_path_child.ts", import.meta.url).pathname,
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  });
  const { code, stdout, stderr } = await child.output();
  const out = new TextDecoder().decode(stdout);
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const done = out.match(/HOT_PATH_DONE (\d+)/);
  assert.ok(done, "the child drove the send path to the end");
  assert.ok(Number(done[1]) > 0, "the sends reached the socket");
  // Only deopts of our own per-packet functions (and of the loop driving
  // them) count. "Insufficient type feedback" is V8 meeting a branch for
  // the first time (the sequence number wrapping, say) and happens once,
  // and on-stack replacement moves a running loop to better code; anything
  // else means optimized code V8 cannot keep.
  const ours = out.split("\n").filter((line) =>
    /^\[bailout /.test(line) &&
    !/reason: (Insufficient type feedback|prepare for on stack replacement)/
      .test(line) &&
    /<JSFunction (send|encryptInto|sealRtp|seal|upTo|#process|writeRtpHeader|#rtpGcmIv|#sendRoc|drive) /
      .test(line)
  );
  assert.deepEqual(ours, []);
});
