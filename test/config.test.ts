import { parseApiConfig } from '@tenantry/api';
import { parseWorkerConfig } from '@tenantry/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PLATFORM_KEY } from './support/apps.js';
import { type TestDatabase, createTestDatabase } from './support/database.js';
import { TEST_REDIS_URL } from './support/env.js';
import { runToExit } from './support/process.js';
import { redisPrefix } from './support/redis.js';

describe('config parsing', () => {
  it('defaults follow the documented design', () => {
    const config = parseApiConfig({});
    expect(config).toMatchObject({
      DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/tenantry',
      REDIS_URL: 'redis://127.0.0.1:6379',
      PORT: 3000,
      HOSTED_MODE: false,
      MULTI_TENANT_ENABLED: false,
      SIGNUP_RATE_LIMIT_PER_HOUR: 5,
      TRUST_PROXY: { kind: 'none' },
    });
  });

  it.each([
    [{ HOSTED_MODE: 'true' }, 'MULTI_TENANT_ENABLED'],
    [{ HOSTED_MODE: 'true', MULTI_TENANT_ENABLED: 'false' }, 'MULTI_TENANT_ENABLED'],
    [{ PORT: 'eighty' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ HOSTED_MODE: 'yes' }, 'HOSTED_MODE'],
    [{ DATABASE_URL: 'mysql://localhost/x' }, 'DATABASE_URL'],
    [{ REDIS_URL: 'localhost:6379' }, 'REDIS_URL'],
    [{ SIGNUP_RATE_LIMIT_PER_HOUR: '0' }, 'SIGNUP_RATE_LIMIT_PER_HOUR'],
    [{ REDIS_PREFIX: 'bad:prefix' }, 'REDIS_PREFIX'],
    [{ TRUST_PROXY: 'true' }, 'TRUST_PROXY: "true" would trust any client'],
    [{ METRICS_PORT: '9391' }, 'METRICS_PORT: is no longer read: set API_METRICS_PORT'],
    [{ TRUST_PROXY: '10.0.0.0/8, proxy.local' }, 'TRUST_PROXY: "proxy.local" is neither'],
  ])('api rejects %o naming %s', (env, variable) => {
    expect(() => parseApiConfig(env)).toThrow(new RegExp(`Invalid configuration:[\\s\\S]*${variable}`));
  });

  it('TRUST_PROXY takes a hop count or addresses and CIDRs', () => {
    expect(parseApiConfig({ TRUST_PROXY: '2' }).TRUST_PROXY).toEqual({ kind: 'hops', hops: 2 });
    const ranges = parseApiConfig({ TRUST_PROXY: '10.0.0.0/8, ::1, ::ffff:192.168.0.0/112' }).TRUST_PROXY;
    expect(ranges.kind).toBe('ranges');
    expect(ranges.kind === 'ranges' && ranges.ranges.map(([a, bits]) => `${a.toString()}/${bits}`)).toEqual(['10.0.0.0/8', '::1/128', '192.168.0.0/16']);
  });

  it('worker rejects bad values, naming the variable', () => {
    expect(() => parseWorkerConfig({ METRICS_PORT: '9391' })).toThrow(/METRICS_PORT: is no longer read: set API_METRICS_PORT .* and WORKER_METRICS_PORT/);
    expect(() => parseWorkerConfig({ WORKER_CONCURRENCY: '-1' })).toThrow(/WORKER_CONCURRENCY/);
    expect(() => parseWorkerConfig({ REDIS_URL: 'nope' })).toThrow(/REDIS_URL/);
  });
});

describe('bad config at boot', () => {
  let database: TestDatabase;
  let holder: Server;
  let heldPort: number;
  beforeAll(async () => {
    database = await createTestDatabase();
    holder = createServer();
    heldPort = await new Promise<number>((resolve) => holder.listen(0, '127.0.0.1', () => resolve((holder.address() as AddressInfo).port)));
  });
  afterAll(async () => {
    holder?.close();
    await database?.drop();
  });
  const bootEnv = () => ({ DATABASE_URL: database.url, REDIS_URL: TEST_REDIS_URL, REDIS_PREFIX: redisPrefix(), HOST: '127.0.0.1', LOG_LEVEL: 'silent', PLATFORM_API_KEY: PLATFORM_KEY });

  it.each([
    ['api', 'PORT', { API_METRICS_PORT: '0' }],
    ['api', 'API_METRICS_PORT', { PORT: '0' }],
    ['worker', 'WORKER_METRICS_PORT', { WORKER_METRICS_HOST: '127.0.0.1' }],
  ] as const)('%s: %s in use is one line naming the variable, exit 1, no stack trace', async (app, variable, env) => {
    const { code, output } = await runToExit(app, { ...bootEnv(), ...env, [variable]: String(heldPort) }, 30_000);
    expect(code).toBe(1);
    expect(output.trim()).toBe(`${variable}=${heldPort} is already in use on 127.0.0.1: stop what holds it, or set ${variable} to another port`);
  });

  it('api: Postgres out of reach is one line naming DATABASE_URL', async () => {
    const { code, output } = await runToExit('api', { ...bootEnv(), DATABASE_URL: `postgres://postgres@127.0.0.1:${heldPort}/tenantry`, PORT: '0', API_METRICS_PORT: '0' }, 30_000);
    expect(code).toBe(1);
    expect(output.trim()).toMatch(new RegExp(`^Cannot reach PostgreSQL at 127\\.0\\.0\\.1:${heldPort} \\(DATABASE_URL\\): .+ Start it, or point DATABASE_URL at a running server\\.$`));
  });

  it('api: HOSTED_MODE=true without MULTI_TENANT_ENABLED exits 1 naming the variable', async () => {
    const { code, output } = await runToExit('api', { HOSTED_MODE: 'true' });
    expect(code).toBe(1);
    expect(output).toContain('MULTI_TENANT_ENABLED');
    expect(output).toContain('HOSTED_MODE=true requires MULTI_TENANT_ENABLED=true');
  });

  it('api: an invalid value exits 1 with a clear message', async () => {
    const { code, output } = await runToExit('api', { PORT: 'not-a-port' });
    expect(code).toBe(1);
    expect(output).toMatch(/Invalid configuration:\n\s+PORT: /);
  });

  it('worker: an invalid value exits 1 with a clear message', async () => {
    const { code, output } = await runToExit('worker', { REDIS_URL: 'http://example.com' });
    expect(code).toBe(1);
    expect(output).toMatch(/Invalid configuration:\n\s+REDIS_URL: must be a redis/);
  });
});
