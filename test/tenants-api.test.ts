import { randomUUID } from 'node:crypto';
import { insertProvisioningTenant } from '@tenantry/db';
import { fromPublicId, toPublicId } from '@tenantry/domain';
import { sql } from 'kysely';
import { beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_KEY } from './support/apps.js';
import { request, waitFor } from './support/http.js';
import { useStack } from './support/stack.js';

const stack = useStack();
let tenantToken: string;
let tenantId: string;

beforeAll(async () => {
  ({ token: tenantToken, tenantId } = await stack.signUpTenant({ orgName: 'Token Holder' }));
});

const UNKNOWN = toPublicId('ten', '00000000-0000-4000-8000-000000000000');

// Every platform route, with a valid body and one that breaks validation.
const routes = (id: string): Array<{ method: string; path: string; valid?: unknown; invalid: unknown; hasId: boolean }> => [
  { method: 'POST', path: '/v1/tenants', valid: { name: 'Auth Matrix', ownerEmail: `m-${randomUUID()}@example.com` }, invalid: { name: 'x' }, hasId: false },
  { method: 'GET', path: '/v1/tenants', invalid: '?limit=0', hasId: false },
  { method: 'GET', path: `/v1/tenants/${id}`, invalid: null, hasId: true },
  { method: 'PATCH', path: `/v1/tenants/${id}`, valid: { displayName: 'Renamed Co' }, invalid: {}, hasId: true },
  { method: 'DELETE', path: `/v1/tenants/${id}`, invalid: '?reason=' + 'x'.repeat(600), hasId: true },
  { method: 'POST', path: `/v1/tenants/${id}/suspend`, valid: { reason: 'unpaid invoice' }, invalid: { reason: '' }, hasId: true },
  { method: 'POST', path: `/v1/tenants/${id}/unsuspend`, valid: {}, invalid: { reason: 42 }, hasId: true },
  { method: 'POST', path: `/v1/tenants/${id}/restore`, valid: {}, invalid: { reason: 42 }, hasId: true },
];

function call(route: ReturnType<typeof routes>[number], token: string | undefined, body: unknown) {
  const withQuery = typeof body === 'string' ? route.path + body : route.path;
  const jsonBody = typeof body === 'string' || body === null ? undefined : body;
  const needsBody = route.method === 'POST' || route.method === 'PATCH';
  return request(stack.api.baseUrl, route.method, withQuery, { body: needsBody ? (jsonBody ?? {}) : undefined, token });
}

describe('platform authentication on every tenants route', () => {
  it.each(routes('default').map((r) => [`${r.method} ${r.path}`, r] as const))('%s: no key 401, wrong key 401, tenant token 403', async (_name, route) => {
    const none = await call(route, undefined, route.valid ?? null);
    expect([none.status, none.body.code]).toEqual([401, 'unauthenticated']);
    const wrong = await call(route, 'tpk_not-a-real-key', route.valid ?? null);
    expect([wrong.status, wrong.body.code]).toEqual([401, 'invalid_platform_key']);
    const tenant = await call(route, tenantToken, route.valid ?? null);
    expect([tenant.status, tenant.body.code]).toEqual([403, 'platform_key_required']);
  });

  it.each(routes(UNKNOWN).filter((r) => r.hasId).map((r) => [`${r.method} ${r.path}`, r] as const))('%s: unknown tenant → 404', async (_name, route) => {
    const res = await call(route, PLATFORM_KEY, route.valid ?? null);
    expect([res.status, res.body.code]).toEqual([404, 'tenant_not_found']);
  });

  it.each(routes('default').filter((r) => r.invalid !== null).map((r) => [`${r.method} ${r.path}`, r] as const))(
    '%s: invalid input → 400 validation_failed with fields, nothing changes',
    async (_name, route) => {
      const auditBefore = await stack.database.db.selectFrom('audit_log').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
      const res = await call(route, PLATFORM_KEY, route.invalid);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('validation_failed');
      expect(res.body.fields.length).toBeGreaterThan(0);
      const auditAfter = await stack.database.db.selectFrom('audit_log').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
      expect(auditAfter.n).toBe(auditBefore.n);
    },
  );
});

describe('POST /v1/tenants', () => {
  it('queues the same saga as signup, idempotent by owner email; the owner logs in with the given password', async () => {
    const body = { name: 'Operator Made', ownerEmail: 'Ops.Owner@Example.com', ownerPassword: 'operator-chosen-secret', plan: 'pro' };
    const first = await stack.admin('POST', '/v1/tenants', { body });
    expect(first.status).toBe(202);
    expect(first.body).toEqual({ tenantId: expect.stringMatching(/^ten_/), status: 'provisioning' });
    const again = await stack.admin('POST', '/v1/tenants', { body: { ...body, ownerEmail: ' ops.owner@example.COM', name: 'Other Name' } });
    expect(again.status).toBe(202);
    expect(again.body.tenantId).toBe(first.body.tenantId);

    const active = await waitFor(async () => {
      const res = await stack.admin('GET', `/v1/tenants/${first.body.tenantId}`);
      return res.body.status === 'active' ? res.body : undefined;
    });
    expect(active).toMatchObject({ name: 'Operator Made', slug: 'operator-made', plan: 'pro', isolation: 'schema', isDefault: false });
    const login = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email: body.ownerEmail, password: body.ownerPassword } });
    expect(login.status).toBe(200);
    expect(login.body.tenantId).toBe(first.body.tenantId);
    const audit = await stack.database.db.selectFrom('audit_log').select(['actor', 'action']).where('action', '=', 'tenant.requested').orderBy('id').execute();
    expect(audit.at(-1)).toEqual({ actor: 'platform:env:1', action: 'tenant.requested' });
  });

  it('without ownerPassword the owner exists but cannot log in', async () => {
    const res = await stack.admin('POST', '/v1/tenants', { body: { name: 'No Password Co', ownerEmail: 'nopass@example.com' } });
    await waitFor(async () => ((await stack.admin('GET', `/v1/tenants/${res.body.tenantId}`)).body.status === 'active' ? true : undefined));
    const user = await stack.database.db.selectFrom('users').select('password_hash').where('email', '=', 'nopass@example.com').executeTakeFirstOrThrow();
    expect(user.password_hash).toBeNull();
    const login = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email: 'nopass@example.com', password: 'anything-at-all' } });
    expect(login.status).toBe(401);
  });

  it('an owner email that already has a user: that user becomes the owner and keeps their password', async () => {
    const holder = await stack.signUpTenant({ orgName: 'Password Source' });
    const email = `existing-${randomUUID()}@example.com`;
    // A user with no signup of its own (as an invited member would be), with a password we know.
    await sql`insert into users (email, password_hash) select ${email}, password_hash from users where email = ${holder.email}`.execute(stack.database.db);
    const res = await stack.admin('POST', '/v1/tenants', { body: { name: 'Existing Owner Co', ownerEmail: email, ownerPassword: 'a-different-secret', plan: 'pro' } });
    expect(res.body.status).toBe('provisioning');
    await waitFor(async () => ((await stack.admin('GET', `/v1/tenants/${res.body.tenantId}`)).body.status === 'active' ? true : undefined));

    const users = await stack.database.db.selectFrom('users').select('id').where('email', '=', email).execute();
    expect(users).toHaveLength(1);
    const owner = await stack.database.db.selectFrom('memberships').select(['user_id', 'role']).where('tenant_id', '=', fromPublicId('ten', res.body.tenantId)!).execute();
    expect(owner).toEqual([{ user_id: users[0]!.id, role: 'owner' }]);
    const kept = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email, password: holder.password } });
    expect([kept.status, kept.body.tenantId]).toEqual([200, res.body.tenantId]);
    const replaced = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email, password: 'a-different-secret' } });
    expect(replaced.status).toBe(401);
  });
});

describe('GET and PATCH /v1/tenants/{id}', () => {
  it('finds a tenant by id or by slug; the default tenant is there and marked', async () => {
    const byId = await stack.admin('GET', `/v1/tenants/${tenantId}`);
    expect(byId.status).toBe(200);
    const bySlug = await stack.admin('GET', `/v1/tenants/${byId.body.slug}`);
    expect(bySlug.body).toEqual(byId.body);
    const def = await stack.admin('GET', '/v1/tenants/default');
    expect(def.body).toMatchObject({ slug: 'default', isDefault: true, status: 'active' });
  });

  it('PATCH renames and changes plan, audited with before and after', async () => {
    const res = await stack.admin('PATCH', `/v1/tenants/${tenantId}`, { body: { displayName: 'Token Holder Ltd', plan: 'pro' } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name: 'Token Holder Ltd', plan: 'pro' });
    const audit = await stack.database.db
      .selectFrom('audit_log')
      .select(['action', 'data', 'actor'])
      .where('action', '=', 'tenant.updated')
      .orderBy('id', 'desc')
      .executeTakeFirstOrThrow();
    expect(audit.actor).toBe('platform:env:1');
    expect(audit.data).toEqual({ before: { name: 'Token Holder', plan: 'trial' }, after: { name: 'Token Holder Ltd', plan: 'pro' } });
    const billing = await stack.database.db
      .selectFrom('billing_states')
      .select('plan')
      .where('tenant_id', '=', fromPublicId('ten', res.body.id)!)
      .executeTakeFirstOrThrow();
    expect(billing.plan).toBe('pro');
  });

  it('rejects an unknown plan and an id that is neither an id nor a slug', async () => {
    expect((await stack.admin('PATCH', `/v1/tenants/${tenantId}`, { body: { plan: 'platinum' } })).status).toBe(400);
    expect((await stack.admin('GET', '/v1/tenants/Not%20A%20Slug')).status).toBe(400);
  });
});

describe('GET /v1/tenants: search, filters, pagination', () => {
  const names = ['Alpha Widgets', 'Beta Widgets', 'Gamma Gadgets', 'alphabet soup', 'Omega 100% Real', 'Under_Score Co'];

  beforeAll(async () => {
    for (const [i, name] of names.entries()) {
      const id = randomUUID();
      await insertProvisioningTenant(stack.database.db, { id, name, plan: i % 2 === 0 ? 'pro' : 'trial', isolation: 'schema' });
      await stack.database.db.updateTable('tenants').set({ status: i === 1 ? 'suspended' : 'active' }).where('id', '=', id).execute();
    }
  });

  const search = async (query: string) =>
    (await stack.admin('GET', `/v1/tenants?${query}&limit=100`)).body.items.map((t: { name: string }) => t.name).sort();

  it('matches name or slug as prefix or substring, case-insensitively; % and _ are literal', async () => {
    expect(await search('search=alpha')).toEqual(['Alpha Widgets', 'alphabet soup']);
    expect(await search('search=WIDGET')).toEqual(['Alpha Widgets', 'Beta Widgets']);
    expect(await search('search=gadgets')).toEqual(['Gamma Gadgets']);
    expect(await search('search=gamma-gad')).toEqual(['Gamma Gadgets']);
    expect(await search(`search=${encodeURIComponent('100%')}`)).toEqual(['Omega 100% Real']);
    // As wildcards, "_" would match the space in "alpha widgets".
    expect(await search('search=ha_w')).toEqual([]);
    expect(await search('search=r_sc')).toEqual(['Under_Score Co']);
  });

  it('filters by plan and status, and combines them with search', async () => {
    expect(await search('search=widgets&status=suspended')).toEqual(['Beta Widgets']);
    expect(await search('search=widgets&plan=pro')).toEqual(['Alpha Widgets']);
    const invalid = await stack.admin('GET', '/v1/tenants?status=sleeping');
    expect(invalid.status).toBe(400);
    expect(invalid.body.fields[0].field).toBe('status');
  });

  it('a tampered cursor is a 400', async () => {
    const res = await stack.admin('GET', '/v1/tenants?cursor=bm9wZQ');
    expect([res.status, res.body.fields?.[0]?.field]).toEqual([400, 'cursor']);
  });

  it('pages lose and repeat nothing while tenants are being created', async () => {
    const existing = new Set(
      (await stack.database.db.selectFrom('tenants').select('id').execute()).map((t) => toPublicId('ten', t.id)),
    );
    let stop = false;
    const creator = (async () => {
      // Bounded, so the pager can reach the end.
      let n = 0;
      while (!stop && n < 40) {
        await insertProvisioningTenant(stack.database.db, { id: randomUUID(), name: `Concurrent ${n++}`, plan: 'trial', isolation: 'schema' });
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      return n;
    })();
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { status: number; body: { items: Array<{ id: string }>; nextCursor: string | null } } = await stack.admin(
        'GET',
        `/v1/tenants?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(page.status).toBe(200);
      seen.push(...page.body.items.map((t) => t.id));
      cursor = page.body.nextCursor;
      await new Promise((resolve) => setTimeout(resolve, 5));
    } while (cursor);
    stop = true;
    const created = await creator;
    expect(created).toBeGreaterThan(0);
    expect(new Set(seen).size).toBe(seen.length);
    for (const id of existing) expect(seen).toContain(id);
  });
});

describe('deployments without hosted mode', () => {
  it('lifecycle routes answer 404, reads still work', async () => {
    const { startApi } = await import('./support/apps.js');
    const selfHosted = await startApi({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix, HOSTED_MODE: 'false', MULTI_TENANT_ENABLED: 'true' });
    try {
      for (const [method, path] of [
        ['POST', `/v1/tenants/${tenantId}/suspend`],
        ['POST', `/v1/tenants/${tenantId}/restore`],
        ['DELETE', `/v1/tenants/${tenantId}`],
      ] as const) {
        const res = await request(selfHosted.baseUrl, method, path, { body: method === 'POST' ? { reason: 'abc' } : undefined, token: PLATFORM_KEY });
        expect(res.status, `${method} ${path}`).toBe(404);
      }
      expect((await request(selfHosted.baseUrl, 'GET', `/v1/tenants/${tenantId}`, { token: PLATFORM_KEY })).status).toBe(200);
    } finally {
      await selfHosted.close();
    }
  });
});
