import { parseApiConfig } from '@tenantry/api';
import { fromPublicId } from '@tenantry/domain';
import { realtimeKeys } from '@tenantry/jobs';
import { parseWorkerConfig } from '@tenantry/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningApi, startApi } from './support/apps.js';
import { request, waitFor } from './support/http.js';
import { PrivateRedisCluster } from './support/redis-cluster.js';
import { openSse } from './support/sse.js';
import { useStack } from './support/stack.js';

/**
 * Tenantry on a real Redis Cluster (three masters): REDIS_CLUSTER=true with the seed nodes
 * in REDIS_URL. Two api instances and a worker; every Redis use that crosses instances is
 * exercised: the queues (signup → ready), the shared request budget, entitlement
 * invalidation over pub/sub, realtime fan-out (XREAD and CLIENT UNBLOCK on the streams'
 * master) and the usage sampler's reads of the realtime slots.
 */
let cluster: PrivateRedisCluster;
const REALTIME = { REALTIME_HEARTBEAT_MS: '300', REALTIME_SLOT_TTL_MS: '1500', REALTIME_RECHECK_MS: '60000' };
const stack = useStack({
  service: async () => {
    cluster = await PrivateRedisCluster.start(3);
    return { env: cluster.env(), stop: () => cluster.stop() };
  },
  api: REALTIME,
  workerEnv: { USAGE_SAMPLE_INTERVAL_MS: '3600000' },
});
let other: RunningApi;
let a: { tenantId: string; token: string };
let b: { tenantId: string; token: string };

beforeAll(async () => {
  other = await startApi({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix, ...cluster.env(), ...REALTIME });
  // Signup → ready runs through the provisioning queue on the cluster.
  [a, b] = await Promise.all([stack.signUpTenant(), stack.signUpTenant()]);
  for (const t of [a, b]) expect((await stack.admin('PUT', `/v1/tenants/${t.tenantId}/billing-state`, { body: { plan: 'pro', subscriptionState: 'active' } })).status).toBe(200);
});
afterAll(async () => {
  await other?.close();
});

describe('configuration', () => {
  it('takes several seed nodes only with REDIS_CLUSTER=true, and no braces in REDIS_PREFIX', () => {
    const seeds = 'redis://10.0.0.1:6379,redis://10.0.0.2:6379';
    expect(parseApiConfig({ REDIS_URL: seeds, REDIS_CLUSTER: 'true' }).REDIS_CLUSTER).toBe(true);
    expect(parseWorkerConfig({ REDIS_URL: seeds, REDIS_CLUSTER: 'true' }).REDIS_URL).toBe(seeds);
    expect(() => parseApiConfig({ REDIS_URL: seeds })).toThrow(/REDIS_CLUSTER=true/);
    expect(() => parseWorkerConfig({ REDIS_URL: seeds })).toThrow(/REDIS_CLUSTER=true/);
    expect(() => parseApiConfig({ REDIS_URL: 'redis://10.0.0.1:6379,http://x', REDIS_CLUSTER: 'true' })).toThrow(/redis:\/\//);
    // Tenantry adds its own hash tags; a braced prefix would put every key in one slot.
    expect(() => parseApiConfig({ REDIS_PREFIX: '{tenantry}', REDIS_CLUSTER: 'true' })).toThrow(/REDIS_PREFIX/);
  });
});

describe('on a three-master Redis Cluster', () => {
  it("keeps each queue's keys in one slot under the hash tag {REDIS_PREFIX}, and spreads the rest over the masters", async () => {
    const queueKeys = await cluster.keysByNode(`{${stack.prefix}}:*`);
    expect(queueKeys.size).toBe(1);
    expect([...queueKeys.values()][0]!.some((k) => k.startsWith(`{${stack.prefix}}:provisioning:`))).toBe(true);
    // No queue key outside the tag: a script on those would fail with CROSSSLOT.
    expect((await cluster.keysByNode(`${stack.prefix}:provisioning:*`)).size).toBe(0);

    // The per-tenant request counters are keyed by tenant, not tagged: with enough tenants
    // they land on every master.
    const statuses = await Promise.all(Array.from({ length: 12 }, () => stack.signUpTenant().then((t) => request(stack.api.baseUrl, 'GET', '/v1/me', { token: t.token }).then((r) => r.status))));
    expect(statuses).toEqual(Array(12).fill(200));
    expect((await cluster.keysByNode(`${stack.prefix}*`)).size).toBe(3);
  });

  it('holds a tenant to one request budget across both instances, and a limit change reaches both within a second', async () => {
    // The billing change is made through one instance; the other hears it over pub/sub.
    expect((await stack.admin('PUT', `/v1/tenants/${a.tenantId}/billing-state`, { body: { limits: { apiRequestsPerMinute: 10 } } })).status).toBe(200);
    await waitFor(async () => ((await request(other.baseUrl, 'GET', '/v1/me', { token: a.token })).headers.get('ratelimit-limit') === '10' ? true : undefined), 1_000, 20);
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await request(i % 2 ? other.baseUrl : stack.api.baseUrl, 'GET', '/v1/me', { token: a.token })).status);
    // One call was spent above seeing the new limit: nine more pass, across both instances.
    expect(statuses).toEqual([...Array(9).fill(200), 429, 429, 429]);
    const refused = await request(other.baseUrl, 'GET', '/v1/me', { token: a.token });
    expect(refused.status).toBe(429);
    expect(refused.body.code).toBe('rate_limited');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    // The neighbour's budget is its own.
    expect((await request(other.baseUrl, 'GET', '/v1/me', { token: b.token })).status).toBe(200);
  });

  it("fans a write out across instances, and a tenant's first subscriber is read at once though the reader is blocked on another's stream", async () => {
    // The reader on `other` blocks (XREAD BLOCK 5 s) on b's stream...
    const onB = await openSse(other.baseUrl, '/v1/realtime', { token: b.token });
    const created = await request(stack.api.baseUrl, 'POST', '/v1/collections/notes/documents', { token: b.token, body: { data: { n: 1 } } });
    expect((await onB.next()).data).toMatchObject({ type: 'document.created', id: created.body.id });
    // ...so a's first subscriber there is read only if CLIENT UNBLOCK reaches that master.
    const limitsReset = await stack.admin('PUT', `/v1/tenants/${a.tenantId}/billing-state`, { body: { limits: null } });
    expect(limitsReset.status).toBe(200);
    await waitFor(async () => ((await request(other.baseUrl, 'GET', '/v1/me', { token: a.token })).status === 200 ? true : undefined), 2_000, 50);
    const onA = await openSse(other.baseUrl, '/v1/realtime', { token: a.token });
    try {
      expect(onA.status).toBe(200);
      const started = performance.now();
      const write = await request(stack.api.baseUrl, 'POST', '/v1/collections/notes/documents', { token: a.token, body: { data: { n: 2 } } });
      const event = await onA.next();
      expect(event.data).toMatchObject({ type: 'document.created', id: write.body.id });
      // Far under the 5 s a reader left blocked would take.
      expect(event.at - started).toBeLessThan(1_500);
      // Tenant b's stream carries nothing of a's.
      const again = await request(stack.api.baseUrl, 'POST', '/v1/collections/notes/documents', { token: b.token, body: { data: { n: 3 } } });
      expect((await onB.next()).data.id).toBe(again.body.id);

      // The worker's usage sampler reads the open streams' slots from the cluster.
      await stack.worker!.sampleUsage(new Date());
      const usage = await request(stack.api.baseUrl, 'GET', '/v1/usage', { token: a.token });
      expect(usage.body.meters.realtimeConnections.current).toBe(1);
      const slots = await cluster.keysByNode(realtimeKeys(stack.prefix).slots(fromPublicId('ten', a.tenantId)!));
      expect(slots.size).toBe(1);
    } finally {
      onA.close();
      onB.close();
    }
  });
});
