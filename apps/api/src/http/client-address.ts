import type { IncomingMessage } from 'node:http';
import ipaddr from 'ipaddr.js';

/**
 * Which proxies in front of the api may be believed about the client's address
 * (TRUST_PROXY), the way reverse-proxy-aware frameworks put it (Express's proxy-addr):
 * - `none`: X-Forwarded-For is ignored; the client is the TCP peer;
 * - `hops`: exactly N proxies of ours sit in front (each appends the address it saw);
 * - `ranges`: our proxies are the addresses in these CIDRs.
 * "Trust everyone" is not offered: then any client picks its own address — and so its
 * own rate-limit budget — by sending the header.
 */
export type TrustProxy = { kind: 'none' } | { kind: 'hops'; hops: number } | { kind: 'ranges'; ranges: Array<[ipaddr.IPv4 | ipaddr.IPv6, number]> };

/** Parse TRUST_PROXY: `false` / `0`, a hop count, or comma-separated IPs and CIDRs. Throws with a message naming the bad part. */
export function parseTrustProxy(setting: string): TrustProxy {
  const value = setting.trim();
  if (value === '' || value === 'false' || value === '0') return { kind: 'none' };
  if (value === 'true') {
    throw new Error('"true" would trust any client\'s X-Forwarded-For; give the number of proxies in front of the api (e.g. 1) or their addresses/CIDRs (e.g. 10.0.0.0/8)');
  }
  if (/^\d+$/.test(value)) return { kind: 'hops', hops: Number(value) };
  const ranges = value.split(',').map((part) => {
    const entry = part.trim();
    try {
      if (entry.includes('/')) {
        const [address, bits] = ipaddr.parseCIDR(entry);
        return [normalised(address), address.kind() === 'ipv6' && normalised(address).kind() === 'ipv4' ? Math.max(0, bits - 96) : bits] as [ipaddr.IPv4 | ipaddr.IPv6, number];
      }
      const address = normalised(ipaddr.parse(entry));
      return [address, address.kind() === 'ipv4' ? 32 : 128] as [ipaddr.IPv4 | ipaddr.IPv6, number];
    } catch {
      throw new Error(`"${entry}" is neither an IP address nor a CIDR range`);
    }
  });
  return { kind: 'ranges', ranges };
}

/** IPv4-mapped IPv6 (::ffff:1.2.3.4, as dual-stack sockets report IPv4 peers) as plain IPv4. */
function normalised(address: ipaddr.IPv4 | ipaddr.IPv6): ipaddr.IPv4 | ipaddr.IPv6 {
  return address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress() ? (address as ipaddr.IPv6).toIPv4Address() : address;
}

function parseAddress(text: string | undefined): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  if (!text) return undefined;
  const trimmed = text.trim().replace(/^\[(.*)\]$/, '$1');
  return ipaddr.isValid(trimmed) ? normalised(ipaddr.parse(trimmed)) : undefined;
}

function isTrusted(address: ipaddr.IPv4 | ipaddr.IPv6, ranges: Array<[ipaddr.IPv4 | ipaddr.IPv6, number]>): boolean {
  return ranges.some(([range, bits]) => range.kind() === address.kind() && address.match(range, bits));
}

/**
 * The client's address: the right-most address in [X-Forwarded-For…, TCP peer] that is not
 * one of our proxies. Entries that are not IP addresses are ignored, so a header of junk
 * (or 8 KB of it) can neither become a rate-limit key nor shift the count.
 */
export function clientAddressOf(req: IncomingMessage, trust: TrustProxy): string {
  const peer = parseAddress(req.socket.remoteAddress);
  if (!peer) return 'unknown';
  if (trust.kind === 'none') return peer.toString();
  const header = req.headers['x-forwarded-for'];
  const forwarded = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map(parseAddress)
    .filter((a): a is ipaddr.IPv4 | ipaddr.IPv6 => a !== undefined);
  const chain = [...forwarded, peer];
  if (trust.kind === 'hops') return chain[Math.max(0, chain.length - 1 - trust.hops)]!.toString();
  for (let i = chain.length - 1; i >= 0; i--) if (!isTrusted(chain[i]!, trust.ranges)) return chain[i]!.toString();
  return chain[0]!.toString();
}

/**
 * The rate-limit key of an address. IPv6 by its /64: one subscriber usually holds a whole
 * /64, and keying single addresses would give them 2^64 budgets.
 */
export function rateLimitKeyOf(address: string): string {
  if (!ipaddr.isValid(address)) return address;
  const parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const parts = (parsed as ipaddr.IPv6).parts.slice(0, 4).map((p) => p.toString(16));
  return `${parts.join(':')}::/64`;
}
