// RtspClient against a scripted camera on loopback whose answers go wrong at
// awkward moments. Deno's test sanitizers fail a test that ends with timers
// still running, so these tests also check that a session that ends early
// leaves nothing behind; open sockets are counted in a process of their own.
import assert from "node:assert/strict";
import { RtspClient, RtspClientError } from "../media/rtsp/client.ts";
import { runLeakScenario } from "./support/leak_scenarios.ts";
import { ignoreMedia, scriptedCamera } from "./support/scripted_camera.ts";

Deno.test("a PLAY answer followed by junk ends the session without leaving its timers running", async () => {
  let channel = 0;
  const camera = scriptedCamera((method, reply) => {
    if (method === "SETUP") {
      channel += 2;
      return reply(
        `Session: s1;timeout=60\r\nTransport: RTP/AVP/TCP;unicast;interleaved=${
          channel - 2
        }-${channel - 1}\r\n`,
      );
    }
    return method === "PLAY"
      ? reply("Session: s1\r\n") + "NOT RTSP AT ALL\r\n\r\n"
      : reply();
  });
  const client = new RtspClient(camera.url, { requestTimeoutMs: 2000 });
  try {
    const { sdp } = await client.describe();
    await client.setup(sdp.media, ignoreMedia);
    await assert.rejects(client.play(), RtspClientError);
    assert.ok((await client.ended) instanceof Error);
  } finally {
    client.close();
    await camera.close();
  }
});

Deno.test("a session ending while a UDP port pair is being bound leaves no socket open", async () => {
  const { before, after } = await runLeakScenario(
    "rtsp-udp-session-ends",
  ) as { before: number; after: number };
  assert.ok(
    after <= before,
    `open descriptors went from ${before} to ${after}`,
  );
});

Deno.test("a timeout under a second is worded in milliseconds", async () => {
  const camera = scriptedCamera((method, reply) =>
    method === "DESCRIBE" ? "" : reply()
  );
  const client = new RtspClient(camera.url, { requestTimeoutMs: 300 });
  try {
    await assert.rejects(
      client.describe(),
      /did not answer DESCRIBE within 300 ms/,
    );
  } finally {
    client.close();
    await camera.close();
  }
});
