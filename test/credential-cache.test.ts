import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningApi, startApi } from './support/apps.js';
import { msUntil, request, waitFor } from './support/http.js';
import { type MoveTenant, createTenant } from './support/moves.js';
import { useStack } from './support/stack.js';

/**
 * The credential cache (apps/api/src/services/credential-cache.ts), across two api
 * instances on one database: a credential resolved once is served from memory, and every
 * change that must end or alter it — a logout, a revoked key, a suspension, a change made
 * straight in SQL as the worker or an operator makes them — is honoured by the other
 * instance within 1 s. A lost LISTEN connection never lets a stale entry through.
 */
const stack = useStack();
let second: RunningApi;
beforeAll(async () => {
  second = await startApi({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix });
});
afterAll(async () => {
  await second?.close();
});

const me = (baseUrl: string, token: string) => request(baseUrl, 'GET', '/v1/me', { token });
const listDocs = (baseUrl: string, token: string) => request(baseUrl, 'GET', '/v1/collections/notes/documents?limit=1', { token });

/** The second instance's cache lookups so far, by result. */
async function lookups(): Promise<Record<'hit' | 'miss' | 'bypass', number>> {
  const text = await (await fetch(second.metricsUrl)).text();
  const value = (result: string) => Number(new RegExp(`^tenantry_credential_cache_lookups_total\\{result="${result}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { hit: value('hit'), miss: value('miss'), bypass: value('bypass') };
}

/** Both instances have the credential cached (a miss, then hits). */
async function warm(token: string, probe = me) {
  for (let i = 0; i < 3; i++) {
    expect((await probe(stack.api.baseUrl, token)).status).toBe(200);
    expect((await probe(second.baseUrl, token)).status).toBe(200);
  }
}

describe('a credential resolved once is served from memory', () => {
  it('the second and later calls of a token are cache hits; an unknown token is never cached', async () => {
    const tenant = await createTenant(stack, { plan: 'pro', isolation: 'schema', label: 'Cache Hits' });
    const before = await lookups();
    for (let i = 0; i < 10; i++) expect((await me(second.baseUrl, tenant.token)).status).toBe(200);
    const after = await lookups();
    expect(after.miss - before.miss).toBe(1);
    expect(after.hit - before.hit).toBe(9);
    expect(after.bypass).toBe(before.bypass);

    for (let i = 0; i < 3; i++) expect((await me(second.baseUrl, 'tnt_s_not-a-real-token')).status).toBe(401);
    expect((await lookups()).miss - after.miss).toBe(3);
  });
});

describe('every change reaches the other instance within 1 s', () => {
  let tenant: MoveTenant;
  beforeAll(async () => {
    tenant = await createTenant(stack, { plan: 'pro', isolation: 'schema', label: 'Cache Changes' });
  });

  async function login(): Promise<string> {
    const res = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email: tenant.email, password: tenant.password } });
    expect(res.status).toBe(200);
    return res.body.token;
  }

  it('a logout on one instance: the token is refused by the other (and by itself)', async () => {
    const token = await login();
    await warm(token);
    expect((await request(stack.api.baseUrl, 'POST', '/v1/auth/logout', { token })).status).toBe(204);
    // The instance that made the change refuses at once, not when the announcement arrives.
    expect((await me(stack.api.baseUrl, token)).status).toBe(401);
    const ms = await msUntil(() => me(second.baseUrl, token), 401);
    expect(ms).toBeLessThan(1_000);
    // The logout is audited.
    const audit = await stack.admin('GET', `/v1/audit?tenantId=${tenant.tenantId}&limit=20`);
    expect(audit.body.items.map((e: { action: string }) => e.action)).toContain('session.revoked');
  });

  it('an API key revoked on one instance is refused by the other', async () => {
    const created = await request(stack.api.baseUrl, 'POST', '/v1/api-keys', { token: tenant.token, body: { name: 'cached', scope: 'read' } });
    expect(created.status).toBe(201);
    await warm(created.body.key, listDocs);
    expect((await request(stack.api.baseUrl, 'DELETE', `/v1/api-keys/${created.body.id}`, { token: tenant.token })).status).toBe(200);
    expect((await listDocs(stack.api.baseUrl, created.body.key)).status).toBe(401);
    expect(await msUntil(() => listDocs(second.baseUrl, created.body.key), 401)).toBeLessThan(1_000);
  });

  it('a suspension through the platform api, and the unsuspension', async () => {
    await warm(tenant.token);
    expect((await stack.admin('POST', `/v1/tenants/${tenant.tenantId}/suspend`, { body: { reason: 'cache test' } })).status).toBe(200);
    expect((await me(stack.api.baseUrl, tenant.token)).status).toBe(403);
    expect(await msUntil(() => me(second.baseUrl, tenant.token), 403)).toBeLessThan(1_000);
    expect((await stack.admin('POST', `/v1/tenants/${tenant.tenantId}/unsuspend`, { body: {} })).status).toBe(200);
    expect(await msUntil(() => me(second.baseUrl, tenant.token), 200)).toBeLessThan(1_000);
  });

  it('changes made in SQL, as the worker and operators make them: a status, a session removed', async () => {
    await warm(tenant.token);
    await sql`update tenants set status = 'suspended' where id = ${tenant.id}`.execute(stack.database.db);
    expect(await msUntil(() => me(second.baseUrl, tenant.token), 403)).toBeLessThan(1_000);
    await sql`update tenants set status = 'active' where id = ${tenant.id}`.execute(stack.database.db);
    expect(await msUntil(() => me(second.baseUrl, tenant.token), 200)).toBeLessThan(1_000);

    const token = await login();
    await warm(token);
    await sql`delete from sessions where tenant_id = ${tenant.id} and expires_at > now() and id <> (select id from sessions where tenant_id = ${tenant.id} order by created_at limit 1)`.execute(stack.database.db);
    expect(await msUntil(() => me(second.baseUrl, token), 401)).toBeLessThan(1_000);
  });

  it('an unrelated change of the tenant row (its name) does not empty the cache', async () => {
    await warm(tenant.token);
    const before = await lookups();
    expect((await stack.admin('PATCH', `/v1/tenants/${tenant.tenantId}`, { body: { displayName: 'Renamed Still Cached' } })).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await me(second.baseUrl, tenant.token)).status).toBe(200);
    expect((await lookups()).hit - before.hit).toBe(1);
  });
});

describe('the LISTEN connection lost', () => {
  it('nothing stale is served while it is away, and the cache works again once it is back', async () => {
    const tenant = await createTenant(stack, { plan: 'pro', isolation: 'schema', label: 'Cache Feed Lost' });
    await warm(tenant.token);
    // Both instances' LISTEN connections, killed by the server (as a Postgres restart or failover would).
    const { rows } = await sql<{ n: number }>`
      select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
      where datname = current_database() and application_name = 'tenantry-api-changes'`.execute(stack.database.db);
    expect(rows[0]!.n).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 50));
    // A change while the feed may be away: never missed.
    await sql`update tenants set status = 'suspended' where id = ${tenant.id}`.execute(stack.database.db);
    expect((await me(second.baseUrl, tenant.token)).status).toBe(403);
    await sql`update tenants set status = 'active' where id = ${tenant.id}`.execute(stack.database.db);
    expect((await me(second.baseUrl, tenant.token)).status).toBe(200);

    // Back: listening again, and serving from memory.
    await waitFor(async () => {
      const { rows: listening } = await sql<{ n: number }>`
        select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = 'tenantry-api-changes'`.execute(stack.database.db);
      return listening[0]!.n === 2 ? true : undefined;
    }, 5_000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await me(second.baseUrl, tenant.token);
    const before = await lookups();
    expect((await me(second.baseUrl, tenant.token)).status).toBe(200);
    expect((await lookups()).hit - before.hit).toBe(1);
  });
});
