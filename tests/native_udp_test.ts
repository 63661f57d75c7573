// The native UDP path (media/native_udp.ts): sendto through FFI on a
// duplicate of a node:dgram socket's descriptor, on loopback.
import assert from "node:assert/strict";
import type { Buffer } from "node:buffer";
import dgram from "node:dgram";
import { fileURLToPath } from "node:url";
import { UdpTransport } from "werift";
import { applyWeriftPatches } from "../media/werift_patches.ts";
import {
  ipv6Text,
  loadNativeUdp,
  nativeSocketFor,
  NativeUdpSocket,
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

function nativeOn(socket: dgram.Socket): NativeUdpSocket {
  const sender = nativeSocketFor(loadNativeUdp(), socket);
  assert.ok(sender instanceof NativeUdpSocket, JSON.stringify(sender));
  return sender;
}

for (
  const [type, address] of [["udp4", "127.0.0.1"], ["udp6", "::1"]] as const
) {
  Deno.test(`${type}: datagrams leave from the node:dgram socket's own port, unchanged and in order`, async () => {
    const from = await bound(type, address);
    const to = await bound(type, address);
    const sender = nativeOn(from.socket);
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

for (
  const [type, address] of [["udp4", "127.0.0.1"], ["udp6", "::1"]] as const
) {
  Deno.test(`${type}: queued datagrams are read in order with their source, without waiting`, async () => {
    const from = await bound(type, address);
    const to = await bound(type, address);
    const sender = nativeOn(from.socket);
    const reader = nativeOn(to.socket);
    try {
      // Sent and read in one turn: node:dgram's own read waits for the
      // event loop, so everything queued is this reader's.
      const sizes = [1200, 60, 3000, 1]; // 3000 does not fit: skipped
      sizes.forEach((size, i) =>
        assert.ok(
          sender.send(new Uint8Array(size).fill(i + 1), address, to.port),
        )
      );
      const into = new Uint8Array(2048);
      const read: { length: number; first: number }[] = [];
      for (let length; (length = reader.receive(into)) >= 0;) {
        read.push({ length, first: into[0] });
        assert.deepEqual(reader.source(), {
          address,
          port: from.port,
          family: type === "udp4" ? "IPv4" : "IPv6",
        });
      }
      assert.deepEqual(read, [
        { length: 1200, first: 1 },
        { length: 60, first: 2 },
        { length: 1, first: 4 },
      ]);
      reader.close();
      assert.ok(sender.send(new Uint8Array(10), address, to.port));
      assert.equal(reader.receive(into), -1, "a closed reader reads nothing");
      await waitFor("node:dgram to read on", () => to.received.length === 1);
    } finally {
      sender.close();
      reader.close();
      from.socket.close();
      to.socket.close();
    }
  });
}

Deno.test("IPv6 addresses are written as RFC 5952 (and Rust, and so node:dgram) writes them", () => {
  const bytes = (groups: number[]) => {
    const out = new Uint8Array(16);
    groups.forEach((g, i) => {
      out[2 * i] = g >> 8;
      out[2 * i + 1] = g & 0xff;
    });
    return out;
  };
  const cases: [number[], string][] = [
    [[0, 0, 0, 0, 0, 0, 0, 1], "::1"],
    [[0, 0, 0, 0, 0, 0, 0, 0], "::"],
    [
      [0xfe80, 0, 0, 0, 0x1ff, 0xfe23, 0x4567, 0x890a],
      "fe80::1ff:fe23:4567:890a",
    ],
    [[0x2001, 0xdb8, 0, 0, 1, 0, 0, 1], "2001:db8::1:0:0:1"],
    [[0x2001, 0xdb8, 0, 1, 1, 1, 1, 1], "2001:db8:0:1:1:1:1:1"],
    [[0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], "2001:db8::"],
    [[0, 0, 0, 0, 0, 0xffff, 0x7f00, 1], "::ffff:127.0.0.1"],
  ];
  for (const [groups, text] of cases) {
    assert.equal(ipv6Text(bytes(groups)), text);
  }
});

Deno.test("a destination that is not an address, or a closed sender, sends nothing", async () => {
  const from = await bound("udp4", "127.0.0.1");
  const to = await bound("udp4", "127.0.0.1");
  const sender = nativeOn(from.socket);
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
  const plainSender = nativeOn(plain.socket);
  const transport = await UdpTransport.init(
    "udp4",
    {
      interfaceAddresses: { udp4: "127.0.0.1" },
    } as Parameters<typeof UdpTransport.init>[1],
  );
  const patched = transport as unknown as {
    socket: dgram.Socket;
    nativeSocket: NativeUdpSocket;
  };
  const received: number[] = [];
  transport.onData = (data: Buffer) => received.push(data.length);
  try {
    assert.equal(patched.socket.getRecvBufferSize(), 16 * 1024);
    assert.equal(
      patched.nativeSocket.kernelReceiveBuffer(),
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
