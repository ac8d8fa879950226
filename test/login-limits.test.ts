import { beforeAll, describe, expect, it } from 'vitest';
import { type RunningApi, startApi } from './support/apps.js';
import { request } from './support/http.js';
import { useStack } from './support/stack.js';

/**
 * Password guessing from every angle, with two api instances sharing Redis. The api trusts
 * one proxy hop (TRUST_PROXY=1), so each request's X-Forwarded-For is its client address.
 */
const stack = useStack({ api: { TRUST_PROXY: '1', LOGIN_ATTEMPTS_PER_ADDRESS: '30' } });
let second: RunningApi;
let owner: { email: string; password: string };

beforeAll(async () => {
  const tenant = await stack.signUpTenant();
  owner = { email: tenant.email, password: tenant.password };
  second = await startApi({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix, TRUST_PROXY: '1', LOGIN_ATTEMPTS_PER_ADDRESS: '30' });
  return () => second.close();
});

function login(api: RunningApi, email: string, password: string, ip: string) {
  return request(api.baseUrl, 'POST', '/v1/auth/login', { body: { email, password }, headers: { 'x-forwarded-for': ip } });
}

describe('login limits', () => {
  it('one address trying many accounts is stopped after LOGIN_ATTEMPTS_PER_ADDRESS attempts, on any instance, before hashing', async () => {
    const ip = '198.51.100.10';
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await login(i % 2 ? second : stack.api, `nobody${i}@example.com`, 'wrong-password', ip)).status);
    expect(statuses).toEqual(Array(30).fill(401));
    const refused = await login(stack.api, 'another@example.com', 'wrong-password', ip);
    expect(refused.status).toBe(429);
    expect(refused.body.code).toBe('rate_limited');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    // A refusal costs no password hash: far quicker than an argon2id verification.
    expect(refused.ms).toBeLessThan(50);
  });

  it('every call of a tRPC batch counts: three batches of 10 logins spend the budget of 30', async () => {
    const ip = '198.51.100.77';
    const batch = async () => {
      const body: Record<string, unknown> = {};
      for (let i = 0; i < 10; i++) body[i] = { email: `batch${i}@example.com`, password: 'wrong-password' };
      const res = await fetch(`${stack.api.baseUrl}/trpc/${Array(10).fill('auth.login').join(',')}?batch=1`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': ip },
        body: JSON.stringify(body),
      });
      return ((await res.json()) as Array<{ error: { data: { code: string } } }>).map((r) => r.error.data.code);
    };
    for (let i = 0; i < 3; i++) expect(await batch()).toEqual(Array(10).fill('invalid_credentials'));
    expect(await batch()).toEqual(Array(10).fill('rate_limited'));
  });

  it('IPv6 addresses in one /64 share a budget; another /64 has its own', async () => {
    for (let i = 0; i < 30; i++) await login(stack.api, `v6-${i}@example.com`, 'wrong-password', `2001:db8:1:2::${(i + 1).toString(16)}`);
    expect((await login(stack.api, 'v6-x@example.com', 'wrong-password', '2001:db8:1:2:ffff::1')).status).toBe(429);
    expect((await login(stack.api, 'v6-x@example.com', 'wrong-password', '2001:db8:1:3::1')).status).toBe(401);
  });

  it('many addresses on one account: slowed down after 20 failures, but the owner from a known address gets in', async () => {
    // The owner signs in once from home: that address becomes known to the account.
    const home = '203.0.113.1';
    expect((await login(stack.api, owner.email, owner.password, home)).status).toBe(200);
    // A botnet: 20 addresses, one wrong guess each (no per-address limit is reached).
    for (let i = 0; i < 20; i++) expect((await login(second, owner.email, `guess-${i}`, `192.0.2.${i + 1}`)).status).toBe(401);
    // From a new address: one attempt per slowdown interval; the next right after is 429.
    expect((await login(stack.api, owner.email, 'guess-x', '192.0.2.100')).status).toBe(401);
    const slowed = await login(second, owner.email, 'guess-y', '192.0.2.101');
    expect(slowed.status).toBe(429);
    expect(Number(slowed.headers.get('retry-after'))).toBeLessThanOrEqual(15);
    // Not a lock-out: the owner, from the address they used before, still signs in at once.
    expect((await login(stack.api, owner.email, owner.password, home)).status).toBe(200);
  });

  it('one address guessing one account: the 11th failure in a row is 429', async () => {
    const ip = '203.0.113.50';
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) statuses.push((await login(stack.api, 'target@example.com', `guess-${i}`, ip)).status);
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(statuses[10]).toBe(429);
  });

  it('X-Forwarded-For junk is ignored: it neither becomes a key nor picks the address', async () => {
    // With one trusted hop, the client is the last real address; junk entries do not count.
    const res = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', {
      body: { email: owner.email, password: owner.password },
      headers: { 'x-forwarded-for': `203.0.113.1, ${'x'.repeat(8_000)}, not-an-ip` },
    });
    expect(res.status).toBe(200);
    const keys = await stack.api.api.deps.redis.keys(`${stack.prefix}*`);
    expect(keys.some((k) => k.includes('xxxx') || k.includes('not-an-ip'))).toBe(false);
  });
});
