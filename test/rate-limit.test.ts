import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningApi, startApi } from './support/apps.js';
import { type TestDatabase, createTestDatabase } from './support/database.js';
import { request, validSignup } from './support/http.js';
import { deleteRedisKeys, redisPrefix } from './support/redis.js';

let database: TestDatabase;
let first: RunningApi;
let second: RunningApi;
const prefix = redisPrefix();

beforeAll(async () => {
  database = await createTestDatabase();
  // Two api instances, one Redis: the limit must be shared, not per process.
  const env = { DATABASE_URL: database.url, REDIS_PREFIX: prefix, SIGNUP_RATE_LIMIT_PER_HOUR: '5', TRUST_PROXY: '1' };
  first = await startApi(env);
  second = await startApi(env);
});

afterAll(async () => {
  await first?.close();
  await second?.close();
  await database?.drop();
  await deleteRedisKeys(prefix);
});

const from = (ip: string) => ({ 'x-forwarded-for': ip });

describe('per-IP signup limit across api instances', () => {
  it('five signups spread over both instances pass; the sixth is 429 with Retry-After on either instance', async () => {
    const ip = '203.0.113.7';
    for (let i = 0; i < 5; i++) {
      const instance = i % 2 === 0 ? first : second;
      const res = await request(instance.baseUrl, 'POST', '/v1/signup', { body: validSignup(), headers: from(ip) });
      expect(res.status, `signup ${i + 1}`).toBe(202);
    }
    for (const instance of [first, second]) {
      const res = await request(instance.baseUrl, 'POST', '/v1/signup', { body: validSignup(), headers: from(ip) });
      expect(res.status).toBe(429);
      expect(res.body.code).toBe('rate_limited');
      const retryAfter = Number(res.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThan(3000);
      expect(retryAfter).toBeLessThanOrEqual(3600);
    }
  });

  it('a limited request writes nothing', async () => {
    const ip = '203.0.113.7';
    const body = validSignup({ email: 'limited@example.com' });
    const res = await request(first.baseUrl, 'POST', '/v1/signup', { body, headers: from(ip) });
    expect(res.status).toBe(429);
    const row = await database.db.selectFrom('signups').select('id').where('email', '=', 'limited@example.com').executeTakeFirst();
    expect(row).toBeUndefined();
  });

  it('another IP keeps its own budget', async () => {
    const res = await request(second.baseUrl, 'POST', '/v1/signup', { body: validSignup(), headers: from('198.51.100.20') });
    expect(res.status).toBe(202);
  });

  it('the limit also counts over /trpc', async () => {
    const ip = '198.51.100.99';
    for (let i = 0; i < 5; i++) {
      const res = await request(first.baseUrl, 'POST', '/trpc/signup.create', { body: validSignup(), headers: from(ip) });
      expect(res.status).toBe(200);
    }
    const res = await request(second.baseUrl, 'POST', '/trpc/signup.create', { body: validSignup(), headers: from(ip) });
    expect(res.status).toBe(429);
    expect(res.body.error.data.code).toBe('rate_limited');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
  });
});
