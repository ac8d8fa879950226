import { once } from 'node:events';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { UnsafeWebhookTargetError } from '@tenantry/domain';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Resolver, postWebhook } from './http.js';

/** A receiver on loopback that counts what reaches it: a refused target must never get here. */
let server: Server;
let port: number;
const received: string[] = [];
beforeAll(async () => {
  server = createServer((req, res) => {
    received.push(`${req.method} ${req.headers.host}`);
    res.statusCode = req.url === '/redirect' ? 302 : 204;
    if (req.url === '/redirect') res.setHeader('location', 'http://127.0.0.1/elsewhere');
    res.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});
afterAll(() => server.close());

/** A resolver with fixed answers, standing in for DNS (no network here, and none wanted). */
const fixed =
  (answers: Record<string, string[]>): Resolver =>
  async (hostname) =>
    (answers[hostname] ?? []).map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));

const post = (url: string, allowPrivate: boolean, resolver?: Resolver) =>
  postWebhook(url, {}, '{}', { allowPrivate, timeoutMs: 2_000, ...(resolver ? { resolver } : {}) });

describe('webhook targets (no private targets allowed)', () => {
  it.each([
    ['loopback', `https://127.0.0.1:${'PORT'}/hook`],
    ['loopback, another /8 address', 'https://127.9.9.9/hook'],
    ['10/8', 'https://10.1.2.3/hook'],
    ['172.16/12', 'https://172.20.0.1/hook'],
    ['192.168/16', 'https://192.168.1.1/hook'],
    ['link-local (cloud metadata)', 'https://169.254.169.254/latest/meta-data'],
    ['CGNAT', 'https://100.64.0.1/hook'],
    ['unspecified', 'https://0.0.0.0/hook'],
    ['IPv6 loopback', 'https://[::1]/hook'],
    ['IPv6 unique-local fc00::/7', 'https://[fd12:3456::1]/hook'],
    ['IPv6 link-local', 'https://[fe80::1]/hook'],
    ['IPv4-mapped IPv6 loopback', 'https://[::ffff:127.0.0.1]/hook'],
    ['IPv4 written as one number', 'https://2130706433/hook'],
    ['localhost', `https://localhost:${'PORT'}/hook`],
  ])('refuses %s', async (_, url) => {
    const before = received.length;
    await expect(post(url.replace('PORT', String(port)), false)).rejects.toThrow(UnsafeWebhookTargetError);
    expect(received.length).toBe(before);
  });

  it('refuses a name that resolves to a private address, checked after resolution, without connecting', async () => {
    const before = received.length;
    const resolver = fixed({ 'hooks.example.test': ['127.0.0.1'], 'split.example.test': ['93.184.216.34', '10.0.0.7'], 'v6.example.test': ['fd00::5'] });
    await expect(post(`https://hooks.example.test:${port}/hook`, false, resolver)).rejects.toThrow(/resolves to a private or special address \(127\.0\.0\.1\)/);
    // One private answer among public ones is enough to refuse: there is no picking the "good" one.
    await expect(post(`https://split.example.test:${port}/hook`, false, resolver)).rejects.toThrow(/10\.0\.0\.7/);
    await expect(post(`https://v6.example.test:${port}/hook`, false, resolver)).rejects.toThrow(/fd00::5/);
    expect(received.length).toBe(before);
  });

  it('refuses plain http', async () => {
    await expect(post('http://hooks.example.test/hook', false)).rejects.toThrow(/must be an https URL/);
  });
});

describe('with WEBHOOK_ALLOW_PRIVATE_TARGETS', () => {
  it('connects to the address the lookup checked (a name only the resolver knows reaches the loopback receiver)', async () => {
    const before = received.length;
    const res = await post(`http://receiver.example.test:${port}/hook`, true, fixed({ 'receiver.example.test': ['127.0.0.1'] }));
    expect(res.status).toBe(204);
    expect(received.slice(before)).toEqual([`POST receiver.example.test:${port}`]);
  });

  it('does not follow redirects', async () => {
    const before = received.length;
    const res = await post(`http://127.0.0.1:${port}/redirect`, true);
    expect(res.status).toBe(302);
    expect(received.length).toBe(before + 1);
  });
});
