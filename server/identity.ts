// A node id that survives restarts, so trunked peers recognise this server
// (and its own media coming back round) even when its name or address changes.

import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { ConfigError, ensureDataDir } from "./config.ts";
import { errorMessage, log } from "./log.ts";

const NODE_ID = /^[0-9a-f]{32}$/;

/** Reads dataDir/node-id, creating it (and dataDir) on first use or replacing it if corrupt. */
export async function loadNodeIdentity(
  dataDir: string,
): Promise<{ nodeId: string; created: boolean }> {
  const file = join(dataDir, "node-id");
  await ensureDataDir(dataDir);
  try {
    const stored = (await Deno.readTextFile(file)).trim();
    if (NODE_ID.test(stored)) return { nodeId: stored, created: false };
    log.warn(
      "the node id file is corrupt; replacing it, so trunked servers will see this as a new node",
      {
        file,
      },
    );
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new ConfigError(
        `cannot read ${JSON.stringify(file)} (${errorMessage(err)})`,
      );
    }
  }
  const nodeId = randomBytes(16).toString("hex");
  try {
    await Deno.writeTextFile(file, nodeId + "\n");
  } catch (err) {
    throw new ConfigError(
      `cannot write ${JSON.stringify(file)} (${errorMessage(err)})`,
    );
  }
  return { nodeId, created: true };
}
