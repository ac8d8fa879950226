import { parseApiConfig } from '@tenantry/api';
import { parseWorkerConfig } from '@tenantry/worker';
import { describe, expect, it } from 'vitest';
import { runToExit } from './support/process.js';

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
    expect(() => parseWorkerConfig({ WORKER_CONCURRENCY: '-1' })).toThrow(/WORKER_CONCURRENCY/);
    expect(() => parseWorkerConfig({ REDIS_URL: 'nope' })).toThrow(/REDIS_URL/);
  });
});

describe('bad config at boot', () => {
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
