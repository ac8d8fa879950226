import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { clientAddressOf, parseTrustProxy, rateLimitKeyOf } from './client-address.js';

const req = (peer: string, forwarded?: string | string[]) =>
  ({ socket: { remoteAddress: peer }, headers: forwarded === undefined ? {} : { 'x-forwarded-for': forwarded } }) as unknown as IncomingMessage;

describe('the client address behind proxies', () => {
  it('without trust, X-Forwarded-For is ignored', () => {
    expect(clientAddressOf(req('10.0.0.5', '1.2.3.4'), parseTrustProxy('false'))).toBe('10.0.0.5');
  });

  it('with N hops, the address N from the right; a client cannot push its own in front', () => {
    const one = parseTrustProxy('1');
    expect(clientAddressOf(req('10.0.0.5', '203.0.113.9'), one)).toBe('203.0.113.9');
    // The client sent "6.6.6.6"; our one proxy appended the real address.
    expect(clientAddressOf(req('10.0.0.5', '6.6.6.6, 203.0.113.9'), one)).toBe('203.0.113.9');
    expect(clientAddressOf(req('10.0.0.5', ['6.6.6.6', '198.51.100.1, 203.0.113.9']), parseTrustProxy('2'))).toBe('198.51.100.1');
    // More hops than entries: the left-most.
    expect(clientAddressOf(req('10.0.0.5', '203.0.113.9'), parseTrustProxy('5'))).toBe('203.0.113.9');
  });

  it('with CIDRs, the right-most address that is not one of our proxies', () => {
    const trust = parseTrustProxy('10.0.0.0/8, 172.16.0.1');
    expect(clientAddressOf(req('10.0.0.5', '6.6.6.6, 203.0.113.9, 172.16.0.1'), trust)).toBe('203.0.113.9');
    expect(clientAddressOf(req('10.0.0.5', '10.1.1.1'), trust)).toBe('10.1.1.1');
    expect(clientAddressOf(req('192.0.2.1', '6.6.6.6'), trust)).toBe('192.0.2.1');
  });

  it('entries that are not IP addresses are ignored; IPv4-mapped IPv6 is plain IPv4', () => {
    const one = parseTrustProxy('1');
    expect(clientAddressOf(req('::ffff:10.0.0.5', `203.0.113.9, ${'x'.repeat(8000)}, <script>`), one)).toBe('203.0.113.9');
    expect(clientAddressOf(req('::ffff:10.0.0.5'), parseTrustProxy('false'))).toBe('10.0.0.5');
    expect(clientAddressOf(req('10.0.0.5', '[2001:db8::1]'), one)).toBe('2001:db8::1');
  });

  it('IPv6 is keyed by its /64; IPv4 by the address', () => {
    expect(rateLimitKeyOf('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(rateLimitKeyOf('2001:db8:1:2::ffff')).toBe('2001:db8:1:2::/64');
    expect(rateLimitKeyOf('203.0.113.9')).toBe('203.0.113.9');
  });
});
