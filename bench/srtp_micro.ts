// Micro-benchmark of SRTP per packet: werift 0.25.2's own sessions against
// media/srtp through the objects applyFastSrtp installs, with the libcrypto
// (FFI) and node:crypto (fallback) backends, for 1200-byte RTP packets.
// Prints the median µs per packet over several runs; asserts nothing.
//
//   deno run --allow-ffi --allow-read --allow-env bench/srtp_micro.ts
import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import { RtpHeader, SrtcpSession, SrtpSession } from "werift";
import type { SrtpCryptoBackend } from "../media/srtp/backend.ts";
import {
  SRTP_AEAD_AES_128_GCM,
  SRTP_AES128_CM_HMAC_SHA1_80,
  SrtpContext,
  type SrtpProfile,
} from "../media/srtp/context.ts";
import { loadLibcryptoBackend } from "../media/srtp/libcrypto.ts";
import { nodeCryptoBackend } from "../media/srtp/node_backend.ts";
import {
  FastSrtcpSession,
  FastSrtpSession,
} from "../media/srtp/werift_srtp_patch.ts";

const PACKET_BYTES = 1200;
const HEADER_BYTES = 12;
const PACKETS_PER_RUN = 20_000;
const RUNS = 7;

interface Sessions {
  srtp: {
    encrypt(payload: Buffer, header: RtpHeader): Buffer;
    decrypt(data: Buffer): Buffer;
  };
  srtcp: { encrypt(rtcp: Buffer): Buffer; decrypt(data: Buffer): Buffer };
}

interface Implementation {
  name: string;
  make(profile: SrtpProfile, key: Buffer, salt: Buffer): Sessions;
}

const weriftImplementation: Implementation = {
  name: "werift 0.25.2",
  make(profile, key, salt) {
    const keys = {
      localMasterKey: key,
      localMasterSalt: salt,
      remoteMasterKey: key,
      remoteMasterSalt: salt,
    };
    return {
      srtp: new SrtpSession({ keys, profile }),
      srtcp: new SrtcpSession({ keys, profile }),
    };
  },
};

function ours(backend: SrtpCryptoBackend): Implementation {
  return {
    name: `media/srtp ${backend.name}`,
    make(profile, key, salt) {
      const local = SrtpContext.fromMasterKey(profile, key, salt, backend);
      const remote = SrtpContext.fromMasterKey(profile, key, salt, backend);
      return {
        srtp: new FastSrtpSession(local, remote),
        srtcp: new FastSrtcpSession(local, remote),
      };
    },
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Median µs per call of `step(i)` over RUNS runs of PACKETS_PER_RUN, after
 * one unmeasured run to let the JIT settle; `setup` runs before each run. */
function measure(setup: () => (i: number) => void): number {
  const perRun: number[] = [];
  for (let run = 0; run <= RUNS; run++) {
    const step = setup();
    const start = performance.now();
    for (let i = 0; i < PACKETS_PER_RUN; i++) step(i);
    const micros = (performance.now() - start) * 1000 / PACKETS_PER_RUN;
    if (run > 0) perRun.push(micros);
  }
  return median(perRun);
}

function benchmark(
  implementation: Implementation,
  profile: SrtpProfile,
): Record<string, number> {
  const key = Buffer.from(randomBytes(16));
  const salt = Buffer.from(
    randomBytes(profile === SRTP_AEAD_AES_128_GCM ? 12 : 14),
  );
  const payload = Buffer.from(randomBytes(PACKET_BYTES - HEADER_BYTES));
  const header = new RtpHeader({ payloadType: 96, ssrc: 0x1234, timestamp: 0 });
  const rtcp = Buffer.from(randomBytes(52));
  rtcp[0] = 0x81;
  rtcp[1] = 200;
  let seq = 0;
  const protect = measure(() => {
    const sessions = implementation.make(profile, key, salt);
    return () => {
      header.sequenceNumber = seq = (seq + 1) & 0xffff;
      sessions.srtp.encrypt(payload, header);
    };
  });
  // Unprotect needs packets the receiver has not seen, made before timing.
  const wire: Buffer[] = [];
  const sender = implementation.make(profile, key, salt);
  for (let i = 0; i < PACKETS_PER_RUN; i++) {
    header.sequenceNumber = i;
    wire.push(sender.srtp.encrypt(payload, header));
  }
  const unprotect = measure(() => {
    const receiver = implementation.make(profile, key, salt);
    return (i) => receiver.srtp.decrypt(wire[i]);
  });
  const protectRtcp = measure(() => {
    const sessions = implementation.make(profile, key, salt);
    return () => sessions.srtcp.encrypt(rtcp);
  });
  return { protect, unprotect, "protect RTCP (60 B)": protectRtcp };
}

type Case = {
  implementation: "werift" | "libcrypto" | "node";
  profile: SrtpProfile;
};

function implementationFor(name: Case["implementation"]): Implementation {
  if (name === "werift") return weriftImplementation;
  if (name === "node") return ours(nodeCryptoBackend);
  const loaded = loadLibcryptoBackend();
  if (!("backend" in loaded)) throw new Error(loaded.reason);
  return ours(loaded.backend);
}

// Each case runs in its own worker, so one implementation's garbage and JIT
// state do not weigh on the next one's figures.
const workerScope = globalThis as unknown as {
  name?: string;
  onmessage: ((event: MessageEvent<Case>) => void) | null;
  postMessage(result: Record<string, number>): void;
};
const WORKER_NAME = "srtp-bench";
if (workerScope.name === WORKER_NAME) {
  workerScope.onmessage = (event) => {
    const { implementation, profile } = event.data;
    workerScope.postMessage(
      benchmark(implementationFor(implementation), profile),
    );
  };
} else {
  await main();
}

function runCase(which: Case): Promise<Record<string, number>> {
  const worker = new Worker(import.meta.url, {
    type: "module",
    name: WORKER_NAME,
  });
  return new Promise((resolve, reject) => {
    worker.onmessage = (event) => {
      worker.terminate();
      resolve(event.data);
    };
    worker.onerror = (event) => {
      worker.terminate();
      reject(new Error(event.message));
    };
    worker.postMessage(which);
  });
}

async function main(): Promise<void> {
  const names: Case["implementation"][] = ["werift"];
  const loaded = loadLibcryptoBackend();
  if ("backend" in loaded) {
    names.push("libcrypto");
    console.log(`libcrypto: ${loaded.backend.description}`);
  } else {
    console.log(`libcrypto: not measured (${loaded.reason})`);
  }
  names.push("node");
  console.log(
    `Deno ${Deno.version.deno}, ${PACKET_BYTES}-byte RTP packets, ` +
      `median of ${RUNS} runs x ${PACKETS_PER_RUN} packets, µs per packet\n`,
  );
  const profiles: [string, SrtpProfile][] = [
    ["AES_CM_128_HMAC_SHA1_80", SRTP_AES128_CM_HMAC_SHA1_80],
    ["AEAD_AES_128_GCM", SRTP_AEAD_AES_128_GCM],
  ];
  for (const [profileName, profile] of profiles) {
    const rows: Record<string, Record<string, string>> = {};
    for (const name of names) {
      const result = await runCase({ implementation: name, profile });
      rows[implementationFor(name).name] = Object.fromEntries(
        Object.entries(result).map(([k, v]) => [k, v.toFixed(2)]),
      );
    }
    console.log(profileName);
    console.table(rows);
  }
}
