import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningApi, startApi } from './support/apps.js';
import { type TestDatabase, createTestDatabase } from './support/database.js';
import { request } from './support/http.js';
import { deleteRedisKeys, redisPrefix } from './support/redis.js';
import { PrivateRedis } from './support/redis-server.js';

const GiB = 2 ** 30;
let database: TestDatabase;
let first: RunningApi;
let second: RunningApi;
const prefix = redisPrefix();

beforeAll(async () => {
  database = await createTestDatabase();
  // Two instances, one Redis: the per-IP budget is shared.
  const env = {
    DATABASE_URL: database.url,
    REDIS_PREFIX: prefix,
    TRUST_PROXY: '1',
    PRICING_RATE_LIMIT_PER_MINUTE: '4',
    INVOICE_CURRENCY: 'eur',
    INVOICE_ISSUER_NAME: 'Tenantry GmbH',
    INVOICE_ISSUER_ADDRESS: 'Hauptstraße 1; 10115 Berlin',
  };
  first = await startApi(env);
  second = await startApi(env);
});

afterAll(async () => {
  await first?.close();
  await second?.close();
  await database?.drop();
  await deleteRedisKeys(prefix);
});

const estimate = (api: RunningApi, body: unknown, ip: string) => request(api.baseUrl, 'POST', '/v1/pricing/estimate', { body, headers: { 'x-forwarded-for': ip } });

describe('POST /v1/pricing/estimate', () => {
  it('prices a month of usage with the month close engine, in the installation currency', async () => {
    const res = await estimate(
      first,
      {
        plan: 'pro',
        usage: { apiRequests: 1_234_567, egressBytes: 62.5 * GiB, storageBytes: 12.5 * GiB, fileStorageBytes: 150 * GiB, realtimeConnections: 750 },
      },
      '198.51.100.1',
    );
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: 'estimate',
      number: null,
      tenantId: null,
      currency: 'EUR',
      planVersion: 1,
      issuer: { name: 'Tenantry GmbH', address: ['Hauptstraße 1', '10115 Berlin'] },
      subtotalMinor: 3_766,
      totalMinor: 3_766,
    });
    expect(res.body.lines.map((l: { kind: string; amountMinor: number }) => [l.kind, l.amountMinor])).toEqual([
      ['base', 2_500],
      ['apiRequests', 240],
      ['egressBytes', 113],
      ['storageBytes', 563],
      ['fileStorageBytes', 100],
      ['realtimeConnections', 250],
    ]);
    expect(res.body.lines[3].description).toContain('GiB-month (time-weighted average)');
  });

  it('usage may be left out (zero); the free plan costs nothing', async () => {
    const res = await estimate(first, { plan: 'free' }, '198.51.100.2');
    expect([res.status, res.body.totalMinor, res.body.lines.length]).toEqual([200, 0, 1]);
  });

  it.each([
    ['an unknown plan', { plan: 'platinum' }, 'plan'],
    ['a negative quantity', { plan: 'pro', usage: { apiRequests: -1 } }, 'usage.apiRequests'],
    ['a fraction', { plan: 'pro', usage: { egressBytes: 1.5 } }, 'usage.egressBytes'],
    ['a number as a string', { plan: 'pro', usage: { storageBytes: '100' } }, 'usage.storageBytes'],
    ['beyond 2^53', { plan: 'pro', usage: { fileStorageBytes: 2 ** 60 } }, 'usage.fileStorageBytes'],
    ['an unknown meter', { plan: 'pro', usage: { cpuSeconds: 5 } }, 'usage'],
    ['no plan', {}, 'plan'],
  ])('%s is 400 naming the field', async (_, body, field) => {
    const res = await estimate(first, body, '198.51.100.3');
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    expect(res.body.fields.map((f: { field: string }) => f.field)).toContain(field);
  });

  it('is limited per client IP across instances (429 + Retry-After); another IP keeps its budget', async () => {
    const ip = '203.0.113.50';
    for (let i = 0; i < 4; i++) expect((await estimate(i % 2 ? second : first, { plan: 'pro' }, ip)).status, `request ${i + 1}`).toBe(200);
    for (const api of [first, second]) {
      const res = await estimate(api, { plan: 'pro' }, ip);
      expect([res.status, res.body.code]).toEqual([429, 'rate_limited']);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(Number(res.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    }
    expect((await estimate(second, { plan: 'pro' }, '203.0.113.51')).status).toBe(200);
  });

  it('answers over tRPC too (the SDK)', async () => {
    const res = await request(first.baseUrl, 'POST', '/trpc/pricing.estimate', { body: { plan: 'enterprise' }, headers: { 'x-forwarded-for': '198.51.100.9' } });
    expect(res.status).toBe(200);
    expect(res.body.result.data.totalMinor).toBe(60_000);
  });
});

describe('with Redis down', () => {
  let redis: PrivateRedis;
  let api: RunningApi;
  beforeAll(async () => {
    redis = await PrivateRedis.start();
    api = await startApi({ DATABASE_URL: database.url, REDIS_URL: redis.url, REDIS_PREFIX: 'tenantry', TRUST_PROXY: '1', PRICING_RATE_LIMIT_PER_MINUTE: '3' });
  });
  afterAll(async () => {
    await api?.close();
    await redis?.kill();
  });

  it('still answers (fails open), and a per-instance memory limiter still bounds each client', async () => {
    await redis.kill();
    const ip = '203.0.113.77';
    for (let i = 0; i < 3; i++) {
      const res = await estimate(api, { plan: 'pro' }, ip);
      expect([res.status, res.body.totalMinor]).toEqual([200, 2_500]);
      expect(res.ms).toBeLessThan(2_000);
    }
    const limited = await estimate(api, { plan: 'pro' }, ip);
    expect([limited.status, limited.body.code]).toEqual([429, 'rate_limited']);
    expect((await estimate(api, { plan: 'pro' }, '203.0.113.78')).status).toBe(200);
  });
});
