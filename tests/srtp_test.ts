import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHmac, randomBytes } from "node:crypto";
import {
  MediaStreamTrack,
  RTCPeerConnection,
  type RTCRtpTransceiver,
  RtpHeader,
  RtpPacket,
  SrtcpSession,
  SrtpAuthenticationError,
  SrtpSession,
} from "werift";
import type { SrtpCryptoBackend } from "../media/srtp/backend.ts";
import {
  deriveSessionKeys,
  REPLAY_WINDOW,
  SRTP_AEAD_AES_128_GCM,
  SRTP_AES128_CM_HMAC_SHA1_80,
  SrtpContext,
  SrtpError,
  type SrtpProfile,
  type SrtpSessionKeys,
} from "../media/srtp/context.ts";
import { TsHmacSha1 } from "../media/srtp/hmac_sha1.ts";
import {
  LibcryptoError,
  loadLibcryptoBackend,
} from "../media/srtp/libcrypto.ts";
import { nodeCryptoBackend } from "../media/srtp/node_backend.ts";
import {
  applyFastSrtp,
  FastSrtcpSession,
  FastSrtpSession,
  usesFastSrtp,
  writeRtpHeader,
} from "../media/srtp/werift_srtp_patch.ts";
import { peerConnectionConfig } from "../media/rtc_config.ts";
import { PacketScratch } from "../media/packet_scratch.ts";

const hex = (s: string) =>
  new Uint8Array(Buffer.from(s.replace(/\s/g, ""), "hex"));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");

// The test task runs with --allow-all and the target is Debian with
// OpenSSL 3, so the FFI backend must load here.
const loaded = loadLibcryptoBackend();
if (!("backend" in loaded)) {
  throw new Error(`libcrypto backend did not load: ${loaded.reason}`);
}
const libcrypto = loaded.backend;
const BACKENDS: SrtpCryptoBackend[] = [libcrypto, nodeCryptoBackend];
const PROFILES: [string, SrtpProfile][] = [
  ["AES_CM_128_HMAC_SHA1_80", SRTP_AES128_CM_HMAC_SHA1_80],
  ["AEAD_AES_128_GCM", SRTP_AEAD_AES_128_GCM],
];

function eachBackend(
  name: string,
  fn: (backend: SrtpCryptoBackend) => void | Promise<void>,
) {
  for (const backend of BACKENDS) {
    Deno.test(`[${backend.name}] ${name}`, () => fn(backend));
  }
}

function eachBackendAndProfile(
  name: string,
  fn: (backend: SrtpCryptoBackend, profile: SrtpProfile) => void,
) {
  for (const backend of BACKENDS) {
    for (const [profileName, profile] of PROFILES) {
      Deno.test(`[${backend.name}, ${profileName}] ${name}`, () =>
        fn(backend, profile));
    }
  }
}

/** Session keys given directly, as RFC 7714's vectors and RFC 3711 B.2 do. */
function sessionKeys(key: string, salt: string): SrtpSessionKeys {
  return {
    rtpKey: hex(key),
    rtpSalt: hex(salt),
    rtpAuthKey: new Uint8Array(20),
    rtcpKey: hex(key),
    rtcpSalt: hex(salt),
    rtcpAuthKey: new Uint8Array(20),
  };
}

function rtpPacket(
  seq: number,
  ssrc: number,
  payload: Uint8Array,
  extra: Partial<RtpHeader> = {},
): Buffer {
  const header = new RtpHeader({
    payloadType: 96,
    sequenceNumber: seq & 0xffff,
    timestamp: seq * 3000 >>> 0,
    ssrc,
    ...extra,
  });
  return new RtpPacket(header, Buffer.from(payload)).serialize();
}

function masterPair(profile: SrtpProfile) {
  const saltLength = profile === SRTP_AEAD_AES_128_GCM ? 12 : 14;
  return {
    key: new Uint8Array(randomBytes(16)),
    salt: new Uint8Array(randomBytes(saltLength)),
  };
}

function pair(backend: SrtpCryptoBackend, profile: SrtpProfile) {
  const { key, salt } = masterPair(profile);
  return {
    sender: SrtpContext.fromMasterKey(profile, key, salt, backend),
    receiver: SrtpContext.fromMasterKey(profile, key, salt, backend),
  };
}

function assertSrtpError(fn: () => unknown, pattern?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(
      error instanceof SrtpError,
      `expected SrtpError, got ${error}`,
    );
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
}

// ---------------------------------------------------------------------------
// Known answers

eachBackend(
  "AES-CM keystream matches RFC 3711 B.2, first and last blocks",
  (backend) => {
    const ctr = backend.createCtr(hex("2B7E151628AED2A6ABF7158809CF4F3C"));
    const iv = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000");
    // The RFC's segment: 65282 blocks of keystream.
    const zeros = new Uint8Array(65282 * 16);
    const keystream = new Uint8Array(zeros.length);
    ctr.apply(iv, zeros, keystream);
    assert.equal(
      toHex(keystream.subarray(0, 48)),
      "e03ead0935c95e80e166b16dd92b4eb4" +
        "d23513162b02d0f72a43a2fe4a5f97ab" +
        "41e95b3bb0a2e8dd477901e4fca894c0",
    );
    assert.equal(
      toHex(keystream.subarray(keystream.length - 48)),
      "ec8cdf7398607cb0f2d21675ea9ea1e4" +
        "362b7c3c6773516318a077d7fc5073ae" +
        "6a2cc3787889374fbeb4c81b17ba6c44",
    );
    // Applying it again decrypts, also in place and after a partial block.
    const message = new Uint8Array(randomBytes(37));
    const encrypted = new Uint8Array(37);
    ctr.apply(iv, message, encrypted);
    ctr.apply(iv, encrypted, encrypted);
    assert.deepEqual(encrypted, message);
    ctr.dispose();
  },
);

eachBackend("the AES-CM counter carries across 32-bit words", (backend) => {
  // Counter blocks straddling a carry out of the low word, checked against
  // the same blocks started one at a time.
  const ctr = backend.createCtr(hex("2B7E151628AED2A6ABF7158809CF4F3C"));
  const iv = hex("00000000000000ffffffffffffffffff");
  const stream = new Uint8Array(48);
  ctr.apply(iv, new Uint8Array(48), stream);
  for (let block = 0; block < 3; block++) {
    const counter = new Uint8Array(16);
    let carry = block;
    for (let i = 15; i >= 0; i--) {
      const sum = iv[i] + carry;
      counter[i] = sum & 0xff;
      carry = sum >> 8;
    }
    const one = new Uint8Array(16);
    ctr.apply(counter, new Uint8Array(16), one);
    assert.deepEqual(stream.subarray(block * 16, block * 16 + 16), one);
  }
  ctr.dispose();
});

eachBackend("key derivation matches RFC 3711 B.3", (backend) => {
  const keys = deriveSessionKeys(
    SRTP_AES128_CM_HMAC_SHA1_80,
    hex("E1F97A0D3E018BE0D64FA32C06DE4139"),
    hex("0EC675AD498AFEEBB6960B3AABE6"),
    backend,
  );
  assert.equal(toHex(keys.rtpKey), "c61e7a93744f39ee10734afe3ff7a087");
  assert.equal(toHex(keys.rtpSalt), "30cbbc08863d8c85d49db34a9ae1");
  assert.equal(
    toHex(keys.rtpAuthKey),
    "cebe321f6ff7716b6fd4ab49af256a156d38baa4",
  );
});

eachBackend(
  "an RTP packet's keystream is RFC 3711 B.2's for SSRC 0, index 0",
  (backend) => {
    const context = new SrtpContext(
      SRTP_AES128_CM_HMAC_SHA1_80,
      sessionKeys(
        "2B7E151628AED2A6ABF7158809CF4F3C",
        "F0F1F2F3F4F5F6F7F8F9FAFBFCFD",
      ),
      backend,
    );
    const out = context.protectRtp(rtpPacket(0, 0, new Uint8Array(32)));
    assert.equal(
      toHex(out.subarray(12, 44)),
      "e03ead0935c95e80e166b16dd92b4eb4d23513162b02d0f72a43a2fe4a5f97ab",
    );
  },
);

// libsrtp's srtp_driver.c reference packets for AES_CM_128_HMAC_SHA1_80,
// keyed with RFC 3711 B.3's master key.
const LIBSRTP_KEY = "e1f97a0d3e018be0d64fa32c06de4139";
const LIBSRTP_SALT = "0ec675ad498afeebb6960b3aabe6";
const LIBSRTP_RTP = "800f1234decafbadcafebabe" + "ab".repeat(16);
const LIBSRTP_SRTP = "800f1234decafbadcafebabe" +
  "4e55dc4ce79978d88ca4d215949d2402" + "b78d6acc99ea179b8dbb";
const LIBSRTP_RTCP = "81c8000bcafebabe" + "ab".repeat(16);
const LIBSRTP_SRTCP = "81c8000bcafebabe" +
  "7128035be487b9bdbef89041f977a5a8" + "80000001" + "993e08cd54d6c1230798";

eachBackend(
  "AES-CM/HMAC-SHA1-80 RTP and RTCP match libsrtp's reference packets",
  (backend) => {
    const sender = SrtpContext.fromMasterKey(
      SRTP_AES128_CM_HMAC_SHA1_80,
      hex(LIBSRTP_KEY),
      hex(LIBSRTP_SALT),
      backend,
    );
    assert.equal(toHex(sender.protectRtp(hex(LIBSRTP_RTP))), LIBSRTP_SRTP);
    assert.equal(toHex(sender.protectRtcp(hex(LIBSRTP_RTCP))), LIBSRTP_SRTCP);
    const receiver = SrtpContext.fromMasterKey(
      SRTP_AES128_CM_HMAC_SHA1_80,
      hex(LIBSRTP_KEY),
      hex(LIBSRTP_SALT),
      backend,
    );
    assert.equal(toHex(receiver.unprotectRtp(hex(LIBSRTP_SRTP))), LIBSRTP_RTP);
    assert.equal(
      toHex(receiver.unprotectRtcp(hex(LIBSRTP_SRTCP))),
      LIBSRTP_RTCP,
    );
  },
);

// RFC 7714 §16.1.1 and §17.1.1 (AEAD_AES_128_GCM, session key and salt).
const GCM_KEY = "000102030405060708090a0b0c0d0e0f";
const GCM_SALT = "517569642070726f2071756f";
const GCM_RTP = "8040f17b8041f8d35501a0b2" +
  "47616c6c696120657374206f6d6e697320646976697361" +
  "20696e207061727465732074726573";
const GCM_SRTP = "8040f17b8041f8d35501a0b2" +
  "f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f" +
  "42a5f47a51c7d19b36de3adf8833899d7f27beb16a9152cf" +
  "765ee4390cce";
const GCM_RTCP = "81c8000d4d617273" +
  "4e5450314e5450325254502000" + "00042a0000e9304c756e61" +
  "deadbeef".repeat(5);
const GCM_SRTCP = "81c8000d4d617273" +
  "63e94885dcdab67ca727d7662f6b7e997ff5c0f7" +
  "6c06f32dc676a5f1730d6fda4ce09b4686303ded0bb9275b" +
  "c84aa45896cf4d2fc5abf87245d9eade" + "800005d4";

eachBackend(
  "AEAD_AES_128_GCM RTP and RTCP match RFC 7714's vectors",
  (backend) => {
    const keys = sessionKeys(GCM_KEY, GCM_SALT);
    const sender = new SrtpContext(SRTP_AEAD_AES_128_GCM, keys, backend);
    assert.equal(toHex(sender.protectRtp(hex(GCM_RTP))), GCM_SRTP);
    sender.setRtcpIndex(0x4d617273, 0x5d3);
    assert.equal(toHex(sender.protectRtcp(hex(GCM_RTCP))), GCM_SRTCP);
    const receiver = new SrtpContext(SRTP_AEAD_AES_128_GCM, keys, backend);
    assert.equal(toHex(receiver.unprotectRtp(hex(GCM_SRTP))), GCM_RTP);
    assert.equal(toHex(receiver.unprotectRtcp(hex(GCM_SRTCP))), GCM_RTCP);
  },
);

eachBackend(
  "HMAC-SHA1 matches RFC 2202 and node:crypto at every length",
  (backend) => {
    const digest = new Uint8Array(20);
    const rfc = backend.createHmacSha1(new Uint8Array(20).fill(0x0b));
    rfc.sign(new TextEncoder().encode("Hi There"), digest);
    assert.equal(toHex(digest), "b617318655057264e28bc0b6fb378c8ef146be00");
    const longKey = backend.createHmacSha1(new Uint8Array(80).fill(0xaa));
    longKey.sign(
      new TextEncoder().encode(
        "Test Using Larger Than Block-Size Key - Hash Key First",
      ),
      digest,
    );
    assert.equal(toHex(digest), "aa4ae5e15272d00e95705637ce8a3b55ed402112");
    const key = new Uint8Array(randomBytes(20));
    const hmac = backend.createHmacSha1(key);
    const data = new Uint8Array(randomBytes(300));
    // Every tail length: SHA-1's padding spills into a second block at 56.
    for (let length = 0; length <= data.length; length++) {
      hmac.sign(data.subarray(0, length), digest);
      const expected = createHmac("sha1", key).update(data.subarray(0, length))
        .digest("hex");
      assert.equal(toHex(digest), expected, `length ${length}`);
    }
  },
);

Deno.test("the TypeScript HMAC-SHA1 is the node backend's", () => {
  assert.ok(
    nodeCryptoBackend.createHmacSha1(new Uint8Array(20)) instanceof TsHmacSha1,
  );
});

// ---------------------------------------------------------------------------
// Byte-for-byte equality with werift's own SRTP

interface RandomRtp {
  header: RtpHeader;
  payload: Buffer;
}

function randomHeader(seq: number, ssrc: number, random: () => number) {
  const header = new RtpHeader({
    payloadType: Math.floor(random() * 128),
    marker: random() < 0.3,
    sequenceNumber: seq & 0xffff,
    timestamp: Math.floor(random() * 2 ** 32),
    ssrc,
    csrc: random() < 0.2 ? [Math.floor(random() * 2 ** 32), 7] : [],
  });
  const shape = random();
  if (shape < 0.3) {
    header.extensionProfile = 0xbede;
    header.extensions = [1, 3, 9].slice(0, 1 + Math.floor(random() * 3)).map((
      id,
    ) => ({
      id,
      payload: Buffer.from(randomBytes(1 + Math.floor(random() * 16))),
    }));
  } else if (shape < 0.45) {
    header.extensionProfile = 0x1000;
    header.extensions = [{
      id: 200,
      payload: Buffer.from(randomBytes(Math.floor(random() * 40))),
    }, { id: 3, payload: Buffer.alloc(0) }];
  }
  return header;
}

function randomPackets(
  count: number,
  firstSeq: number,
  ssrc: number,
): RandomRtp[] {
  const random = Math.random;
  const packets: RandomRtp[] = [];
  for (let i = 0; i < count; i++) {
    const length = i % 7 === 0 ? 1200 : Math.floor(random() * 1400);
    packets.push({
      header: randomHeader(firstSeq + i, ssrc, random),
      payload: Buffer.from(randomBytes(length)),
    });
  }
  return packets;
}

function weriftSessions(
  profile: SrtpProfile,
  key: Uint8Array,
  salt: Uint8Array,
) {
  const keys = {
    localMasterKey: Buffer.from(key),
    localMasterSalt: Buffer.from(salt),
    remoteMasterKey: Buffer.from(key),
    remoteMasterSalt: Buffer.from(salt),
  };
  return {
    srtp: new SrtpSession({ keys, profile }),
    srtcp: new SrtcpSession({ keys, profile }),
  };
}

/** The session objects applyFastSrtp puts on a transport, one per end. */
function fastSessions(
  profile: SrtpProfile,
  key: Uint8Array,
  salt: Uint8Array,
  backend: SrtpCryptoBackend,
) {
  const context = () => SrtpContext.fromMasterKey(profile, key, salt, backend);
  const local = context(), remote = context();
  return {
    srtp: new FastSrtpSession(local, remote),
    srtcp: new FastSrtcpSession(local, remote),
  };
}

eachBackendAndProfile(
  "RTP across a rollover is byte-identical to werift's, and each side decrypts the other",
  (backend, profile) => {
    const { key, salt } = masterPair(profile);
    const werift = weriftSessions(profile, key, salt);
    const weriftReceiver = weriftSessions(profile, key, salt);
    const ours = fastSessions(profile, key, salt, backend);
    const ourReceiver = fastSessions(profile, key, salt, backend);
    for (const ssrc of [0x11223344, 0xdeadbeef]) {
      for (const { header, payload } of randomPackets(300, 65_400, ssrc)) {
        const expected = werift.srtp.encrypt(payload, header);
        const wire = ours.srtp.encrypt(payload, header);
        assert.equal(
          toHex(wire),
          toHex(expected),
          `seq ${header.sequenceNumber}`,
        );
        const plain = Buffer.concat([
          header.serialize(header.serializeSize),
          payload,
        ]);
        assert.deepEqual(ourReceiver.srtp.decrypt(expected), plain);
        assert.deepEqual(weriftReceiver.srtp.decrypt(wire), plain);
      }
    }
    // A forged packet fails the way werift's receive path expects to drop.
    const forged = ours.srtp.encrypt(
      Buffer.alloc(10),
      new RtpHeader({ ssrc: 5, sequenceNumber: 1 }),
    );
    forged[forged.length - 1] ^= 1;
    assert.throws(
      () => ourReceiver.srtp.decrypt(forged),
      SrtpAuthenticationError,
    );
    assert.throws(
      () => ourReceiver.srtcp.decrypt(forged.subarray(0, 20)),
      SrtpAuthenticationError,
    );
  },
);

eachBackendAndProfile(
  "encryptInto writes what encrypt returns into the scratch buffer, and refuses what does not fit",
  (backend, profile) => {
    const { key, salt } = masterPair(profile);
    const allocating = fastSessions(profile, key, salt, backend);
    const scratching = fastSessions(profile, key, salt, backend);
    const scratch = new PacketScratch(1500);
    for (const { header, payload } of randomPackets(40, 100, 0x01020304)) {
      const expected = allocating.srtp.encrypt(payload, header);
      const packet = scratching.srtp.encryptInto(scratch, payload, header);
      assert.equal(packet.buffer, scratch.bytes.buffer);
      assert.equal(packet.byteOffset, 0);
      assert.equal(toHex(packet), toHex(expected));
    }
    // A packet of a length seen before comes back in the same view: no
    // view is made per packet.
    const { header, payload } = randomPackets(1, 100, 7)[0];
    const first = scratching.srtp.encryptInto(scratch, payload, header);
    header.sequenceNumber++;
    assert.equal(scratching.srtp.encryptInto(scratch, payload, header), first);
    assert.throws(
      () =>
        scratching.srtp.encryptInto(
          new PacketScratch(40),
          new Uint8Array(20),
          new RtpHeader({ ssrc: 9, sequenceNumber: 1 }),
        ),
      RangeError,
    );
  },
);

eachBackendAndProfile(
  "protectRtp equals werift for whole packets, padding included",
  (backend, profile) => {
    const { key, salt } = masterPair(profile);
    const werift = weriftSessions(profile, key, salt);
    const ours = SrtpContext.fromMasterKey(profile, key, salt, backend);
    const receiver = SrtpContext.fromMasterKey(profile, key, salt, backend);
    for (let i = 0; i < 50; i++) {
      const padded = i % 2 === 0;
      const payload = Buffer.from(randomBytes(i * 23));
      const packet = rtpPacket(
        1000 + i,
        42,
        payload,
        padded ? { padding: true, paddingSize: 1 + (i % 4) } : {},
      );
      const header = RtpHeader.deSerialize(packet);
      const expected = werift.srtp.encrypt(
        packet.subarray(header.payloadOffset),
        header,
      );
      const protectedPacket = ours.protectRtp(packet);
      assert.equal(toHex(protectedPacket), toHex(expected));
      assert.deepEqual(receiver.unprotectRtp(protectedPacket), packet);
    }
  },
);

eachBackendAndProfile(
  "RTCP is byte-identical to werift's, and each side decrypts the other",
  (backend, profile) => {
    const { key, salt } = masterPair(profile);
    const werift = weriftSessions(profile, key, salt);
    const weriftReceiver = weriftSessions(profile, key, salt);
    const ours = fastSessions(profile, key, salt, backend);
    const ourReceiver = fastSessions(profile, key, salt, backend);
    for (let i = 0; i < 60; i++) {
      const rtcp = Buffer.from(randomBytes(8 + 4 * (i % 20)));
      rtcp[0] = 0x80 | (i % 31);
      rtcp[1] = 200 + (i % 5);
      rtcp.writeUInt32BE([1, 2, 0xfffffff0][i % 3], 4);
      const expected = werift.srtcp.encrypt(rtcp);
      const wire = ours.srtcp.encrypt(rtcp);
      assert.equal(toHex(wire), toHex(expected), `packet ${i}`);
      assert.deepEqual(ourReceiver.srtcp.decrypt(expected), rtcp);
      assert.deepEqual(weriftReceiver.srtcp.decrypt(wire), rtcp);
    }
  },
);

Deno.test("writeRtpHeader writes what werift's RtpHeader.serialize writes", () => {
  for (let i = 0; i < 500; i++) {
    const header = randomHeader(i * 977, (i * 2654435761) >>> 0, Math.random);
    header.padding = i % 5 === 0;
    if (i % 11 === 0) header.extension = true; // the bit with no extensions
    if (i % 13 === 0) {
      header.extensionProfile = 0x1234 as typeof header.extensionProfile;
      header.extensions = [{ id: 0, payload: Buffer.from(randomBytes(8)) }];
    }
    const mine = new RtpHeader({ ...header });
    const expected = header.serialize(header.serializeSize);
    const out = new Uint8Array(expected.length + 3).fill(0xee);
    const length = writeRtpHeader(mine, out);
    assert.equal(length, expected.length);
    assert.equal(toHex(out.subarray(0, length)), toHex(expected));
    assert.equal(mine.payloadOffset, header.payloadOffset);
    assert.equal(mine.extension, header.extension);
  }
  assert.throws(
    () =>
      writeRtpHeader(
        new RtpHeader({ extensions: [{ id: 1, payload: Buffer.alloc(0) }] }),
        new Uint8Array(64),
      ),
    RangeError,
  );
});

// ---------------------------------------------------------------------------
// Rollover, replay, tampering and hostile input

eachBackendAndProfile(
  "the rollover counter follows wraps, reordering and late retransmissions",
  (backend, profile) => {
    const { sender, receiver } = pair(backend, profile);
    const payload = new Uint8Array(randomBytes(100));
    const wire = new Map<number, Uint8Array>();
    for (let n = 65_530; n < 65_536 + 70_000; n++) {
      wire.set(n, sender.protectRtp(rtpPacket(n, 7, payload)));
    }
    const open = (n: number) =>
      assert.deepEqual(
        receiver.unprotectRtp(wire.get(n)!),
        rtpPacket(n, 7, payload),
      );
    // 65535 is lost at first, 0 and 1 come before 65534, then 65535 arrives
    // late as a retransmission would.
    for (
      const n of [
        65_530,
        65_531,
        65_532,
        65_533,
        65_536,
        65_537,
        65_534,
        65_535,
      ]
    ) {
      open(n);
    }
    assertSrtpError(
      () => receiver.unprotectRtp(wire.get(65_536)!),
      /replayed/,
    );
    // A second wrap, reached by gaps shorter than half the sequence space.
    let last = 0;
    for (let n = 65_538; n < 65_536 + 70_000; n += 1000) open(last = n);
    assert.ok(last > 2 * 65_536, "the stream wrapped twice");
    assertSrtpError(() => receiver.unprotectRtp(wire.get(65_536)!), /too old/);
    assertSrtpError(() => receiver.unprotectRtp(wire.get(last)!), /replayed/);
  },
);

eachBackendAndProfile(
  "a replayed or too-old packet is refused, and the stream goes on",
  (backend, profile) => {
    const { sender, receiver } = pair(backend, profile);
    const payload = new Uint8Array(40);
    const packets = Array.from(
      { length: REPLAY_WINDOW + 10 },
      (_, n) => sender.protectRtp(rtpPacket(n, 9, payload)),
    );
    receiver.unprotectRtp(packets[0]);
    assertSrtpError(() => receiver.unprotectRtp(packets[0]), /replayed/);
    receiver.unprotectRtp(packets[REPLAY_WINDOW + 5]);
    assertSrtpError(() => receiver.unprotectRtp(packets[2]), /too old/);
    receiver.unprotectRtp(packets[10]); // inside the window, never seen
    assertSrtpError(() => receiver.unprotectRtp(packets[10]), /replayed/);
    receiver.unprotectRtp(packets[REPLAY_WINDOW + 9]);
    const rtcp = sender.protectRtcp(hex(LIBSRTP_RTCP));
    receiver.unprotectRtcp(rtcp);
    assertSrtpError(() => receiver.unprotectRtcp(rtcp), /replayed/);
  },
);

eachBackendAndProfile(
  "any flipped bit fails authentication without disturbing the stream",
  (backend, profile) => {
    const { sender, receiver } = pair(backend, profile);
    const packet = rtpPacket(500, 77, new Uint8Array(randomBytes(60)), {
      extensions: [{ id: 1, payload: Buffer.from([1, 2]) }],
    });
    const srtp = sender.protectRtp(packet);
    // Bits in the fixed header, the extension, the payload and the tag; the
    // version bits are refused before authentication.
    for (const byte of [1, 2, 5, 9, 14, 17, 30, srtp.length - 1]) {
      const tampered = Uint8Array.from(srtp);
      tampered[byte] ^= 0x04;
      assertSrtpError(() => receiver.unprotectRtp(tampered));
    }
    assert.deepEqual(receiver.unprotectRtp(srtp), packet);
    const rtcp = sender.protectRtcp(hex(LIBSRTP_RTCP));
    for (let byte = 0; byte < rtcp.length; byte++) {
      const tampered = Uint8Array.from(rtcp);
      tampered[byte] ^= 0x80; // includes the E flag
      assertSrtpError(() => receiver.unprotectRtcp(tampered));
    }
    assert.equal(toHex(receiver.unprotectRtcp(rtcp)), LIBSRTP_RTCP);
  },
);

eachBackendAndProfile(
  "truncated and random input is an SrtpError, never a crash",
  (backend, profile) => {
    const { sender, receiver } = pair(backend, profile);
    const srtp = sender.protectRtp(rtpPacket(1, 5, new Uint8Array(80), {
      csrc: [1, 2],
      extensions: [{ id: 2, payload: Buffer.from([9]) }],
    }));
    const srtcp = sender.protectRtcp(hex(LIBSRTP_RTCP));
    for (let length = 0; length < srtp.length; length++) {
      assertSrtpError(() => receiver.unprotectRtp(srtp.subarray(0, length)));
    }
    for (let length = 0; length < srtcp.length; length++) {
      assertSrtpError(() => receiver.unprotectRtcp(srtcp.subarray(0, length)));
    }
    // An extension length pointing past the end of the packet.
    const longExtension = Uint8Array.from(srtp);
    longExtension[22] = 0xff;
    assertSrtpError(() => receiver.unprotectRtp(longExtension), /not an SRTP/);
    for (let i = 0; i < 2000; i++) {
      const junk = new Uint8Array(randomBytes(Math.floor(Math.random() * 120)));
      if (i % 2 === 0 && junk.length > 0) junk[0] = 0x80 | (junk[0] & 0x3f);
      assertSrtpError(() => receiver.unprotectRtp(junk));
      assertSrtpError(() => receiver.unprotectRtcp(junk));
    }
    assertSrtpError(() => sender.protectRtp(new Uint8Array(11)), /not an RTP/);
    assertSrtpError(() => sender.protectRtp(hex("40" + "00".repeat(20))));
    assertSrtpError(() => sender.protectRtcp(new Uint8Array(7)), /too short/);
    assertSrtpError(() =>
      sender.sealRtp(new PacketScratch(20), 12, new Uint8Array(5))
    );
    // The genuine packet still opens after all that.
    assert.equal(
      receiver.unprotectRtp(srtp).length,
      srtp.length - sender.rtpOverhead,
    );
  },
);

Deno.test("bad master keys and unknown profiles are refused by name", () => {
  assertSrtpError(
    () =>
      SrtpContext.fromMasterKey(
        SRTP_AEAD_AES_128_GCM,
        new Uint8Array(16),
        new Uint8Array(14),
      ),
    /12-byte master salt/,
  );
  assertSrtpError(
    () =>
      new SrtpContext(
        2 as SrtpProfile,
        sessionKeys(GCM_KEY, GCM_SALT),
      ),
    /unsupported SRTP profile 2/,
  );
});

Deno.test("a disposed libcrypto context throws instead of touching freed memory", () => {
  const context = SrtpContext.fromMasterKey(
    SRTP_AES128_CM_HMAC_SHA1_80,
    hex(LIBSRTP_KEY),
    hex(LIBSRTP_SALT),
    libcrypto,
  );
  context.dispose();
  context.dispose();
  assert.throws(() => context.protectRtp(hex(LIBSRTP_RTP)), LibcryptoError);
});

Deno.test("without FFI permission the backend falls back and says why, without prompting", async () => {
  const dir = await Deno.makeTempDir();
  const script = `${dir}/select.ts`;
  await Deno.writeTextFile(
    script,
    `import { selectSrtpBackend } from ${
      JSON.stringify(new URL("../media/srtp/backend.ts", import.meta.url).href)
    };
const s = selectSrtpBackend();
console.log(JSON.stringify({ name: s.backend.name, reason: s.fallbackReason }));`,
  );
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--no-config", script],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stdout, stderr } = await command.output();
  await Deno.remove(dir, { recursive: true });
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const result = JSON.parse(new TextDecoder().decode(stdout));
  assert.equal(result.name, "node");
  assert.match(result.reason, /--allow-ffi/);
});

// ---------------------------------------------------------------------------
// Two real werift PeerConnections on loopback

async function waitFor(
  what: string,
  condition: () => boolean,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const LOOPBACK = { iceAddresses: ["127.0.0.1"], iceServers: [] };

for (const [profileName, profile] of PROFILES) {
  Deno.test(`[${profileName}] werift PeerConnections exchange RTP and RTCP through applyFastSrtp`, async () => {
    const status = applyFastSrtp();
    assert.equal(status.backend, "libcrypto", status.fallbackReason);
    const sender = new RTCPeerConnection(
      peerConnectionConfig(LOOPBACK, "send"),
    );
    const receiver = new RTCPeerConnection(
      peerConnectionConfig(LOOPBACK, "receive"),
    );
    try {
      const track = new MediaStreamTrack({ kind: "video" });
      const transceiver: RTCRtpTransceiver = sender.addTransceiver(track, {
        direction: "sendonly",
      });
      const received: RtpPacket[] = [];
      let remoteSsrc = 0;
      receiver.ontrack = ({ track: remote }) => {
        remote.onReceiveRtp.subscribe((rtp) => {
          remoteSsrc = rtp.header.ssrc;
          received.push(rtp);
        });
      };
      let plis = 0;
      transceiver.sender.onPictureLossIndication.subscribe(() => plis++);
      // werift offers GCM first and has no setting for it, so the profile
      // is pinned on each transport before its DTLS handshake starts.
      const pinProfile = (pc: RTCPeerConnection) => {
        for (const dtls of pc.dtlsTransports) {
          (dtls as unknown as { srtpProfiles: number[] }).srtpProfiles = [
            profile,
          ];
        }
      };
      await sender.setLocalDescription(await sender.createOffer());
      pinProfile(sender);
      await receiver.setRemoteDescription(sender.localDescription!);
      pinProfile(receiver);
      await receiver.setLocalDescription(await receiver.createAnswer());
      await sender.setRemoteDescription(receiver.localDescription!);
      await waitFor(
        "both PeerConnections to connect",
        () =>
          sender.connectionState === "connected" &&
          receiver.connectionState === "connected",
      );
      for (const pc of [sender, receiver]) {
        const dtls = pc.dtlsTransports[0];
        assert.ok(usesFastSrtp(dtls), "transport runs media/srtp");
        assert.equal(dtls.dtls?.srtp.srtpProfile, profile);
      }
      const payloads: string[] = [];
      const header = new RtpHeader({
        payloadType: 96,
        sequenceNumber: 65_500,
        timestamp: 1234,
        ssrc: 1,
      });
      let sent = 0;
      await waitFor("100 packets to arrive", () => {
        // Keep sending until enough arrive: the first may precede the
        // receiver's SRTP start.
        for (let i = 0; i < 10; i++) {
          const payload = Buffer.from(randomBytes(1000));
          payloads.push(payload.toString("hex"));
          header.sequenceNumber = (header.sequenceNumber + 1) & 0xffff;
          header.timestamp += 3000;
          track.writeRtp(new RtpPacket(new RtpHeader({ ...header }), payload));
          sent++;
        }
        return received.length >= 100 || sent > 2000;
      });
      assert.ok(
        received.length >= 100,
        `${received.length} of ${sent} arrived`,
      );
      const sentPayloads = new Set(payloads);
      for (const rtp of received) {
        assert.ok(
          sentPayloads.has(rtp.payload.toString("hex")),
          "payload intact",
        );
      }
      // SRTCP the other way: a PLI from the receiver reaches the sender.
      const receiverTransceiver = receiver.getTransceivers()[0];
      await receiverTransceiver.receiver.sendRtcpPLI(remoteSsrc);
      await waitFor("the PLI to arrive", () => plis > 0);
    } finally {
      await sender.close();
      await receiver.close();
    }
  });
}
