import { decryptSecret, parseSecretKey } from '@tenantry/db';
import { type Isolation, fromPublicId } from '@tenantry/domain';
import pg from 'pg';
import { expect } from 'vitest';
import { TENANT_SECRET_KEY } from '../../support/apps.js';
import { request, waitFor } from '../../support/http.js';
import type { Stack } from '../../support/stack.js';
import { suiteModel } from './models.js';

/** A tenant of the isolation suite, made through the admin API and logged in. */
export interface SuiteTenant {
  isolation: Isolation;
  /** Public id (`ten_…`). */
  tenantId: string;
  /** The raw uuid. */
  id: string;
  slug: string;
  token: string;
  email: string;
  password: string;
}

const PASSWORD = 'violet-otter-stapler-42';

let counter = 0;
export async function createSuiteTenant(stack: Stack, isolation: Isolation, label: string, plan = suiteModel(isolation).plan): Promise<SuiteTenant> {
  counter += 1;
  const model = suiteModel(isolation);
  const email = `suite-${label.toLowerCase()}-${counter}-${process.pid}-${Date.now()}@example.com`;
  const created = await stack.admin('POST', '/v1/tenants', {
    body: { name: `Suite ${isolation} ${label} ${counter}`, ownerEmail: email, ownerPassword: PASSWORD, plan, isolation },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(202);
  const tenantId: string = created.body.tenantId;
  const tenant = await waitFor(async () => {
    const res = await stack.admin('GET', `/v1/tenants/${tenantId}`);
    return res.body.status === 'active' ? res.body : undefined;
  }, model.provisionTimeoutMs);
  const login = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email, password: PASSWORD } });
  expect(login.status).toBe(200);
  return { isolation, tenantId, id: fromPublicId('ten', tenantId)!, slug: tenant.slug, token: login.body.token, email, password: PASSWORD };
}

/** Move a suite tenant to another model through the admin API and wait until it is done; its credentials carry over. */
export async function moveSuiteTenant(stack: Stack, tenant: SuiteTenant, to: Isolation): Promise<SuiteTenant> {
  const started = await stack.admin('POST', `/v1/tenants/${tenant.tenantId}/move`, { body: { isolation: to } });
  expect(started.status, JSON.stringify(started.body)).toBe(202);
  const final = await waitFor(async () => {
    const res = await stack.admin('GET', `/v1/tenants/${tenant.tenantId}/moves/${started.body.moveId}`);
    return res.body.status === 'done' || res.body.status === 'rolled_back' ? res.body : undefined;
  }, 120_000, 100);
  expect(final.status, JSON.stringify(final)).toBe('done');
  return { ...tenant, isolation: to };
}

async function placement(stack: Stack, tenant: SuiteTenant) {
  return stack.database.db.selectFrom('tenants').selectAll().where('id', '=', tenant.id).executeTakeFirstOrThrow();
}

/**
 * A superuser connection to where the tenant's rows live: the control-plane database for
 * schema tenants (search_path on its schema), its own database or instance otherwise.
 * Superusers bypass RLS: this sees every row, whatever the policies say.
 */
export async function connectToStore(stack: Stack, tenant: SuiteTenant): Promise<pg.Client> {
  return suiteModel(tenant.isolation).connectToStore(await placement(stack, tenant), stack.database.url);
}

/**
 * Connect as the tenant's own login role (database and cluster tenants), to `database`
 * (default: its own) on its own server. Rejects as Postgres refuses.
 */
export async function connectAsTenantRole(stack: Stack, tenant: SuiteTenant, target: { database?: string; port?: number } = {}): Promise<pg.Client> {
  const row = await placement(stack, tenant);
  const password = decryptSecret(parseSecretKey(TENANT_SECRET_KEY), row.database_password_enc!, tenant.id);
  const [host, port] = row.database_server!.split(':') as [string, string];
  const client = new pg.Client({
    host,
    port: target.port ?? Number(port),
    database: target.database ?? row.database_name!,
    user: row.database_role!,
    password,
  });
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}

/** Where a database/cluster tenant lives, for connection attempts by others. */
export async function storeAddress(stack: Stack, tenant: SuiteTenant): Promise<{ database: string; port: number }> {
  const row = await placement(stack, tenant);
  return { database: row.database_name!, port: Number(row.database_server!.split(':')[1]) };
}

/** Every document row of the tenant's store, as text, by id: for before/after comparisons. */
export async function storeRows(stack: Stack, tenant: SuiteTenant): Promise<Map<string, string>> {
  const client = await connectToStore(stack, tenant);
  try {
    const { rows } = await client.query<{ id: string; row: string }>('select d.id::text as id, d::text as row from documents d order by d.id');
    return new Map(rows.map((r) => [r.id, r.row]));
  } finally {
    await client.end();
  }
}

/** The store's tables and functions, for the catalog checks (run inside the tenant's store). */
export async function storeCatalog(stack: Stack, tenant: SuiteTenant) {
  const row = await placement(stack, tenant);
  const client = await connectToStore(stack, tenant);
  try {
    const namespaces = await suiteModel(tenant.isolation).namespaces(client, row);
    const tables = await client.query<{ name: string; rls: boolean; forced: boolean }>(
      `select n.nspname || '.' || c.relname as name, c.relrowsecurity as rls, c.relforcerowsecurity as forced
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped
       where c.relkind in ('r', 'p') and n.nspname = any($1)`,
      [namespaces],
    );
    const definers = await client.query<{ name: string }>(
      `select n.nspname || '.' || p.proname as name from pg_proc p join pg_namespace n on n.oid = p.pronamespace
       where n.nspname = any($1) and p.prosecdef`,
      [namespaces],
    );
    const ownerRunViews = await client.query<{ name: string }>(
      `select n.nspname || '.' || c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = any($1) and c.relkind in ('v', 'm')
         and not coalesce('security_invoker=true' = any (c.reloptions), false)`,
      [namespaces],
    );
    // PUBLIC's privileges on this database: a null datacl means the defaults, which include CONNECT.
    const publicConnect = await client.query<{ granted: boolean }>(
      `select d.datacl is null or exists (select 1 from aclexplode(d.datacl) x where x.grantee = 0 and x.privilege_type = 'CONNECT') as granted
       from pg_database d where d.datname = current_database()`,
    );
    return { namespaces, tables: tables.rows, definers: definers.rows, ownerRunViews: ownerRunViews.rows, publicCanConnect: publicConnect.rows[0]!.granted };
  } finally {
    await client.end();
  }
}

/** The role tenant requests run as: the schema tenants' shared data role, or the tenant's own login role. */
export async function dataRoleOf(stack: Stack, tenant: SuiteTenant): Promise<string> {
  return (await placement(stack, tenant)).database_role ?? suiteModel(tenant.isolation).dataRole(tenant.id);
}

export async function rolePrivileges(stack: Stack, tenant: SuiteTenant) {
  const role = await dataRoleOf(stack, tenant);
  const client = await connectToStore(stack, tenant);
  try {
    const { rows } = await client.query<{
      rolsuper: boolean;
      rolbypassrls: boolean;
      rolcreatedb: boolean;
      rolcreaterole: boolean;
      owns: number;
      truncatable: string[];
    }>(
      `select r.rolsuper, r.rolbypassrls, r.rolcreatedb, r.rolcreaterole,
         (select count(*)::int from pg_class c where c.relowner = r.oid) as owns,
         array(select c.oid::regclass::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
               where c.relkind = 'r' and n.nspname not like 'pg\\_%' and n.nspname <> 'information_schema'
                 and has_table_privilege(r.oid, c.oid, 'TRUNCATE')) as truncatable
       from pg_roles r where r.rolname = $1`,
      [role],
    );
    return { role, ...rows[0]! };
  } finally {
    await client.end();
  }
}
