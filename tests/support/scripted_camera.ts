// A camera on loopback that answers each RTSP request as a test's script
// says, to make answers go wrong at awkward moments.
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
export type Script = (
  method: string,
  reply: (headers?: string) => string,
) => string;

/** A camera that answers each request on loopback as `script` says. */
export function scriptedCamera(script: Script) {
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

/** A media sink that drops what it is given. */
export const ignoreMedia = { onRtp() {}, onRtcp() {} };
