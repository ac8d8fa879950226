import type { WorkerInstance } from '@tenantry/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningApi, startApi, startWorker } from '../support/apps.js';
import { type TestDatabase, createTestDatabase } from '../support/database.js';
import { request, validSignup, waitFor, waitForSignup } from '../support/http.js';
import { PrivateRedis } from '../support/redis-server.js';

let database: TestDatabase;
let redis: PrivateRedis;
let api: RunningApi;
let worker: WorkerInstance;

beforeAll(async () => {
  database = await createTestDatabase();
  redis = await PrivateRedis.start();
  const env = { DATABASE_URL: database.url, REDIS_URL: redis.url, REDIS_PREFIX: 'tenantry' };
  api = await startApi({ ...env, SIGNUP_RATE_LIMIT_PER_HOUR: '100' });
  worker = await startWorker(env);
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
  await redis?.kill();
  await database?.drop();
});

describe('Redis outage', () => {
  const body = validSignup({ email: 'outage@example.com', orgName: 'Outage Org' });

  it('signup answers 503 fast (never hangs, never 500) and writes nothing; /readyz is 503', async () => {
    await redis.kill();
    for (let i = 0; i < 3; i++) {
      const res = await request(api.baseUrl, 'POST', '/v1/signup', { body });
      expect(res.status).toBe(503);
      expect(res.body.code).toBe('dependency_unavailable');
      expect(res.ms).toBeLessThan(2_000);
    }
    const row = await database.db.selectFrom('signups').select('id').where('email', '=', 'outage@example.com').executeTakeFirst();
    expect(row).toBeUndefined();

    const ready = await request(api.baseUrl, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.checks).toEqual({ postgres: 'ok', redis: 'down' });
    expect(ready.ms).toBeLessThan(2_000);
    expect((await request(api.baseUrl, 'GET', '/healthz')).status).toBe(200);
  });

  it('Redis back → the same signup goes through and is provisioned', async () => {
    await redis.start();
    // The api reconnects by itself (retry at most every second).
    await waitFor(async () => ((await request(api.baseUrl, 'GET', '/readyz')).status === 200 ? true : undefined), 10_000);
    const res = await request(api.baseUrl, 'POST', '/v1/signup', { body });
    expect(res.status).toBe(202);
    const final = await waitForSignup(api.baseUrl, res.body.signupId, 30_000);
    expect(final.status).toBe('ready');
  });

  it('login keeps working while Redis is down (its limiter falls back to memory)', async () => {
    await redis.kill();
    const login = await request(api.baseUrl, 'POST', '/v1/auth/login', { body: { email: body.email, password: body.password } });
    expect(login.status).toBe(200);
    const me = await request(api.baseUrl, 'GET', '/v1/me', { token: login.body.token });
    expect(me.status).toBe(200);
    expect(me.body.tenant.name).toBe('Outage Org');
  });
});
