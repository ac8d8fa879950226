import { parseApiConfig } from '@tenantry/api';
import { MaintenanceConnections, decryptSecret, parseSecretKey, scramSha256Verifier, tenantDbServers } from '@tenantry/db';
import { fromPublicId } from '@tenantry/domain';
import { parseWorkerConfig } from '@tenantry/worker';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withAdmin } from '../support/admin.js';
import { TENANT_SECRET_KEY } from '../support/apps.js';
import { databaseUrl } from '../support/env.js';
import { request, validSignup, waitFor } from '../support/http.js';
import { useStack } from '../support/stack.js';
import { dropTenantDatabasesOf } from '../support/tenant-databases.js';

/**
 * Database isolation — a Postgres database and a login role per tenant — in what is
 * particular to it (the cross-tenant matrix, catalog checks and injection corpus run for
 * every model: security/isolation-*.test.ts). Tenant pools of the api are capped low here
 * (2 pools × 1 connection) so the LRU is exercised.
 */
const POOL_MAX = 2;
const stack = useStack({ api: { TENANT_POOL_MAX: String(POOL_MAX), TENANT_POOL_SIZE: '1' } });
const key = parseSecretKey(TENANT_SECRET_KEY);

interface DbTenant {
  tenantId: string;
  /** The raw uuid. */
  id: string;
  token: string;
  database: string;
  role: string;
}

let counter = 0;
async function createDatabaseTenant(overrides: Record<string, unknown> = {}): Promise<DbTenant> {
  counter += 1;
  const email = `dbiso${counter}-${process.pid}-${Date.now()}@example.com`;
  const password = 'violet-otter-stapler-42';
  const created = await stack.admin('POST', '/v1/tenants', {
    body: { name: `Db Tenant ${counter}`, ownerEmail: email, ownerPassword: password, plan: 'pro', isolation: 'database', ...overrides },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(202);
  const tenantId: string = created.body.tenantId;
  await waitFor(async () => ((await stack.admin('GET', `/v1/tenants/${tenantId}`)).body.status === 'active' ? true : undefined), 30_000);
  const login = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email, password } });
  expect(login.status).toBe(200);
  const id = fromPublicId('ten', tenantId)!;
  const row = await stack.database.db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  return { tenantId, id, token: login.body.token, database: row.database_name!, role: row.database_role! };
}

const docs = (token: string, method: string, path: string, body?: unknown) => request(stack.api.baseUrl, method, `/v1/collections${path}`, { token, body });

async function exists(kind: 'database' | 'role', name: string): Promise<boolean> {
  return withAdmin(async (client) => {
    const query = kind === 'database' ? 'select 1 from pg_database where datname = $1' : 'select 1 from pg_roles where rolname = $1';
    return ((await client.query(query, [name])).rowCount ?? 0) > 0;
  });
}

/** Connect as a tenant role (the local server trusts; CONNECT privileges still apply). */
async function connectAs(role: string, database: string): Promise<pg.Client> {
  const url = new URL(databaseUrl(database));
  url.username = role;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  return client;
}

async function connectError(role: string, database: string): Promise<string | undefined> {
  try {
    const client = await connectAs(role, database);
    await client.end();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

let a: DbTenant;
let b: DbTenant;

beforeAll(async () => {
  [a, b] = await Promise.all([createDatabaseTenant(), createDatabaseTenant()]);
});

afterAll(async () => {
  // Databases and roles are cluster-wide: drop every one this file's tenants were given
  // (registered after useStack, so this runs before its database is dropped).
  if (stack.database) await dropTenantDatabasesOf(stack.database.name);
});

describe('provisioning a database tenant through the api', () => {
  it('creates td_/tr_ on the server, records the placement, and the documents API works end to end', async () => {
    const row = await stack.database.db.selectFrom('tenants').selectAll().where('id', '=', a.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ isolation: 'database', status: 'active', schema_name: null, plan: 'pro' });
    expect(row.database_name).toBe(`td_${a.id.replaceAll('-', '')}`);
    expect(row.database_role).toBe(`tr_${a.id.replaceAll('-', '')}`);
    expect(row.database_server).toMatch(/^[^@/]+:\d+$/);
    expect(await exists('database', a.database)).toBe(true);

    const me = await request(stack.api.baseUrl, 'GET', '/v1/me', { token: a.token });
    expect(me.body.tenant).toMatchObject({ id: a.tenantId, isolation: 'database' });

    const created = await docs(a.token, 'POST', '/notes/documents', { data: { title: 'in my own database', n: 1 } });
    expect(created.status).toBe(201);
    await docs(a.token, 'POST', '/notes/documents', { data: { title: 'second', n: 2 } });
    const got = await docs(a.token, 'GET', `/notes/documents/${created.body.id}`);
    expect([got.status, got.body.data]).toEqual([200, { title: 'in my own database', n: 1 }]);
    const list = await docs(a.token, 'GET', '/notes/documents?where[n]=2');
    expect(list.body.items.map((d: { data: { title: string } }) => d.data.title)).toEqual(['second']);
    const replaced = await docs(a.token, 'PUT', `/notes/documents/${created.body.id}`, { data: { title: 'edited' } });
    expect(replaced.body.data).toEqual({ title: 'edited' });

    // The rows are in the tenant's database, stamped with its id; none in the control plane.
    const admin = new pg.Client({ connectionString: databaseUrl(a.database) });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ tenant_id: string; n: string }>('select tenant_id::text, count(*)::text as n from documents group by 1');
      expect(rows).toEqual([{ tenant_id: a.id, n: '2' }]);
    } finally {
      await admin.end();
    }

    const health = await stack.admin('GET', `/v1/tenants/${a.tenantId}/health`);
    expect(health.body).toMatchObject({ healthy: true, store: { ok: true } });
  });

  it('the role is a plain login role: not owner, superuser, BYPASSRLS, no TRUNCATE; RLS is forced in its database too', async () => {
    const attrs = await withAdmin(async (client) => (await client.query('select * from pg_roles where rolname = $1', [a.role])).rows[0]);
    expect(attrs).toMatchObject({ rolcanlogin: true, rolsuper: false, rolbypassrls: false, rolcreatedb: false, rolcreaterole: false, rolinherit: false });
    const admin = new pg.Client({ connectionString: databaseUrl(a.database) });
    await admin.connect();
    try {
      const { rows } = await admin.query(
        `select pg_get_userbyid(c.relowner) as owner, c.relrowsecurity, c.relforcerowsecurity,
           has_table_privilege($1, 'documents', 'TRUNCATE') as can_truncate,
           has_table_privilege($1, 'documents', 'SELECT,INSERT,UPDATE,DELETE') as can_dml,
           has_database_privilege($2, current_database(), 'CONNECT') as other_can_connect
         from pg_class c where c.relname = 'documents'`,
        [a.role, b.role],
      );
      expect(rows[0]).toMatchObject({ relrowsecurity: true, relforcerowsecurity: true, can_truncate: false, can_dml: true, other_can_connect: false });
      expect(rows[0].owner).not.toBe(a.role);
    } finally {
      await admin.end();
    }

    // As the role itself: without app.tenant_id it sees no rows (defense in depth), and cannot truncate.
    const own = await connectAs(a.role, a.database);
    try {
      expect((await own.query('select count(*)::int as n from documents')).rows[0].n).toBe(0);
      await expect(own.query('truncate documents')).rejects.toMatchObject({ code: '42501' });
      await expect(own.query('create temp table t (x int)')).rejects.toMatchObject({ code: '42501' });
    } finally {
      await own.end();
    }
  });

  it("connects only to its own database: another tenant's, the control plane's and the template are refused", async () => {
    expect(await connectError(a.role, a.database)).toBeUndefined();
    expect(await connectError(a.role, b.database)).toBe('42501');
    expect(await connectError(b.role, a.database)).toBe('42501');
    expect(await connectError(a.role, stack.database.name)).toBe('42501');
    expect(await connectError(a.role, 'tenantry_tenant_template')).toBe('42501');
  });

  it('the password is stored only encrypted: no trace of it anywhere in the control-plane database; Postgres holds a SCRAM verifier', async () => {
    const row = await stack.database.db.selectFrom('tenants').select('database_password_enc').where('id', '=', a.id).executeTakeFirstOrThrow();
    const sealed = row.database_password_enc!;
    const password = decryptSecret(key, sealed, a.id);
    expect(password.length).toBeGreaterThanOrEqual(32);
    expect(sealed.length).toBe(12 + 16 + Buffer.byteLength(password));
    // Bound to its tenant: the same ciphertext does not open as another tenant's.
    expect(() => decryptSecret(key, sealed, b.id)).toThrow();

    // Every row of every control-plane table, as text (bytea shows as hex, so both forms).
    const hex = Buffer.from(password).toString('hex');
    const { rows: tables } = await sql<{ name: string }>`select tablename as name from pg_tables where schemaname = 'public'`.execute(stack.database.db);
    expect(tables.length).toBeGreaterThan(5);
    for (const { name } of tables) {
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(name)} as r where r::text like ${`%${password}%`} or r::text like ${`%${hex}%`}`.execute(
        stack.database.db,
      );
      expect(rows[0]!.n, name).toBe(0);
    }

    const stored = await withAdmin(async (client) => (await client.query('select rolpassword from pg_authid where rolname = $1', [a.role])).rows[0].rolpassword as string);
    const match = /^SCRAM-SHA-256\$(\d+):([^$]+)\$/.exec(stored);
    expect(match).not.toBeNull();
    expect(scramSha256Verifier(password, Buffer.from(match![2]!, 'base64'), Number(match![1]))).toBe(stored);
  });

  it('our SCRAM verifier is the one Postgres computes for the same password and salt', async () => {
    const role = `tr_${'0'.repeat(24)}${process.pid.toString(16).padStart(8, '0')}`;
    await withAdmin(async (client) => {
      try {
        await client.query(`set password_encryption = 'scram-sha-256'`);
        await client.query(`create role ${client.escapeIdentifier(role)} password 'correct horse battery staple'`);
        const stored = (await client.query('select rolpassword from pg_authid where rolname = $1', [role])).rows[0].rolpassword as string;
        const [, iterations, salt] = /^SCRAM-SHA-256\$(\d+):([^$]+)\$/.exec(stored)!;
        expect(scramSha256Verifier('correct horse battery staple', Buffer.from(salt!, 'base64'), Number(iterations))).toBe(stored);
      } finally {
        await client.query(`drop role if exists ${client.escapeIdentifier(role)}`);
      }
    });
  });
});

describe("the provisioner's kept maintenance connections", () => {
  const pidOf = async (connections: MaintenanceConnections, server: ReturnType<typeof tenantDbServers>[number]) =>
    connections.run(server, async (client) => (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid);

  it('are reused; one the server ended while idle, or one whose work failed, is replaced and never handed out again', async () => {
    const [server] = tenantDbServers(undefined, databaseUrl('postgres'));
    const connections = new MaintenanceConnections();
    try {
      const first = await pidOf(connections, server!);
      expect(await pidOf(connections, server!)).toBe(first);

      // A server restart or an operator ends the idle connection.
      await withAdmin((client) => client.query('select pg_terminate_backend($1)', [first]));
      await new Promise((resolve) => setTimeout(resolve, 200));
      const second = await pidOf(connections, server!);
      expect(second).not.toBe(first);

      // Work that failed leaves the connection in a state nobody should inherit.
      await expect(connections.run(server!, (client) => client.query('select * from no_such_table'))).rejects.toThrow(/no_such_table/);
      expect(await pidOf(connections, server!)).not.toBe(second);
    } finally {
      await connections.close();
    }
  });
});

describe('plan capability and refused models', () => {
  it('POST /v1/tenants with database isolation on a plan without isolation.database → 403 capability_missing, nothing recorded', async () => {
    const email = `trialdb-${process.pid}@example.com`;
    const res = await stack.admin('POST', '/v1/tenants', { body: { name: 'Trial Db', ownerEmail: email, plan: 'trial', isolation: 'database' } });
    expect([res.status, res.body.code]).toEqual([403, 'capability_missing']);
    expect(await stack.database.db.selectFrom('signups').select('id').where('email', '=', email).execute()).toHaveLength(0);
  });

  it('public signup (always trial) asking for database isolation → 400 naming isolation; cluster needs isolation.cluster', async () => {
    const signup = await request(stack.api.baseUrl, 'POST', '/v1/signup', { body: validSignup({ isolation: 'database' }) });
    expect([signup.status, signup.body.code]).toEqual([400, 'validation_failed']);
    expect(signup.body.fields.map((f: { field: string }) => f.field)).toContain('isolation');
    // Cluster tenants are covered by cluster-isolation.test.ts; on a plan without it: 403.
    const cluster = await stack.admin('POST', '/v1/tenants', { body: { name: 'Cluster Co', ownerEmail: `cl-${process.pid}@example.com`, plan: 'pro', isolation: 'cluster' } });
    expect([cluster.status, cluster.body.code]).toEqual([403, 'capability_missing']);
  });

  it('config: a malformed TENANT_SECRET_KEY, or servers without a key, stop both apps with a clear message', () => {
    for (const parse of [parseApiConfig, parseWorkerConfig] as Array<(env: Record<string, string>) => unknown>) {
      expect(() => parse({ TENANT_SECRET_KEY: 'c2hvcnQ=' })).toThrow(/TENANT_SECRET_KEY: must be 32 random bytes, base64-encoded/);
      expect(() => parse({ TENANT_DB_SERVERS: 'postgres://admin@db1:5432/postgres' })).toThrow(/TENANT_SECRET_KEY: database isolation .* requires TENANT_SECRET_KEY/);
      expect(() => parse({ TENANT_DB_SERVERS: 'mysql://x', TENANT_SECRET_KEY })).toThrow(/TENANT_DB_SERVERS/);
      expect(parse({ TENANT_DB_SERVERS: 'postgres://admin@db1:5432/postgres, postgres://admin@db2:5432/postgres', TENANT_SECRET_KEY })).toMatchObject({
        TENANT_DB_SERVERS: ['postgres://admin@db1:5432/postgres', 'postgres://admin@db2:5432/postgres'],
      });
    }
  });
});

describe('bounded per-tenant pools (LRU)', () => {
  it(`5 database tenants used in turn all work, and the api never holds more than ${POOL_MAX} × 1 of their connections`, async () => {
    const tenants = [a, b, ...(await Promise.all([createDatabaseTenant(), createDatabaseTenant(), createDatabaseTenant()]))];
    const roles = tenants.map((t) => t.role);
    const apiConnections = async () => {
      const { rows } = await sql<{ n: number }>`
        select count(*)::int as n from pg_stat_activity
        where usename = any(${roles}) and application_name = 'tenantry-api-tenant'`.execute(stack.database.db);
      return rows[0]!.n;
    };
    let peak = 0;
    for (let round = 0; round < 2; round++) {
      for (const [i, tenant] of tenants.entries()) {
        const created = await docs(tenant.token, 'POST', '/lru/documents', { data: { round, i } });
        expect(created.status).toBe(201);
        const list = await docs(tenant.token, 'GET', '/lru/documents?limit=100');
        expect(list.body.items.map((d: { data: { i: number } }) => d.data.i)).toEqual(Array(round + 1).fill(i));
        // Closing an evicted pool ends its backend asynchronously: wait for it, then record.
        peak = Math.max(peak, await waitFor(async () => {
          const n = await apiConnections();
          return n <= POOL_MAX ? n : undefined;
        }, 5_000));
      }
    }
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(POOL_MAX);
  });
});

describe('compensation and purge', () => {
  it('a step failing for good after CREATE DATABASE → compensation leaves no database and no role', async () => {
    await sql`
      create function test_refuse_billing() returns trigger language plpgsql as $$
      begin raise exception 'billing store refuses writes (injected)'; end $$`.execute(stack.database.db);
    await sql`create trigger refuse_billing before insert on billing_states for each row execute function test_refuse_billing()`.execute(stack.database.db);
    try {
      const email = `doomed-db-${process.pid}@example.com`;
      const created = await stack.admin('POST', '/v1/tenants', {
        body: { name: 'Doomed Db', ownerEmail: email, ownerPassword: 'violet-otter-stapler-42', plan: 'pro', isolation: 'database' },
      });
      expect(created.status).toBe(202);
      const id = fromPublicId('ten', created.body.tenantId)!;
      const hex = id.replaceAll('-', '');
      const signup = await waitFor(async () => {
        const row = await stack.database.db.selectFrom('signups').selectAll().where('email', '=', email).executeTakeFirst();
        return row?.status === 'failed' ? row : undefined;
      }, 30_000);
      // It failed at billing, i.e. after the database step had run.
      expect(signup.last_error).toContain('billing store refuses writes');
      expect(await exists('database', `td_${hex}`)).toBe(false);
      expect(await exists('role', `tr_${hex}`)).toBe(false);
      expect(await stack.database.db.selectFrom('tenants').select('id').where('id', '=', id).execute()).toHaveLength(0);
    } finally {
      await sql`drop trigger refuse_billing on billing_states`.execute(stack.database.db);
    }
  });

  it('purge drops the database and the role and forgets the encrypted password; a second pass is a no-op', async () => {
    const doomed = await createDatabaseTenant();
    expect(await exists('database', doomed.database)).toBe(true);
    // An open api pool on it must not stand in the way (DROP DATABASE … WITH (FORCE)).
    expect((await docs(doomed.token, 'POST', '/notes/documents', { data: { x: 1 } })).status).toBe(201);
    expect((await stack.admin('DELETE', `/v1/tenants/${doomed.tenantId}`)).status).toBe(200);
    const later = new Date(Date.now() + 365 * 86_400_000);
    expect(await stack.worker!.purge(later)).toBeGreaterThanOrEqual(1);

    expect(await exists('database', doomed.database)).toBe(false);
    expect(await exists('role', doomed.role)).toBe(false);
    const row = await stack.database.db.selectFrom('tenants').selectAll().where('id', '=', doomed.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ status: 'deleted', database_server: null, database_name: null, database_role: null, database_password_enc: null });
    expect(await stack.worker!.purge(later)).toBe(0);
    // The other tenants are untouched.
    expect((await docs(a.token, 'GET', '/notes/documents')).status).toBe(200);
  });
});
