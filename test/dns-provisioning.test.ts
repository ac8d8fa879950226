import { Resolver } from 'node:dns/promises';
import type { WorkerInstance } from '@tenantry/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_KEY, type RunningApi, startApi, startWorker } from './support/apps.js';
import { type TestDatabase, createTestDatabase } from './support/database.js';
import { request, requestOnHost, validSignup, waitForSignup } from './support/http.js';
import { PrivatePowerDns } from './support/powerdns.js';
import { deleteRedisKeys, redisPrefix } from './support/redis.js';

/** Provisioning and purge keep <slug>.<zone> in a real PowerDNS; the api checks the Host. */
let pdns: PrivatePowerDns;
let database: TestDatabase;
let api: RunningApi;
let worker: WorkerInstance;
let resolver: Resolver;
const prefix = redisPrefix();

beforeAll(async () => {
  pdns = await PrivatePowerDns.start('tenants.test');
  resolver = new Resolver();
  resolver.setServers([`127.0.0.1:${pdns.dnsPort}`]);
  database = await createTestDatabase();
  const dns = { TENANT_DNS_PROVIDER: 'powerdns', TENANT_DNS_ZONE: 'tenants.test', TENANT_DNS_TARGET: '127.0.0.20', PDNS_API_URL: pdns.apiUrl, PDNS_API_KEY: pdns.apiKey };
  const env = { DATABASE_URL: database.url, REDIS_PREFIX: prefix, ...dns };
  api = await startApi({ ...env, SIGNUP_RATE_LIMIT_PER_HOUR: '1000' });
  worker = await startWorker(env);
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
  await database?.drop();
  await deleteRedisKeys(prefix);
  await pdns?.stop();
});

async function signUp(orgName: string) {
  const body = validSignup({ orgName });
  const accepted = await request(api.baseUrl, 'POST', '/v1/signup', { body });
  const { tenantId } = await waitForSignup(api.baseUrl, accepted.body.signupId);
  const login = await request(api.baseUrl, 'POST', '/v1/auth/login', { body: { email: body.email, password: body.password } });
  return { tenantId: tenantId as string, token: login.body.token as string };
}

describe('per-tenant DNS', () => {
  it('provisioning publishes <slug>.<zone>; health reports it; purge removes it', async () => {
    const { tenantId } = await signUp('Dns Co');
    expect(await resolver.resolve4('dns-co.tenants.test')).toEqual(['127.0.0.20']);
    const health = await request(api.baseUrl, 'GET', `/v1/tenants/${tenantId}/health`, { token: PLATFORM_KEY });
    expect(health.body.dns).toEqual({ status: 'ok', name: 'dns-co.tenants.test' });

    await request(api.baseUrl, 'DELETE', `/v1/tenants/${tenantId}`, { token: PLATFORM_KEY });
    await worker.purge(new Date(Date.now() + 31 * 86_400_000));
    await expect(resolver.resolve4('dns-co.tenants.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it("a token is refused on another tenant's hostname, accepted on its own and on the api's", async () => {
    const a = await signUp('Host Alpha');
    await signUp('Host Beta');
    const on = (host: string) => requestOnHost(api.baseUrl, host, 'GET', '/v1/me', { token: a.token });
    expect((await on('host-alpha.tenants.test')).status).toBe(200);
    const other = await on('host-beta.tenants.test');
    expect([other.status, other.body.code]).toEqual([403, 'tenant_host_mismatch']);
    expect((await on('api.example.com')).status).toBe(200);
  });

  it('a record missing from DNS shows in the health check', async () => {
    const { tenantId } = await signUp('Lost Record');
    const { PowerDnsProvider } = await import('@tenantry/dns');
    await new PowerDnsProvider({ apiUrl: pdns.apiUrl, apiKey: pdns.apiKey, zone: 'tenants.test', target: '127.0.0.20' }).removeTenantRecord('lost-record');
    const health = await request(api.baseUrl, 'GET', `/v1/tenants/${tenantId}/health`, { token: PLATFORM_KEY });
    expect(health.body.dns).toEqual({ status: 'missing', name: 'lost-record.tenants.test' });
  });

  it('DNS settings are checked at boot: PowerDNS needs its API, key, zone and target', async () => {
    const { parseWorkerConfig } = await import('@tenantry/worker');
    expect(() => parseWorkerConfig({ TENANT_DNS_PROVIDER: 'powerdns', TENANT_DNS_ZONE: 'tenants.test' })).toThrow(/PDNS_API_URL[\s\S]*is required/);
    expect(() => parseWorkerConfig({ TENANT_DNS_ZONE: 'Not A Zone' })).toThrow(/TENANT_DNS_ZONE/);
  });
});
