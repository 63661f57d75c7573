import { networkInterfaces } from "node:os";
import { isIP } from "node:net";

/** True for a plain IPv4 or IPv6 literal (no brackets, no zone id). */
export function isIpLiteral(text: string): boolean {
  return isIP(text) !== 0 && !text.includes("%");
}

/** The canonical spelling of an IP literal (RFC 5952 for IPv6), so addresses written differently compare equal. */
export function canonicalIp(ip: string): string {
  return isIP(ip) === 6 ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : ip;
}

// Link-local addresses only reach the local segment and need a zone id, so
// they are useless in URLs shown to users and in certificates.
function isLinkLocal(ip: string): boolean {
  return ip.startsWith("169.254.") || /^fe[89ab][0-9a-f]:/i.test(ip);
}

/** This machine's non-loopback, non-link-local IPv4 and IPv6 addresses, IPv4 first. */
export function localAddresses(): string[] {
  const found = new Set<string>();
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (!address.internal && !isLinkLocal(address.address)) {
        found.add(canonicalIp(address.address));
      }
    }
  }
  return [...found].sort((a, b) => isIP(a) - isIP(b));
}

/** The name this machine answers to over mDNS: the first label of its host
 * name, so "vm.example.com" is reached as "vm.local". */
export function mdnsHostName(): string {
  return Deno.hostname().split(".")[0];
}
