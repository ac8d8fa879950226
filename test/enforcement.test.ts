import { fromPublicId } from '@tenantry/domain';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningApi, startApi } from './support/apps.js';
import { request, waitFor } from './support/http.js';
import { useStack } from './support/stack.js';

const stack = useStack();
let tenant: { tenantId: string; token: string };
let other: { tenantId: string; token: string };
let second: RunningApi;

beforeAll(async () => {
  tenant = await stack.signUpTenant({ orgName: 'Entitled Co' });
  other = await stack.signUpTenant({ orgName: 'Other Co' });
  // A second api instance on the same database and Redis: billing changes must reach it too.
  second = await startApi({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix });
});

afterAll(async () => {
  await second?.close();
});

const billing = (tenantId: string, body: Record<string, unknown>) => stack.admin('PUT', `/v1/tenants/${tenantId}/billing-state`, { body });
const createKey = (baseUrl: string, token: string, scope = 'write') =>
  request(baseUrl, 'POST', '/v1/api-keys', { token, body: { name: `key-${scope}-${Date.now()}`, scope } });

describe('entitlements on every tenant call', () => {
  it('a capability the plan lacks is 403 capability_missing, naming it; tenant calls carry the staleness header', async () => {
    const res = await createKey(stack.api.baseUrl, tenant.token);
    expect([res.status, res.body.code]).toEqual([403, 'capability_missing']);
    expect(res.body.message).toContain('api_keys');
    expect(res.headers.get('tenantry-entitlements-staleness')).toBe('0');
  });

  it('an upgrade is seen at once by this instance and within a second by another', async () => {
    // Warm the second instance's cache with the trial entitlements first.
    expect((await createKey(second.baseUrl, tenant.token)).status).toBe(403);
    await billing(tenant.tenantId, { plan: 'pro', subscriptionState: 'active' });
    expect((await createKey(stack.api.baseUrl, tenant.token)).status).toBe(201);
    const started = Date.now();
    await waitFor(async () => ((await createKey(second.baseUrl, tenant.token)).status === 201 ? true : undefined), 5_000, 20);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('an API key acts for its tenant within its scope', async () => {
    const write = (await createKey(stack.api.baseUrl, tenant.token, 'write')).body.key as string;
    const read = (await createKey(stack.api.baseUrl, tenant.token, 'read')).body.key as string;
    const listed = await request(stack.api.baseUrl, 'GET', '/v1/api-keys', { token: read });
    expect(listed.status).toBe(200);
    expect(listed.body.items.length).toBeGreaterThanOrEqual(2);
    expect(JSON.stringify(listed.body)).not.toContain(read.slice(6));
    const readWrite = await request(stack.api.baseUrl, 'DELETE', `/v1/api-keys/${listed.body.items[0].id}`, { token: read });
    expect([readWrite.status, readWrite.body.code]).toEqual([403, 'scope_insufficient']);
    // Keys do not mint or revoke keys, whatever their scope; /me is about a user.
    expect((await createKey(stack.api.baseUrl, write)).body.code).toBe('tenant_admin_required');
    expect((await request(stack.api.baseUrl, 'GET', '/v1/me', { token: write })).body.code).toBe('session_required');
  });

  it("another tenant's key id is 404, and its keys never list here", async () => {
    await billing(other.tenantId, { plan: 'pro', subscriptionState: 'active' });
    const theirs = await createKey(stack.api.baseUrl, other.token);
    expect(theirs.status).toBe(201);
    const revoke = await request(stack.api.baseUrl, 'DELETE', `/v1/api-keys/${theirs.body.id}`, { token: tenant.token });
    expect([revoke.status, revoke.body.code]).toEqual([404, 'api_key_not_found']);
    const mine = await request(stack.api.baseUrl, 'GET', '/v1/api-keys', { token: tenant.token });
    expect(mine.body.items.map((k: { id: string }) => k.id)).not.toContain(theirs.body.id);
    // Their key still works for them.
    expect((await request(stack.api.baseUrl, 'GET', '/v1/api-keys', { token: theirs.body.key })).status).toBe(200);
  });

  it('expired: reads 200, writes 402 subscription_expired; renewal restores writes', async () => {
    await billing(tenant.tenantId, { subscriptionState: 'grace' });
    expect((await createKey(stack.api.baseUrl, tenant.token)).status).toBe(201);
    await billing(tenant.tenantId, { subscriptionState: 'expired' });
    const write = await createKey(stack.api.baseUrl, tenant.token);
    expect([write.status, write.body.code]).toEqual([402, 'subscription_expired']);
    expect((await request(stack.api.baseUrl, 'GET', '/v1/api-keys', { token: tenant.token })).status).toBe(200);
    expect((await request(stack.api.baseUrl, 'GET', '/v1/me', { token: tenant.token })).status).toBe(200);
    // Back to trial is not a move of the state machine; a renewal is.
    expect((await billing(tenant.tenantId, { subscriptionState: 'trial' })).status).toBe(409);
    expect((await billing(tenant.tenantId, { subscriptionState: 'active' })).status).toBe(200);
    expect((await createKey(stack.api.baseUrl, tenant.token)).status).toBe(201);
  });

  it('billing-suspended: reads 200, writes 402 subscription_suspended', async () => {
    await billing(other.tenantId, { subscriptionState: 'suspended' });
    const write = await createKey(stack.api.baseUrl, other.token);
    expect([write.status, write.body.code]).toEqual([402, 'subscription_suspended']);
    expect((await request(stack.api.baseUrl, 'GET', '/v1/api-keys', { token: other.token })).status).toBe(200);
    await billing(other.tenantId, { subscriptionState: 'active' });
    expect((await createKey(stack.api.baseUrl, other.token)).status).toBe(201);
  });
});

describe('trial expiry (worker)', () => {
  it('moves trials past their end to expired, once, audited, and the api stops writes at once', async () => {
    const fresh = await stack.signUpTenant({ orgName: 'Trial Ends' });
    const uuid = fromPublicId('ten', fresh.tenantId)!;
    await billing(fresh.tenantId, { capabilities: ['files', 'api_keys'] });
    expect((await createKey(stack.api.baseUrl, fresh.token)).status).toBe(201);

    const in13Days = new Date(Date.now() + 13 * 86_400_000);
    const in15Days = new Date(Date.now() + 15 * 86_400_000);
    await stack.worker!.expireTrials(in13Days);
    expect((await stack.admin('GET', `/v1/tenants/${fresh.tenantId}/billing-state`)).body.subscriptionState).toBe('trial');
    expect(await stack.worker!.expireTrials(in15Days)).toBeGreaterThanOrEqual(1);
    expect(await stack.worker!.expireTrials(in15Days)).toBe(0);
    expect((await stack.admin('GET', `/v1/tenants/${fresh.tenantId}/billing-state`)).body.subscriptionState).toBe('expired');

    await waitFor(async () => ((await createKey(stack.api.baseUrl, fresh.token)).status === 402 ? true : undefined), 2_000, 20);
    const audit = await stack.database.db
      .selectFrom('audit_log')
      .select(['actor', 'data'])
      .where('tenant_id', '=', uuid)
      .where('action', '=', 'billing_state.updated')
      .orderBy('chain_seq', 'desc')
      .executeTakeFirstOrThrow();
    expect(audit).toMatchObject({ actor: 'system:worker', data: { source: 'trial_expiry', before: { subscriptionState: 'trial' }, after: { subscriptionState: 'expired' } } });
  });
});
