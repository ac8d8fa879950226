import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateLicenseKeyPair, issueLicense } from '../packages/entitlements/src/index.js';
import { PLATFORM_KEY, type RunningApi, startApi, startWorker } from './support/apps.js';
import { type TestDatabase, createTestDatabase } from './support/database.js';
import { request, waitFor } from './support/http.js';
import { deleteRedisKeys, redisPrefix } from './support/redis.js';

/** A self-hosted installation: no hosted mode, entitlements from a signed license. */
let database: TestDatabase;
const prefix = redisPrefix();
let keys: { privateKey: string; publicKey: string };
const running: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  database = await createTestDatabase();
  keys = await generateLicenseKeyPair();
});

afterAll(async () => {
  for (const app of running.reverse()) await app.close();
  await database?.drop();
  await deleteRedisKeys(prefix);
});

const selfHosted = (license: string): Record<string, string> => ({
  DATABASE_URL: database.url,
  REDIS_PREFIX: prefix,
  HOSTED_MODE: 'false',
  LICENSE: license,
  LICENSE_PUBLIC_KEY: keys.publicKey,
});

describe('self-hosted with a license', () => {
  let api: RunningApi;
  let token: string;

  it("every tenant gets the license's plan", async () => {
    const license = await issueLicense({ privateKey: keys.privateKey, customer: 'acme-selfhosted', plan: 'enterprise', days: 30 });
    api = await startApi(selfHosted(license));
    running.push(api);
    running.push(await startWorker({ DATABASE_URL: database.url, REDIS_PREFIX: prefix }));
    const created = await request(api.baseUrl, 'POST', '/v1/tenants', {
      token: PLATFORM_KEY,
      body: { name: 'On Prem Team', ownerEmail: 'admin@onprem.example', ownerPassword: 'on-prem-passphrase' },
    });
    await waitFor(async () => ((await request(api.baseUrl, 'GET', `/v1/tenants/${created.body.tenantId}`, { token: PLATFORM_KEY })).body.status === 'active' ? true : undefined));
    token = (await request(api.baseUrl, 'POST', '/v1/auth/login', { body: { email: 'admin@onprem.example', password: 'on-prem-passphrase' } })).body.token;
    // The tenant's own billing state is a trial; the license (enterprise) decides.
    const key = await request(api.baseUrl, 'POST', '/v1/api-keys', { token, body: { name: 'ci', scope: 'write' } });
    expect(key.status).toBe(201);
  });

  it('an expired license keeps reads and refuses writes (402)', async () => {
    const expired = await issueLicense({ privateKey: keys.privateKey, customer: 'acme-selfhosted', plan: 'enterprise', expiresAt: new Date(Date.now() - 60_000), now: Date.now() - 86_400_000 });
    const api2 = await startApi(selfHosted(expired));
    running.push(api2);
    expect((await request(api2.baseUrl, 'GET', '/v1/api-keys', { token })).status).toBe(200);
    const write = await request(api2.baseUrl, 'POST', '/v1/api-keys', { token, body: { name: 'late', scope: 'read' } });
    expect([write.status, write.body.code]).toEqual([402, 'subscription_expired']);
  });

  it('a tampered or foreign license stops the api at boot, never a silent grant', async () => {
    const license = await issueLicense({ privateKey: keys.privateKey, customer: 'acme-selfhosted', plan: 'pro', days: 30 });
    const [header, payload, signature] = license.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    const tampered = [header, Buffer.from(JSON.stringify({ ...claims, plan: 'enterprise' })).toString('base64url'), signature].join('.');
    await expect(startApi(selfHosted(tampered))).rejects.toMatchObject({ code: 'license_invalid' });

    const other = await generateLicenseKeyPair();
    const foreign = await issueLicense({ privateKey: other.privateKey, customer: 'mallory', plan: 'enterprise', days: 30 });
    await expect(startApi(selfHosted(foreign))).rejects.toMatchObject({ code: expect.stringMatching(/^license_(wrong_key|invalid)$/) });
  });
});
