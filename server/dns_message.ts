// DNS message encoding and decoding (RFC 1035), with the two Multicast DNS
// reinterpretations of the class field's top bit (RFC 6762 5.4 and 10.2).
// Only what mDNS name resolution needs: names, questions, and records whose
// data is kept as raw bytes (A and AAAA convert to and from address text).
import { isIP } from "node:net";
import { canonicalIp } from "./net.ts";

export const DNS_TYPE_A = 1;
export const DNS_TYPE_AAAA = 28;
export const DNS_TYPE_ANY = 255;
export const DNS_CLASS_IN = 1;
export const DNS_CLASS_ANY = 255;

export const DNS_FLAG_RESPONSE = 0x8000;
export const DNS_FLAG_AUTHORITATIVE = 0x0400;
export const DNS_OPCODE_MASK = 0x7800;

// In mDNS the class field's top bit is the unicast-response bit in questions
// and the cache-flush bit in records.
const CLASS_TOP_BIT = 0x8000;
const MAX_NAME_WIRE_LENGTH = 255;
const MAX_LABEL_LENGTH = 63;

/** A packet that is not a well-formed DNS message. */
export class DnsFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DnsFormatError";
  }
}

export interface DnsQuestion {
  /** Labels joined by ".", with "." and "\" inside a label escaped by "\". */
  name: string;
  type: number;
  class: number;
  /** mDNS QU bit: the querier asks for a unicast reply. */
  unicastResponse: boolean;
}

export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  /** mDNS: this record replaces every cached record of the same name and type. */
  cacheFlush: boolean;
  ttl: number;
  data: Uint8Array;
}

export interface DnsMessage {
  id: number;
  flags: number;
  questions: DnsQuestion[];
  answers: DnsRecord[];
  authorities: DnsRecord[];
  additionals: DnsRecord[];
}

/** DNS names compare case-insensitively, but only for ASCII letters (RFC 4343). */
export function sameDnsName(a: string, b: string): boolean {
  return a.length === b.length && asciiLower(a) === asciiLower(b);
}

function asciiLower(text: string): string {
  return text.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
}

/** An A or AAAA record for an IPv4 or IPv6 address. */
export function addressRecord(
  name: string,
  address: string,
  ttl: number,
  cacheFlush: boolean,
): DnsRecord {
  const family = isIP(address);
  if (family === 4) {
    return {
      name,
      type: DNS_TYPE_A,
      class: DNS_CLASS_IN,
      cacheFlush,
      ttl,
      data: Uint8Array.from(address.split(".").map(Number)),
    };
  }
  if (family === 6 && !address.includes("%")) {
    return {
      name,
      type: DNS_TYPE_AAAA,
      class: DNS_CLASS_IN,
      cacheFlush,
      ttl,
      data: ipv6Bytes(address),
    };
  }
  throw new TypeError(`not an IP address: ${JSON.stringify(address)}`);
}

/** The address an A or AAAA record holds, or undefined for other records. */
export function recordAddress(record: DnsRecord): string | undefined {
  if (record.type === DNS_TYPE_A && record.data.length === 4) {
    return record.data.join(".");
  }
  if (record.type === DNS_TYPE_AAAA && record.data.length === 16) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) {
      groups.push(((record.data[i] << 8) | record.data[i + 1]).toString(16));
    }
    return canonicalIp(groups.join(":"));
  }
  return undefined;
}

function ipv6Bytes(address: string): Uint8Array {
  // An embedded IPv4 tail ("::ffff:192.0.2.1") stands for the last two groups.
  const text = address.replace(
    /(\d+)\.(\d+)\.(\d+)\.(\d+)$/,
    (_, a: string, b: string, c: string, d: string) =>
      `${(+a << 8 | +b).toString(16)}:${(+c << 8 | +d).toString(16)}`,
  );
  const [head, tail] = text.split("::");
  const groups = (part: string | undefined) =>
    part ? part.split(":").map((group) => parseInt(group, 16)) : [];
  const before = groups(head);
  const after = groups(tail);
  const all = [
    ...before,
    ...new Array<number>(8 - before.length - after.length).fill(0),
    ...after,
  ];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[i * 2] = group >> 8;
    bytes[i * 2 + 1] = group & 0xff;
  });
  return bytes;
}

/** Decodes a DNS message; throws DnsFormatError for anything malformed. */
export function decodeDnsMessage(packet: Uint8Array): DnsMessage {
  const reader = new Reader(packet);
  const id = reader.u16();
  const flags = reader.u16();
  const questionCount = reader.u16();
  const answerCount = reader.u16();
  const authorityCount = reader.u16();
  const additionalCount = reader.u16();
  // Counts are not trusted for allocation: each entry needs bytes that a
  // short packet runs out of, so a lying header ends in a truncation error.
  const questions: DnsQuestion[] = [];
  for (let i = 0; i < questionCount; i++) {
    const name = reader.name();
    const type = reader.u16();
    const rawClass = reader.u16();
    questions.push({
      name,
      type,
      class: rawClass & ~CLASS_TOP_BIT,
      unicastResponse: (rawClass & CLASS_TOP_BIT) !== 0,
    });
  }
  const records = (count: number) => {
    const list: DnsRecord[] = [];
    for (let i = 0; i < count; i++) list.push(reader.record());
    return list;
  };
  return {
    id,
    flags,
    questions,
    answers: records(answerCount),
    authorities: records(authorityCount),
    additionals: records(additionalCount),
  };
}

const utf8Decoder = new TextDecoder();
const utf8Encoder = new TextEncoder();

class Reader {
  #packet: Uint8Array;
  #view: DataView;
  #offset = 0;

  constructor(packet: Uint8Array) {
    this.#packet = packet;
    this.#view = new DataView(
      packet.buffer,
      packet.byteOffset,
      packet.byteLength,
    );
  }

  #need(length: number, offset = this.#offset): void {
    if (offset + length > this.#packet.length) {
      throw new DnsFormatError(
        `truncated at byte ${offset} (needs ${length} more)`,
      );
    }
  }

  u16(): number {
    this.#need(2);
    const value = this.#view.getUint16(this.#offset);
    this.#offset += 2;
    return value;
  }

  u32(): number {
    this.#need(4);
    const value = this.#view.getUint32(this.#offset);
    this.#offset += 4;
    return value;
  }

  bytes(length: number): Uint8Array {
    this.#need(length);
    const value = this.#packet.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return value;
  }

  record(): DnsRecord {
    const name = this.name();
    const type = this.u16();
    const rawClass = this.u16();
    const ttl = this.u32();
    const data = this.bytes(this.u16());
    return {
      name,
      type,
      class: rawClass & ~CLASS_TOP_BIT,
      cacheFlush: (rawClass & CLASS_TOP_BIT) !== 0,
      ttl,
      data,
    };
  }

  name(): string {
    const labels: string[] = [];
    let position = this.#offset;
    let resumeAt: number | undefined;
    let wireLength = 1;
    // Compression pointers must point strictly before the label sequence
    // that holds them, so following them always terminates.
    let pointerLimit = position;
    for (;;) {
      this.#need(1, position);
      const length = this.#packet[position];
      if (length === 0) {
        position += 1;
        break;
      }
      const kind = length & 0xc0;
      if (kind === 0xc0) {
        this.#need(2, position);
        const target = ((length & 0x3f) << 8) | this.#packet[position + 1];
        if (target >= pointerLimit) {
          throw new DnsFormatError(
            `name compression pointer at byte ${position} does not point backwards`,
          );
        }
        resumeAt ??= position + 2;
        position = target;
        pointerLimit = target;
        continue;
      }
      if (kind !== 0) {
        throw new DnsFormatError(
          `unsupported label type 0x${kind.toString(16)} at byte ${position}`,
        );
      }
      wireLength += length + 1;
      if (wireLength > MAX_NAME_WIRE_LENGTH) {
        throw new DnsFormatError(
          `name longer than ${MAX_NAME_WIRE_LENGTH} bytes`,
        );
      }
      this.#need(1 + length, position);
      const label = utf8Decoder.decode(
        this.#packet.subarray(position + 1, position + 1 + length),
      );
      labels.push(label.replace(/[.\\]/g, "\\$&"));
      position += 1 + length;
    }
    this.#offset = resumeAt ?? position;
    return labels.join(".");
  }
}

/** Encodes a DNS message (names uncompressed); throws for names DNS cannot carry. */
export function encodeDnsMessage(message: DnsMessage): Uint8Array {
  const out: number[] = [];
  const u16 = (value: number) => out.push(value >> 8 & 0xff, value & 0xff);
  const u32 = (value: number) => {
    u16(value >>> 16);
    u16(value & 0xffff);
  };
  const name = (text: string) => {
    const start = out.length;
    for (const label of nameLabels(text)) {
      out.push(label.length, ...label);
    }
    out.push(0);
    if (out.length - start > MAX_NAME_WIRE_LENGTH) {
      throw new DnsFormatError(`name too long: ${JSON.stringify(text)}`);
    }
  };
  const record = (entry: DnsRecord) => {
    name(entry.name);
    u16(entry.type);
    u16(entry.class | (entry.cacheFlush ? CLASS_TOP_BIT : 0));
    u32(entry.ttl);
    u16(entry.data.length);
    out.push(...entry.data);
  };
  u16(message.id);
  u16(message.flags);
  u16(message.questions.length);
  u16(message.answers.length);
  u16(message.authorities.length);
  u16(message.additionals.length);
  for (const question of message.questions) {
    name(question.name);
    u16(question.type);
    u16(question.class | (question.unicastResponse ? CLASS_TOP_BIT : 0));
  }
  message.answers.forEach(record);
  message.authorities.forEach(record);
  message.additionals.forEach(record);
  return Uint8Array.from(out);
}

function nameLabels(name: string): Uint8Array[] {
  if (name === "" || name === ".") return [];
  const labels: string[] = [];
  let label = "";
  for (let i = 0; i < name.length; i++) {
    if (name[i] === "\\" && i + 1 < name.length) {
      label += name[++i];
    } else if (name[i] === ".") {
      labels.push(label);
      label = "";
    } else {
      label += name[i];
    }
  }
  // A trailing dot (an absolute name) leaves nothing after it.
  if (label !== "") labels.push(label);
  return labels.map((text) => {
    const bytes = utf8Encoder.encode(text);
    if (bytes.length === 0 || bytes.length > MAX_LABEL_LENGTH) {
      throw new DnsFormatError(
        `label must be 1 to ${MAX_LABEL_LENGTH} bytes in ${
          JSON.stringify(name)
        }`,
      );
    }
    return bytes;
  });
}
