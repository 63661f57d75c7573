// RtspClient against a scripted camera on loopback whose answers go wrong at
// awkward moments. Deno's test sanitizers fail a test that ends with timers
// or sockets still open, so these tests also check that a session that ends
// early leaves nothing running.
import assert from "node:assert/strict";
import { RtspClient, RtspClientError } from "../media/rtsp/client.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const SDP = [
  "v=0",
  "o=- 0 0 IN IP4 127.0.0.1",
  "s=scripted",
  "c=IN IP4 127.0.0.1",
  "t=0 0",
  "m=video 0 RTP/AVP 96",
  "a=rtpmap:96 H264/90000",
  "a=control:track1",
  "m=audio 0 RTP/AVP 0",
  "a=rtpmap:0 PCMU/8000",
  "a=control:track2",
  "",
].join("\r\n");

/** What the camera sends for a request: an answer's extra headers, or
 * whole bytes of its own (a reply followed by junk, say). */
type Script = (method: string, reply: (headers?: string) => string) => string;

/** A camera that answers each request on loopback as `script` says. */
function scriptedCamera(script: Script) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connections = new Set<Deno.Conn>();
  const serve = async (conn: Deno.Conn) => {
    connections.add(conn);
    const buffer = new Uint8Array(16384);
    let text = "";
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) return;
        text += decoder.decode(buffer.subarray(0, n));
        let end;
        while ((end = text.indexOf("\r\n\r\n")) >= 0) {
          const head = text.slice(0, end);
          text = text.slice(end + 4);
          const method = head.split(" ")[0];
          const cseq = head.match(/^CSeq: *(\d+)/im)?.[1] ?? "0";
          const reply = (headers = "") => {
            const body = method === "DESCRIBE" ? SDP : "";
            const length = body ? `Content-Length: ${body.length}\r\n` : "";
            return `RTSP/1.0 200 OK\r\nCSeq: ${cseq}\r\n${headers}${length}\r\n${body}`;
          };
          await conn.write(encoder.encode(script(method, reply)));
        }
      }
    } catch {
      // The client went away: nothing more to answer.
    } finally {
      if (connections.delete(conn)) conn.close();
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) serve(conn);
  })().catch(() => {});
  const { port } = listener.addr as Deno.NetAddr;
  return {
    url: `rtsp://127.0.0.1:${port}/stream`,
    async close() {
      listener.close();
      for (const conn of connections) conn.close();
      connections.clear();
      await accepting;
    },
  };
}

const sink = { onRtp() {}, onRtcp() {} };

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
    await client.setup(sdp.media, sink);
    await assert.rejects(client.play(), RtspClientError);
    assert.ok((await client.ended) instanceof Error);
  } finally {
    client.close();
    await camera.close();
  }
});

Deno.test("a session ending while a UDP port pair is being bound leaves no socket open", async () => {
  // Junk right behind the first SETUP's answer ends the session while the
  // client binds the second stream's pair.
  const openFiles = () => [...Deno.readDirSync("/proc/self/fd")].length;
  const before = openFiles();
  const camera = scriptedCamera((method, reply) =>
    method === "SETUP"
      ? reply(
        "Session: s2;timeout=60\r\nTransport: RTP/AVP;unicast;client_port=1-2;server_port=6000-6001\r\n",
      ) + "NOT RTSP AT ALL\r\n\r\n"
      : reply()
  );
  const client = new RtspClient(camera.url, {
    requestTimeoutMs: 2000,
    transport: "udp",
  });
  try {
    const { sdp } = await client.describe();
    await assert.rejects(client.setup(sdp.media, sink), RtspClientError);
  } finally {
    client.close();
    await camera.close();
  }
  assert.equal(openFiles(), before);
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
