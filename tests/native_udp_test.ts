// The native UDP path (media/native_udp.ts): sendto through FFI on a
// duplicate of a node:dgram socket's descriptor, on loopback.
import assert from "node:assert/strict";
import type { Buffer } from "node:buffer";
import dgram from "node:dgram";
import { fileURLToPath } from "node:url";
import { UdpTransport } from "werift";
import { applyWeriftPatches } from "../media/werift_patches.ts";
import {
  loadNativeUdp,
  nativeSenderFor,
  NativeUdpSender,
} from "../media/native_udp.ts";

const CONFIG = fileURLToPath(new URL("../deno.json", import.meta.url));
const MODULE = new URL("../media/native_udp.ts", import.meta.url).href;

async function bound(type: "udp4" | "udp6", address: string) {
  const socket = dgram.createSocket(type);
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, address, () => resolve());
  });
  const received: { data: Buffer; port: number }[] = [];
  socket.on("message", (data: Buffer, from) => {
    received.push({ data, port: from.port });
  });
  return { socket, received, port: socket.address().port };
}

async function waitFor(what: string, done: () => boolean) {
  for (let i = 0; i < 100 && !done(); i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.ok(done(), `timed out waiting for ${what}`);
}

function senderOn(socket: dgram.Socket): NativeUdpSender {
  const sender = nativeSenderFor(loadNativeUdp(), socket);
  assert.ok(sender instanceof NativeUdpSender, JSON.stringify(sender));
  return sender;
}

for (
  const [type, address] of [["udp4", "127.0.0.1"], ["udp6", "::1"]] as const
) {
  Deno.test(`${type}: datagrams leave from the node:dgram socket's own port, unchanged and in order`, async () => {
    const from = await bound(type, address);
    const to = await bound(type, address);
    const sender = senderOn(from.socket);
    try {
      const sent = Array.from({ length: 50 }, (_, i) => {
        const data = new Uint8Array(1200).fill(i);
        data[0] = 0x80;
        return data;
      });
      for (const data of sent) assert.ok(sender.send(data, address, to.port));
      // A view into a larger buffer sends just the view.
      const scratch = new Uint8Array(4096).fill(7);
      assert.ok(sender.send(scratch.subarray(10, 30), address, to.port));
      await waitFor("every datagram", () => to.received.length === 51);
      to.received.slice(0, 50).forEach(({ data, port }, i) => {
        assert.deepEqual(new Uint8Array(data), sent[i]);
        assert.equal(port, from.port);
      });
      assert.deepEqual(
        new Uint8Array(to.received[50].data),
        new Uint8Array(20).fill(7),
      );
      // The node:dgram socket still receives on its descriptor.
      to.socket.send(new Uint8Array([1, 2, 3]), from.port, address);
      await waitFor("a reply", () => from.received.length === 1);
    } finally {
      sender.close();
      from.socket.close();
      to.socket.close();
    }
  });
}

Deno.test("a destination that is not an address, or a closed sender, sends nothing", async () => {
  const from = await bound("udp4", "127.0.0.1");
  const to = await bound("udp4", "127.0.0.1");
  const sender = senderOn(from.socket);
  try {
    const data = new Uint8Array([0x80, 1]);
    assert.equal(sender.send(data, "localhost", to.port), false);
    assert.equal(sender.send(data, "fe80::1%eth0", to.port), false);
    assert.equal(sender.send(data, "127.0.0.1", 0), false);
    assert.equal(sender.send(data, "127.0.0.1", 70000), false);
    assert.equal(sender.send(data, "127.0.0.1", to.port), true);
    sender.close();
    assert.equal(sender.send(data, "127.0.0.1", to.port), false);
    sender.close(); // twice is harmless
    await waitFor("the one datagram", () => to.received.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(to.received.length, 1);
  } finally {
    from.socket.close();
    to.socket.close();
  }
});

Deno.test("without --allow-ffi the native path says why it is not available", async () => {
  // deno eval grants everything, so the probe runs as a file.
  const dir = await Deno.makeTempDir({ prefix: "umbrella-native-udp-" });
  const probe = `${dir}/probe.ts`;
  await Deno.writeTextFile(
    probe,
    `const { loadNativeUdp } = await import(${JSON.stringify(MODULE)});
console.log(JSON.stringify(loadNativeUdp()));`,
  );
  try {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--config", CONFIG, "--allow-read", "--allow-env", probe],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    assert.deepEqual(JSON.parse(new TextDecoder().decode(stdout)), {
      available: false,
      reason: "FFI is not permitted (--allow-ffi)",
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("werift's sockets allocate 16 KiB per received datagram, not 64, and keep the kernel's buffer", async () => {
  applyWeriftPatches();
  const plain = await bound("udp4", "127.0.0.1");
  const plainSender = senderOn(plain.socket);
  const transport = await UdpTransport.init(
    "udp4",
    {
      interfaceAddresses: { udp4: "127.0.0.1" },
    } as Parameters<typeof UdpTransport.init>[1],
  );
  const patched = transport as unknown as {
    socket: dgram.Socket;
    nativeSender: NativeUdpSender;
  };
  const received: number[] = [];
  transport.onData = (data: Buffer) => received.push(data.length);
  try {
    assert.equal(patched.socket.getRecvBufferSize(), 16 * 1024);
    assert.equal(
      patched.nativeSender.kernelReceiveBuffer(),
      plainSender.kernelReceiveBuffer(),
      "the kernel's buffer is untouched",
    );
    // Two datagrams: the first receive was posted before the change.
    // Sent natively: node:dgram sends a burst from one turn in reverse.
    const port = patched.socket.address().port;
    for (const size of [1500, 1500, 9000]) {
      assert.ok(plainSender.send(new Uint8Array(size), "127.0.0.1", port));
    }

    await waitFor("the datagrams", () => received.length === 3);
    assert.deepEqual(received, [1500, 1500, 9000]);
  } finally {
    plainSender.close();
    plain.socket.close();
    await transport.close();
  }
});
