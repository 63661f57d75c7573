import assert from "node:assert/strict";
import { join } from "node:path";
import { loadNodeIdentity } from "../server/identity.ts";

const NODE_ID = /^[0-9a-f]{32}$/;

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "umbrella-identity-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs fn while collecting what the logger writes to stderr. */
async function captureLog(fn: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const original = console.error;
  console.error = (line: string) => lines.push(line);
  try {
    await fn();
  } finally {
    console.error = original;
  }
  return lines;
}

Deno.test("the node id is created once and then reused", async () => {
  await withTempDir(async (dir) => {
    const dataDir = join(dir, "not", "yet", "there");
    const first = await loadNodeIdentity(dataDir);
    assert.equal(first.created, true);
    assert.match(first.nodeId, NODE_ID);
    assert.equal(
      (await Deno.readTextFile(join(dataDir, "node-id"))).trim(),
      first.nodeId,
    );

    const second = await loadNodeIdentity(dataDir);
    assert.deepEqual(second, { nodeId: first.nodeId, created: false });
  });
});

Deno.test("different data directories get different node ids", async () => {
  await withTempDir(async (dir) => {
    const a = await loadNodeIdentity(join(dir, "a"));
    const b = await loadNodeIdentity(join(dir, "b"));
    assert.notEqual(a.nodeId, b.nodeId);
  });
});

Deno.test("a hand-written node id with surrounding whitespace is kept", async () => {
  await withTempDir(async (dir) => {
    const id = "0123456789abcdef0123456789abcdef";
    await Deno.writeTextFile(join(dir, "node-id"), `  ${id}\n\n`);
    assert.deepEqual(await loadNodeIdentity(dir), {
      nodeId: id,
      created: false,
    });
  });
});

Deno.test("a corrupt node id file is replaced with a warning", async () => {
  await withTempDir(async (dir) => {
    for (
      const corrupt of [
        "",
        "not-an-id",
        "0123456789ABCDEF0123456789ABCDEF",
        "abc".repeat(20),
      ]
    ) {
      await Deno.writeTextFile(join(dir, "node-id"), corrupt);
      let result: { nodeId: string; created: boolean } | undefined;
      const lines = await captureLog(async () => {
        result = await loadNodeIdentity(dir);
      });
      assert.equal(result?.created, true, corrupt);
      assert.match(result!.nodeId, NODE_ID);
      assert.equal(
        (await Deno.readTextFile(join(dir, "node-id"))).trim(),
        result!.nodeId,
      );
      assert.equal(lines.length, 1);
      assert.match(
        lines[0],
        /^\d{4}-\d\d-\d\dT[\d:.]+Z WARN {2}the node id file is corrupt.* file=\S+node-id$/,
      );
      assert.deepEqual(await loadNodeIdentity(dir), {
        nodeId: result!.nodeId,
        created: false,
      });
    }
  });
});
