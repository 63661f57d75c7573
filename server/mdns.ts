// Multicast DNS (RFC 6762) for LAN names: a responder so that phones find
// this server as "<hostname>.local", and a one-shot resolver for ".local"
// hosts in trunk URLs. IPv4 multicast (224.0.0.251) only; answers may still
// carry IPv6 addresses.
import dgram from "node:dgram";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import {
  addressRecord,
  decodeDnsMessage,
  DNS_CLASS_ANY,
  DNS_CLASS_IN,
  DNS_FLAG_AUTHORITATIVE,
  DNS_FLAG_RESPONSE,
  DNS_OPCODE_MASK,
  DNS_TYPE_A,
  DNS_TYPE_AAAA,
  DNS_TYPE_ANY,
  type DnsMessage,
  type DnsRecord,
  encodeDnsMessage,
  recordAddress,
  sameDnsName,
} from "./dns_message.ts";
import { canonicalIp, isIpLiteral } from "./net.ts";

const MDNS_GROUP = "224.0.0.251";
const MDNS_PORT = 5353;
// RFC 6762 10: records naming a host live 120 s.
const RECORD_TTL = 120;
// RFC 6762 6.7: plain DNS clients cache legacy unicast answers as ordinary
// DNS, so those answers must expire quickly.
const LEGACY_UNICAST_TTL = 10;
// RFC 6762 6: a record is multicast on an interface at most once a second.
const MULTICAST_INTERVAL_MS = 1000;
// Wi-Fi comes and goes; new interfaces need the group joined on them.
const INTERFACE_REFRESH_MS = 5000;
// RFC 6762 11: mDNS packets are sent with IP TTL 255 so receivers can tell
// they were not routed.
const MDNS_IP_TTL = 255;
const RESOLVE_TIMEOUT_MS = 2000;
const RESOLVE_RETRY_MS = 1000;
// An AAAA answer may arrive in a packet of its own just before the A answer
// we prefer; waiting this long for the A costs little.
const IPV6_GRACE_MS = 200;

export interface MdnsReply {
  response: DnsMessage;
  /** Send to the querier's address and port instead of the multicast group. */
  unicast: boolean;
}

/**
 * What to answer to an mDNS packet for the host `hostName` (e.g.
 * "studio.local") with `addresses`, or undefined when it asks nothing of
 * ours. `sourcePort` other than 5353 marks a legacy unicast query.
 */
export function planMdnsReply(
  query: DnsMessage,
  sourcePort: number,
  hostName: string,
  addresses: string[],
): MdnsReply | undefined {
  if (query.flags & (DNS_FLAG_RESPONSE | DNS_OPCODE_MASK)) return undefined;
  const legacy = sourcePort !== MDNS_PORT;
  const askedTypes = new Set<number>();
  let unicastAsked = false;
  for (const question of query.questions) {
    if (
      !sameDnsName(question.name, hostName) ||
      (question.class !== DNS_CLASS_IN && question.class !== DNS_CLASS_ANY)
    ) continue;
    if (question.type === DNS_TYPE_A || question.type === DNS_TYPE_ANY) {
      askedTypes.add(DNS_TYPE_A);
    }
    if (question.type === DNS_TYPE_AAAA || question.type === DNS_TYPE_ANY) {
      askedTypes.add(DNS_TYPE_AAAA);
    }
    unicastAsked ||= question.unicastResponse;
  }
  if (askedTypes.size === 0) return undefined;
  // RFC 6762 10.2: legacy clients would misread the cache-flush bit as part
  // of the class.
  const records = addresses.filter(isIpLiteral).map((address) =>
    addressRecord(
      hostName,
      address,
      legacy ? LEGACY_UNICAST_TTL : RECORD_TTL,
      !legacy,
    )
  );
  const answers = records.filter((record) =>
    askedTypes.has(record.type) && !alreadyKnown(query.answers, record)
  );
  if (answers.length === 0) return undefined;
  return {
    unicast: legacy || unicastAsked,
    response: {
      // RFC 6762 6.7: a legacy client matches the reply by id and question.
      id: legacy ? query.id : 0,
      flags: DNS_FLAG_RESPONSE | DNS_FLAG_AUTHORITATIVE,
      questions: legacy
        ? query.questions.map((question) => ({
          ...question,
          unicastResponse: false,
        }))
        : [],
      answers,
      authorities: [],
      // RFC 6762 6.2: the other address family saves the querier a query.
      additionals: records.filter((record) => !askedTypes.has(record.type)),
    },
  };
}

// RFC 6762 7.1: known-answer suppression, for records the querier holds
// with at least half their lifetime left.
function alreadyKnown(knownAnswers: DnsRecord[], record: DnsRecord): boolean {
  return knownAnswers.some((known) =>
    known.type === record.type &&
    known.class === record.class &&
    known.ttl >= record.ttl / 2 &&
    sameDnsName(known.name, record.name) &&
    known.data.length === record.data.length &&
    known.data.every((byte, i) => byte === record.data[i])
  );
}

export interface MdnsResponderOptions {
  /** A single DNS label: "studio" answers "studio.local". */
  hostname: string;
  /** The addresses to answer with, asked afresh for every query. */
  addresses: () => string[];
  /** Serve only the interface with this IPv4 address (default: all). */
  interfaceAddress?: string;
}

interface LocalInterface {
  name: string;
  address: string;
  network: number;
  mask: number;
  internal: boolean;
  /** Every address of the interface, IPv6 included, canonical. */
  addresses: Set<string>;
}

/** Answers A and AAAA queries for this server's own "<hostname>.local". */
export class MdnsResponder {
  readonly #socket: dgram.Socket;
  readonly #sender: SerialSender;
  readonly #hostName: string;
  readonly #addresses: () => string[];
  readonly #fixedInterface: string | undefined;
  #interfaces: LocalInterface[] = [];
  readonly #joined = new Set<string>();
  readonly #lastMulticast = new Map<string, number>();
  #refreshTimer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  private constructor(socket: dgram.Socket, options: MdnsResponderOptions) {
    this.#socket = socket;
    this.#sender = new SerialSender(socket);
    this.#hostName = `${options.hostname}.local`;
    this.#addresses = options.addresses;
    this.#fixedInterface = options.interfaceAddress;
  }

  static async start(options: MdnsResponderOptions): Promise<MdnsResponder> {
    const label = options.hostname;
    if (
      label === "" || /[.\\]/.test(label) ||
      new TextEncoder().encode(label).length > 63
    ) {
      throw new TypeError(
        `mDNS hostname must be one DNS label of 1-63 bytes without dots, got ${
          JSON.stringify(label)
        }`,
      );
    }
    const fixed = options.interfaceAddress;
    if (fixed !== undefined && isIP(fixed) !== 4) {
      throw new TypeError(
        `mDNS interface address must be IPv4, got ${JSON.stringify(fixed)}`,
      );
    }
    // Other mDNS software (Avahi, browsers) shares port 5353; every socket
    // bound with reuseAddr receives each multicast packet.
    const socket = dgram.createSocket({ type: "udp4", reuseAddr: true });
    const responder = new MdnsResponder(socket, options);
    try {
      await bind(socket, MDNS_PORT);
      socket.setMulticastTTL(MDNS_IP_TTL);
      socket.setMulticastLoopback(true);
      if (fixed !== undefined) {
        socket.addMembership(MDNS_GROUP, fixed);
        socket.setMulticastInterface(fixed);
      }
    } catch (error) {
      socket.close();
      throw new Error(
        `cannot serve mDNS on UDP port ${MDNS_PORT}${
          fixed ? ` of ${fixed}` : ""
        }: ${(error as Error).message}`,
      );
    }
    // Errors after start (a network gone away) only lose packets; mDNS
    // queriers retry.
    socket.on("error", () => {});
    socket.on(
      "message",
      (packet, source) => responder.#receive(packet, source),
    );
    responder.#refreshInterfaces();
    const refreshTimer = setInterval(
      () => responder.#refreshInterfaces(),
      INTERFACE_REFRESH_MS,
    );
    Deno.unrefTimer(refreshTimer);
    responder.#refreshTimer = refreshTimer;
    responder.#announce();
    return responder;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#refreshTimer);
    this.#sender.close();
    this.#socket.close();
  }

  #refreshInterfaces(): void {
    this.#interfaces = localIpv4Interfaces();
    if (this.#fixedInterface !== undefined) return;
    const present = new Set(this.#interfaces.map((entry) => entry.address));
    for (const address of this.#joined) {
      if (!present.has(address)) this.#joined.delete(address);
    }
    for (const address of present) {
      if (this.#joined.has(address)) continue;
      try {
        this.#socket.addMembership(MDNS_GROUP, address);
        this.#joined.add(address);
      } catch (error) {
        // The kernel keeps a membership across a brief address loss.
        if ((error as { code?: string }).code === "EADDRINUSE") {
          this.#joined.add(address);
        }
        // Otherwise the interface cannot multicast; retried next refresh.
      }
    }
  }

  // RFC 6762 8.3: an unsolicited response tells caches on the link at once.
  #announce(): void {
    const targets = this.#fixedInterface !== undefined
      ? [this.#interfaceWith(this.#fixedInterface)]
      : this.#interfaces.filter((entry) => this.#joined.has(entry.address));
    for (const target of targets) {
      const answers = this.#addressesFor(target).map((address) =>
        addressRecord(this.#hostName, address, RECORD_TTL, true)
      );
      if (answers.length === 0) continue;
      this.#multicast({
        id: 0,
        flags: DNS_FLAG_RESPONSE | DNS_FLAG_AUTHORITATIVE,
        questions: [],
        answers,
        authorities: [],
        additionals: [],
      }, target);
    }
  }

  #receive(packet: Uint8Array, source: dgram.RemoteInfo): void {
    // Responses are most of a LAN's mDNS traffic and never need an answer.
    if (packet.length < 12 || packet[2] & 0x80) return;
    // Anything on the LAN can send here: no packet may take the server down.
    try {
      const target = this.#fixedInterface !== undefined
        ? this.#interfaceWith(this.#fixedInterface)
        : this.#interfaceReaching(source.address);
      const reply = planMdnsReply(
        decodeDnsMessage(packet),
        source.port,
        this.#hostName,
        this.#addressesFor(target),
      );
      if (reply?.unicast) {
        this.#sender.send(
          encodeDnsMessage(reply.response),
          source.address,
          source.port,
        );
      } else if (reply) {
        this.#multicast(reply.response, target);
      }
    } catch {
      // Malformed packets and failing address callbacks go unanswered.
    }
  }

  #multicast(response: DnsMessage, target: LocalInterface | undefined): void {
    const via = target?.address ?? "0.0.0.0";
    const now = Date.now();
    const answers = response.answers.filter((record) =>
      now - (this.#lastMulticast.get(`${via} ${record.type}`) ?? -Infinity) >=
        MULTICAST_INTERVAL_MS
    );
    if (answers.length === 0) return;
    for (const record of answers) {
      this.#lastMulticast.set(`${via} ${record.type}`, now);
    }
    this.#sender.send(
      encodeDnsMessage({ ...response, answers }),
      MDNS_GROUP,
      MDNS_PORT,
      this.#fixedInterface === undefined ? via : undefined,
    );
  }

  #interfaceReaching(address: string): LocalInterface | undefined {
    const number = ipv4Number(address);
    return this.#interfaces.find((entry) =>
      ((number & entry.mask) >>> 0) === entry.network
    );
  }

  #interfaceWith(address: string): LocalInterface | undefined {
    return this.#interfaces.find((entry) => entry.address === address);
  }

  // RFC 6762 6.2: answer only with addresses valid on the interface the
  // query came in on (so a phone is not sent a Docker bridge address); when
  // none of the configured addresses is on it, they may be NAT or public
  // addresses, and all are given.
  #addressesFor(target: LocalInterface | undefined): string[] {
    const all = this.#addresses().filter(isIpLiteral).map(canonicalIp);
    const onInterface = target
      ? all.filter((address) => target.addresses.has(address))
      : [];
    return onInterface.length > 0 ? onInterface : all;
  }
}

/**
 * Resolves a ".local" name with a one-shot mDNS query (RFC 6762 5.1) for its
 * A and AAAA records: the first address found, IPv4 preferred, or undefined
 * when nobody answers within `timeoutMs`.
 */
export async function resolveMdns(
  name: string,
  options: { timeoutMs?: number } = {},
): Promise<string | undefined> {
  const hostName = name.endsWith(".") ? name.slice(0, -1) : name;
  if (!/\.local$/i.test(hostName)) {
    throw new TypeError(`not a .local name: ${JSON.stringify(name)}`);
  }
  const query = encodeDnsMessage({
    id: 0,
    flags: 0,
    questions: [DNS_TYPE_A, DNS_TYPE_AAAA].map((type) => ({
      name: hostName,
      type,
      class: DNS_CLASS_IN,
      unicastResponse: false,
    })),
    answers: [],
    authorities: [],
    additionals: [],
  });
  const found = Promise.withResolvers<string | undefined>();
  let ipv6Address: string | undefined;
  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  // Sending from an ephemeral port makes this a legacy unicast query:
  // responders answer straight back to this socket, and port 5353, which
  // other mDNS software may hold, is left alone.
  const socket = dgram.createSocket("udp4");
  socket.on("error", () => {});
  socket.on("message", (packet) => {
    let message: DnsMessage;
    try {
      message = decodeDnsMessage(packet);
    } catch {
      return;
    }
    if (!(message.flags & DNS_FLAG_RESPONSE)) return;
    for (const record of [...message.answers, ...message.additionals]) {
      // TTL 0 is a goodbye: the host is leaving that address.
      if (
        record.ttl === 0 || record.class !== DNS_CLASS_IN ||
        !sameDnsName(record.name, hostName)
      ) continue;
      const address = recordAddress(record);
      if (address === undefined) continue;
      if (isIP(address) === 4) return found.resolve(address);
      ipv6Address ??= address;
    }
    if (ipv6Address !== undefined && graceTimer === undefined) {
      graceTimer = setTimeout(
        () => found.resolve(ipv6Address),
        IPV6_GRACE_MS,
      );
    }
  });
  const sender = new SerialSender(socket);
  let retryTimer: ReturnType<typeof setInterval> | undefined;
  let timeoutTimer: ReturnType<typeof setTimeout> | undefined;
  try {
    await bind(socket, 0);
    socket.setMulticastTTL(MDNS_IP_TTL);
    // The name may live on any attached network, so ask on each of them.
    const interfaces = localIpv4Interfaces()
      .filter((entry) => !entry.internal)
      .map((entry) => entry.address);
    const ask = () => {
      if (interfaces.length === 0) {
        sender.send(query, MDNS_GROUP, MDNS_PORT);
      }
      for (const via of interfaces) {
        sender.send(query, MDNS_GROUP, MDNS_PORT, via);
      }
    };
    ask();
    retryTimer = setInterval(ask, RESOLVE_RETRY_MS);
    timeoutTimer = setTimeout(
      () => found.resolve(ipv6Address),
      options.timeoutMs ?? RESOLVE_TIMEOUT_MS,
    );
    return await found.promise;
  } finally {
    clearInterval(retryTimer);
    clearTimeout(timeoutTimer);
    clearTimeout(graceTimer);
    sender.close();
    socket.close();
  }
}

// Sends one datagram at a time, because the multicast interface is a socket
// option: changing it while an earlier send is still queued would reroute
// that send.
class SerialSender {
  readonly #socket: dgram.Socket;
  #queue: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(socket: dgram.Socket) {
    this.#socket = socket;
  }

  send(packet: Uint8Array, address: string, port: number, via?: string): void {
    this.#queue = this.#queue.then(() =>
      new Promise<void>((sent) => {
        if (this.#closed) return sent();
        try {
          if (via !== undefined) this.#socket.setMulticastInterface(via);
          // A failed send (network down) just loses this packet.
          this.#socket.send(packet, port, address, () => sent());
        } catch {
          sent();
        }
      })
    );
  }

  close(): void {
    this.#closed = true;
  }
}

function bind(socket: dgram.Socket, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(port, "0.0.0.0", () => {
      socket.off("error", reject);
      resolve();
    });
  });
}

function localIpv4Interfaces(): LocalInterface[] {
  const found: LocalInterface[] = [];
  for (const [name, entries = []] of Object.entries(networkInterfaces())) {
    const addresses = new Set(
      entries.map((entry) => canonicalIp(entry.address)),
    );
    for (const entry of entries) {
      if (entry.family !== "IPv4") continue;
      const mask = ipv4Number(entry.netmask);
      found.push({
        name,
        address: entry.address,
        mask,
        network: (ipv4Number(entry.address) & mask) >>> 0,
        internal: entry.internal,
        addresses,
      });
    }
  }
  return found;
}

function ipv4Number(address: string): number {
  return address.split(".").reduce(
    (number, part) => ((number << 8) | Number(part)) >>> 0,
    0,
  );
}
