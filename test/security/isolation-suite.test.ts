import { DATA_ROLE, createDb, withTenant } from '@tenantry/db';
import { fromPublicId } from '@tenantry/domain';
import { sql } from 'kysely';
import { beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_KEY } from '../support/apps.js';
import { request } from '../support/http.js';
import { useStack } from '../support/stack.js';

/**
 * The isolation suite for schema tenants (database tenants: database-isolation.test.ts):
 * catalog checks, pool hygiene, a parallel cross-tenant matrix and an injection corpus.
 */
const stack = useStack();
let a: { tenantId: string; token: string };
let b: { tenantId: string; token: string };
const bDocs: string[] = [];

const docs = (token: string, method: string, path: string, body?: unknown) => request(stack.api.baseUrl, method, `/v1/collections${path}`, { token, body });

beforeAll(async () => {
  [a, b] = await Promise.all([stack.signUpTenant({ orgName: 'Suite A' }), stack.signUpTenant({ orgName: 'Suite B' })]);
  for (let i = 0; i < 5; i++) {
    await docs(a.token, 'POST', '/notes/documents', { data: { owner: 'A', i } });
    bDocs.push((await docs(b.token, 'POST', '/notes/documents', { data: { owner: 'B', i } })).body.id);
  }
});

describe('catalog checks', () => {
  it('every tenant table with tenant_id has RLS enabled and forced', async () => {
    const { rows } = await sql<{ table: string; rls: boolean; forced: boolean }>`
      select n.nspname || '.' || c.relname as table, c.relrowsecurity as rls, c.relforcerowsecurity as forced
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
      join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped
      where c.relkind in ('r', 'p') and n.nspname like 't\\_%'`.execute(stack.database.db);
    expect(rows.length).toBeGreaterThanOrEqual(2);
    for (const row of rows) expect(row, row.table).toMatchObject({ rls: true, forced: true });
  });

  it('no SECURITY DEFINER function and no owner-run view in tenant schemas', async () => {
    const definers = await sql`
      select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname like 't\\_%' and p.prosecdef`.execute(stack.database.db);
    expect(definers.rows).toEqual([]);
    const views = await sql`
      select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname like 't\\_%' and c.relkind = 'v'
        and not coalesce('security_invoker=true' = any (c.reloptions), false)`.execute(stack.database.db);
    expect(views.rows).toEqual([]);
  });

  it('the data role is not owner, superuser or BYPASSRLS, and lacks TRUNCATE on every tenant table', async () => {
    const role = await sql<{ rolsuper: boolean; rolbypassrls: boolean }>`select rolsuper, rolbypassrls from pg_roles where rolname = ${DATA_ROLE}`.execute(stack.database.db);
    expect(role.rows[0]).toEqual({ rolsuper: false, rolbypassrls: false });
    const owned = await sql`select c.relname from pg_class c join pg_roles r on r.oid = c.relowner where r.rolname = ${DATA_ROLE}`.execute(stack.database.db);
    expect(owned.rows).toEqual([]);
    const truncatable = await sql`
      select c.oid::regclass::text as t from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname like 't\\_%' and c.relkind = 'r' and has_table_privilege(${DATA_ROLE}, c.oid, 'TRUNCATE')`.execute(stack.database.db);
    expect(truncatable.rows).toEqual([]);
  });
});

describe('pool hygiene', () => {
  it('with one pooled connection: A, then no context, then a failure mid-transaction — nothing leaks into the next request', async () => {
    const db = createDb(stack.database.url, { maxConnections: 1 });
    try {
      const tenant = await stack.database.db.selectFrom('tenants').select(['id', 'schema_name']).where('id', '=', fromPublicId('ten', a.tenantId)!).executeTakeFirstOrThrow();
      const ctx = { tenantId: tenant.id, schemaName: tenant.schema_name! };
      const mine = await withTenant(db, ctx, (trx) => sql<{ n: number }>`select count(*)::int as n from documents`.execute(trx));
      expect(mine.rows[0]!.n).toBe(5);

      const noContext = () =>
        db.transaction().execute(async (trx) => {
          await sql`set local role ${sql.id(DATA_ROLE)}`.execute(trx);
          return (await sql<{ n: number }>`select count(*)::int as n from ${sql.id(ctx.schemaName, 'documents')}`.execute(trx)).rows[0]!.n;
        });
      expect(await noContext()).toBe(0);

      await expect(
        withTenant(db, ctx, async (trx) => {
          await sql`select 1`.execute(trx);
          await sql`select 1/0`.execute(trx);
        }),
      ).rejects.toThrow(/division by zero/);

      expect(await noContext()).toBe(0);
      const leftover = await sql<{ tenant: string | null; role: string }>`select current_setting('app.tenant_id', true) as tenant, current_user as role`.execute(db);
      expect(leftover.rows[0]!.tenant ?? '').toBe('');
      expect(leftover.rows[0]!.role).not.toBe(DATA_ROLE);
    } finally {
      await db.destroy();
    }
  });
});

describe('cross-tenant matrix', () => {
  it("A's token with B's ids, B's collection, crafted ids → 404 or empty, never B's data", async () => {
    const attempts = [
      ...bDocs.map((id) => docs(a.token, 'GET', `/notes/documents/${id}`)),
      docs(a.token, 'GET', '/notes/documents?where[owner]=B'),
      docs(a.token, 'GET', `/notes/documents?cursor=${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}&limit=100`),
      docs(a.token, 'GET', '/notes/documents/00000000-0000-0000-0000-000000000000'),
      docs(a.token, 'PUT', `/notes/documents/${bDocs[0]}`, { data: { owner: 'A' } }),
      docs(a.token, 'DELETE', `/notes/documents/${bDocs[1]}`),
    ];
    for (const res of await Promise.all(attempts)) {
      expect([200, 404]).toContain(res.status);
      expect(JSON.stringify(res.body)).not.toContain('"owner":"B"');
    }
    const still = await docs(b.token, 'GET', '/notes/documents?limit=100');
    expect(still.body.items).toHaveLength(5);
  });

  it('200 parallel requests alternating tenants each see only their own documents', async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => {
        const [who, token] = i % 2 === 0 ? ['A', a.token] : ['B', b.token];
        return docs(token, 'GET', '/notes/documents?limit=100').then((res) => ({ who, res }));
      }),
    );
    for (const { who, res } of results) {
      expect(res.status).toBe(200);
      expect(res.body.items.length).toBeGreaterThan(0);
      for (const item of res.body.items) expect(item.data.owner).toBe(who);
    }
  });
});

/** Classic injection payloads (quotes, comments, stacked queries, casts, unicode, JSON paths). */
const PAYLOADS = [
  "'", "''", '"', '`', ';', '--', '/*', '*/', "' OR '1'='1", "' OR 1=1 --", '" OR ""="', "'); DROP TABLE tenants; --",
  "1; DROP SCHEMA public CASCADE", "' UNION SELECT * FROM users --", "' UNION SELECT password_hash FROM users --",
  "admin'--", "1' AND SLEEP(5)--", "1 AND pg_sleep(5)", "'; select pg_sleep(5); --", "$$; drop table audit_log; $$",
  "\\", "\\'", '%', '%%', '_', '%_%', "' || (select current_user) || '", "1::int", "'::regclass", "t_00000000000000000000000000000000",
  '../../etc/passwd', '..%2f..%2f', '%00', '\u0000', 'NULL', 'null', 'undefined', 'true', '[]', '{}', '{"$ne":null}',
  '\u202e', 'é', '𝕏', '<script>alert(1)</script>', "${7*7}", '{{7*7}}', "data->>'owner'", "data #>> '{owner}'",
  "') or ('a'='a", "x' and tenant_id is not null --", "set_config('app.tenant_id','x',false)", 'a'.repeat(300), "ten_' OR 1=1",
];

describe('injection corpus', () => {
  /**
   * Checksums of the rows that existed before the corpus ran, picked by id (not by time:
   * a transaction that started earlier may commit later). A payload that happens to be
   * valid input — an org named "undefined" — may legitimately add rows; what must never
   * happen is a change to rows that were already there.
   */
  async function existingRows() {
    const db = stack.database.db;
    return {
      tenants: (await db.selectFrom('tenants').select('id').execute()).map((r) => r.id),
      users: (await db.selectFrom('users').select('id').execute()).map((r) => r.id),
      auditUpTo: (await sql<{ seq: string }>`select coalesce(max(chain_seq), 0)::text as seq from audit_log`.execute(db)).rows[0]!.seq,
    };
  }

  async function checksums(rows: Awaited<ReturnType<typeof existingRows>>) {
    const { rows: sums } = await sql<{ name: string; sum: string }>`
      select 'tenants' as name, md5(coalesce(string_agg(t::text, ',' order by t.id), '')) as sum from tenants t where t.id = any(${rows.tenants}::uuid[])
      union all select 'users', md5(coalesce(string_agg(u::text, ',' order by u.id), '')) from users u where u.id = any(${rows.users}::uuid[])
      union all select 'billing_states', md5(coalesce(string_agg(b::text, ',' order by b.tenant_id), '')) from billing_states b where b.tenant_id = any(${rows.tenants}::uuid[])
      union all select 'memberships', md5(coalesce(string_agg(m::text, ',' order by m.user_id, m.tenant_id), '')) from memberships m where m.tenant_id = any(${rows.tenants}::uuid[])
      union all select 'audit_log', md5(coalesce(string_agg(a::text, ',' order by a.chain_seq), '')) from audit_log a where a.chain_seq <= ${rows.auditUpTo}::bigint`.execute(
      stack.database.db,
    );
    return {
      control: sums,
      docsA: (await docs(a.token, 'GET', '/notes/documents?limit=100')).body,
      docsB: (await docs(b.token, 'GET', '/notes/documents?limit=100')).body,
    };
  }

  it(`${PAYLOADS.length} payloads into every string input of the tenant and admin read paths: no 500, no foreign data, nothing changes`, async () => {
    expect(PAYLOADS.length).toBeGreaterThanOrEqual(50);
    const existing = await existingRows();
    const before = await checksums(existing);
    const e = encodeURIComponent;
    for (const p of PAYLOADS) {
      const calls = [
        docs(a.token, 'GET', `/${e(p)}/documents`),
        docs(a.token, 'POST', `/${e(p)}/documents`, { data: { x: 1 } }),
        docs(a.token, 'GET', `/notes/documents/${e(p)}`),
        docs(a.token, 'PUT', `/notes/documents/${e(p)}`, { data: { x: 1 } }),
        docs(a.token, 'DELETE', `/notes/documents/${e(p)}`),
        docs(a.token, 'GET', `/notes/documents?where[${e(p)}]=1`),
        docs(a.token, 'GET', `/notes/documents?where[owner]=${e(p)}`),
        docs(a.token, 'GET', `/notes/documents?cursor=${e(p)}`),
        docs(a.token, 'GET', `/notes/documents?limit=${e(p)}`),
        request(stack.api.baseUrl, 'GET', `/v1/tenants?search=${e(p.slice(0, 64))}`, { token: PLATFORM_KEY }),
        request(stack.api.baseUrl, 'GET', `/v1/tenants/${e(p)}`, { token: PLATFORM_KEY }),
        request(stack.api.baseUrl, 'GET', `/v1/tenants/${e(p)}/billing-state`, { token: PLATFORM_KEY }),
        request(stack.api.baseUrl, 'GET', `/v1/audit?tenantId=${e(p)}&cursor=${e(p)}`, { token: PLATFORM_KEY }),
        request(stack.api.baseUrl, 'GET', `/v1/signup/${e(p)}`),
        request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email: p, password: p } }),
        request(stack.api.baseUrl, 'POST', '/v1/signup', { body: { email: `${p}@example.com`, password: p, orgName: p } }),
        // A header can carry only visible ASCII; other payloads cannot even be sent as a token.
        ...(/^[\x21-\x7e]+$/.test(p) ? [request(stack.api.baseUrl, 'GET', '/v1/me', { token: p })] : []),
      ];
      for (const res of await Promise.all(calls)) {
        expect(res.status, `payload ${JSON.stringify(p)}`).toBeLessThan(500);
        expect(JSON.stringify(res.body ?? '')).not.toContain('"owner":"B"');
      }
    }
    const after = await checksums(existing);
    expect(after).toEqual(before);
  });
});
