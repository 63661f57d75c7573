// Run by tests/hot_path_test.ts with V8's --trace-deopt: drives the per
// packet send path (SRTP sealing through libcrypto, sendto through libc)
// long enough for V8 to optimize it, so the test can read from the trace
// whether optimized code had to be thrown away.
import dgram from "node:dgram";
import { RtpHeader } from "werift";
import {
  SRTP_AEAD_AES_128_GCM,
  SrtpContext,
} from "../../media/srtp/context.ts";
import { loadLibcryptoBackend } from "../../media/srtp/libcrypto.ts";
import { FastSrtpSession } from "../../media/srtp/werift_srtp_patch.ts";
import {
  loadNativeUdp,
  nativeSocketFor,
  NativeUdpSocket,
} from "../../media/native_udp.ts";
import { PacketScratch } from "../../media/packet_scratch.ts";

const PACKETS = 200_000;

const crypto = loadLibcryptoBackend();
if (!("backend" in crypto)) throw new Error(crypto.reason);
const key = new Uint8Array(16).fill(7), salt = new Uint8Array(12).fill(9);
const context = SrtpContext.fromMasterKey(
  SRTP_AEAD_AES_128_GCM,
  key,
  salt,
  crypto.backend,
);
const session = new FastSrtpSession(context, context);
const header = new RtpHeader();
header.ssrc = 1234;
header.payloadType = 96;

const sink = dgram.createSocket("udp4");
const source = dgram.createSocket("udp4");
await new Promise<void>((done) => sink.bind(0, "127.0.0.1", done));
await new Promise<void>((done) => source.bind(0, "127.0.0.1", done));
const port = sink.address().port;
const made = nativeSocketFor(loadNativeUdp(), source);
if (!(made instanceof NativeUdpSocket)) throw new Error(made.reason);
const sender: NativeUdpSocket = made;

const scratch = new PacketScratch(2048);
const payloads = [600, 1000, 1150].map((n) => new Uint8Array(n));
/** Named, so the test can tell its deopts (with the calls it inlined). */
function drive(): number {
  let sent = 0;
  for (let i = 0; i < PACKETS; i++) {
    header.sequenceNumber = i & 0xffff;
    const packet = session.encryptInto(scratch, payloads[i % 3], header);
    if (sender.send(packet, "127.0.0.1", port)) sent++;
  }
  return sent;
}
const sent = drive();
sender.close();
sink.close();
source.close();
console.log(`HOT_PATH_DONE ${sent}`);
