import { type Isolation, assertTenantDatabaseName, assertTenantRoleName, tenantDatabaseName, tenantRoleName } from '@tenantry/domain';
import { Kysely, PostgresDialect, type Transaction, sql } from 'kysely';
import pg from 'pg';
import type { Db } from '../client.js';
import { guardPool, withClient } from '../pg-faults.js';
import type { Database } from '../schema.js';
import { insertProvisioningTenant } from '../tenants.js';
import { decryptSecret, encryptSecret, generateRolePassword, scramSha256Verifier } from './secrets.js';
import { type TenantRef, type TenantStore, UnsupportedIsolationError } from './tenant-store.js';

/**
 * Database isolation: one Postgres database per tenant, cloned from a migrated template,
 * reached only through the tenant's own login role.
 *
 * - The template `tenantry_tenant_template` holds the tenant tables: the same documents
 *   table as a tenant schema, with RLS enabled, forced and keyed on app.tenant_id as
 *   defense in depth (the database boundary is the real one).
 * - Each tenant gets `td_<32 hex>` (owned by the admin, not by the tenant) and a LOGIN
 *   role `tr_<32 hex>`: not superuser, no BYPASSRLS, no CREATEDB/CREATEROLE, owner of
 *   nothing; CONNECT on its database only (revoked from PUBLIC there), and
 *   SELECT/INSERT/UPDATE/DELETE on documents (never TRUNCATE).
 * - The role's password is random, stored only AES-256-GCM-encrypted on the tenant row,
 *   and reaches Postgres only as a SCRAM verifier.
 */
export const TENANT_TEMPLATE_DATABASE = 'tenantry_tenant_template';

/** The tenant database inside a tenant's dedicated instance (cluster isolation). */
export const CLUSTER_TENANT_DATABASE = 'tenant';

/** A Postgres server tenant databases may be placed on: `key` (host:port) is what tenant rows store. */
export interface TenantDbServer {
  key: string;
  /** An admin (superuser, or CREATEDB + CREATEROLE) connection URL; its database part is ignored. */
  adminUrl: string;
}

export interface Placement {
  server: string;
  database: string;
  role: string;
  passwordEnc: Buffer;
}

/** host:port of a postgres URL; what a tenant row names its server by (never credentials). */
export function serverKeyOf(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || '5432'}`;
}

/** TENANT_DB_SERVERS, or else the control plane's own server. */
export function tenantDbServers(urls: readonly string[] | undefined, controlPlaneUrl: string): TenantDbServer[] {
  const servers = new Map<string, TenantDbServer>();
  for (const url of urls && urls.length > 0 ? urls : [controlPlaneUrl]) {
    const key = serverKeyOf(url);
    if (!servers.has(key)) servers.set(key, { key, adminUrl: url });
  }
  return [...servers.values()];
}

function serverOf(servers: readonly TenantDbServer[], key: string): TenantDbServer {
  const server = servers.find((s) => s.key === key);
  if (!server) throw new Error(`tenant database server ${key} is not in TENANT_DB_SERVERS`);
  return server;
}

function urlOf(server: TenantDbServer, database: string, credentials?: { user: string; password: string }): string {
  const u = new URL(server.adminUrl);
  u.pathname = `/${encodeURIComponent(database)}`;
  if (credentials) {
    u.username = encodeURIComponent(credentials.user);
    u.password = encodeURIComponent(credentials.password);
  }
  return u.toString();
}

function withAdmin<T>(server: TenantDbServer, database: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  return withClient({ connectionString: urlOf(server, database), connectionTimeoutMillis: 5_000, application_name: 'tenantry-provisioner' }, fn);
}

const codeOf = (err: unknown) => (err as { code?: string }).code;

/** CREATE DATABASE, tolerating a twin that created it first and a template briefly in use. */
async function createDatabaseIfMissing(client: pg.Client, name: string, template?: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (rowCount) return;
    try {
      // CREATE DATABASE cannot run in a transaction block: this client is in autocommit.
      await client.query(`create database ${client.escapeIdentifier(name)}${template ? ` template ${client.escapeIdentifier(template)}` : ''}`);
      return;
    } catch (err) {
      const code = codeOf(err);
      // duplicate_database, or unique_violation when two creators race in the catalog.
      if (code === '42P04' || code === '23505') return;
      // object_in_use: someone is connected to the template (another worker maintaining it).
      if (code !== '55006' || attempt >= 100) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** The tenant tables of every tenant database, idempotent (run on the template only). */
export const TEMPLATE_DDL = `
  create table if not exists documents (
    id uuid primary key default gen_random_uuid(),
    tenant_id uuid not null default nullif(current_setting('app.tenant_id', true), '')::uuid,
    collection text not null,
    data jsonb not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
  );
  create index if not exists documents_collection_idx on documents (tenant_id, collection, id);
  alter table documents enable row level security;
  alter table documents force row level security;
  drop policy if exists tenant_isolation on documents;
  create policy tenant_isolation on documents
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
  revoke all on documents from public;
  revoke create on schema public from public;
`;

export interface TenantDatabaseProvisionerOptions {
  servers: TenantDbServer[];
  /** Needed to place (create) database tenants; dropping them works without it. */
  secretKey?: Buffer | undefined;
  /** The control-plane database: tenant roles must not be able to connect to it. */
  controlPlaneUrl: string;
}

/**
 * Creates and drops tenant databases and roles (the worker's side). Every operation is
 * idempotent and checks the catalogs first, so a saga that crashed anywhere resumes; and
 * none runs inside a control-plane transaction, since CREATE/DROP DATABASE cannot.
 */
export class TenantDatabaseProvisioner {
  private readonly preparedServers = new Set<string>();

  constructor(
    private readonly db: Db,
    private readonly options: TenantDatabaseProvisionerOptions,
  ) {}

  /**
   * Place the tenant (once: recorded on its row, with the encrypted password, before
   * anything is created, so a retry reuses the same server and password), then make its
   * role and its database. Serialised per tenant with the saga's advisory lock.
   */
  async provision(tenant: { id: string; name: string; plan: string; isolation: Isolation }): Promise<Placement> {
    return this.db.connection().execute(async (conn) => {
      await sql`select pg_advisory_lock(hashtextextended(${tenant.id}, 0))`.execute(conn);
      try {
        const placement = await this.place(conn, tenant);
        const server = serverOf(this.options.servers, placement.server);
        await this.prepareServer(server);
        const key = this.requireKey();
        const password = decryptSecret(key, placement.passwordEnc, tenant.id);
        await withAdmin(server, 'postgres', async (client) => {
          await ensureRole(client, placement.role, password);
          await createDatabaseIfMissing(client, placement.database, TENANT_TEMPLATE_DATABASE);
          const database = client.escapeIdentifier(placement.database);
          await client.query(`revoke all on database ${database} from public; grant connect on database ${database} to ${client.escapeIdentifier(placement.role)}`);
        });
        await withAdmin(server, placement.database, async (client) => {
          const role = client.escapeIdentifier(placement.role);
          await client.query(`grant usage on schema public to ${role}; grant select, insert, update, delete on documents to ${role}`);
        });
        return placement;
      } finally {
        await sql`select pg_advisory_unlock(hashtextextended(${tenant.id}, 0))`.execute(conn);
      }
    });
  }

  /**
   * Drop the tenant's database (terminating its connections) and role. Idempotent. With a
   * known placement only that server is visited; without one (the row is gone or was never
   * placed) every configured server, since the names follow from the tenant id.
   */
  async drop(tenantId: string, placementServer: string | null): Promise<void> {
    const database = tenantDatabaseName(tenantId);
    const role = tenantRoleName(tenantId);
    const servers = placementServer ? [serverOf(this.options.servers, placementServer)] : this.options.servers;
    for (const server of servers) {
      await withAdmin(server, 'postgres', async (client) => {
        // The database first: its ACL names the role.
        await client.query(`drop database if exists ${client.escapeIdentifier(database)} with (force)`);
        await client.query(`drop role if exists ${client.escapeIdentifier(role)}`);
      });
    }
  }

  private requireKey(): Buffer {
    if (!this.options.secretKey) throw new Error('database isolation needs TENANT_SECRET_KEY (32 bytes, base64) on the worker');
    return this.options.secretKey;
  }

  private async place(conn: Db, tenant: { id: string; name: string; plan: string; isolation: Isolation }): Promise<Placement> {
    await insertProvisioningTenant(conn, tenant);
    const row = await conn
      .selectFrom('tenants')
      .select(['database_server', 'database_name', 'database_role', 'database_password_enc'])
      .where('id', '=', tenant.id)
      .executeTakeFirstOrThrow();
    if (row.database_server && row.database_name && row.database_role && row.database_password_enc) {
      return { server: row.database_server, database: row.database_name, role: row.database_role, passwordEnc: row.database_password_enc };
    }
    const key = this.requireKey();
    // Least tenants first; ties go to the first listed server.
    const counts = await conn
      .selectFrom('tenants')
      .select(['database_server', (eb) => eb.fn.countAll<string>().as('n')])
      .where('database_server', 'is not', null)
      .groupBy('database_server')
      .execute();
    const load = new Map(counts.map((c) => [c.database_server, Number(c.n)]));
    const server = [...this.options.servers].sort((a, b) => (load.get(a.key) ?? 0) - (load.get(b.key) ?? 0))[0];
    if (!server) throw new Error('no tenant database server configured');
    const placement: Placement = {
      server: server.key,
      database: tenantDatabaseName(tenant.id),
      role: tenantRoleName(tenant.id),
      passwordEnc: encryptSecret(key, generateRolePassword(), tenant.id),
    };
    await conn
      .updateTable('tenants')
      .set({
        database_server: placement.server,
        database_name: placement.database,
        database_role: placement.role,
        database_password_enc: placement.passwordEnc,
        updated_at: sql`now()`,
      })
      .where('id', '=', tenant.id)
      .execute();
    return placement;
  }

  /**
   * Once per process and server: the template database exists and is current, tenant roles
   * cannot connect to it, nor to the control-plane database when it lives on this server.
   */
  private async prepareServer(server: TenantDbServer): Promise<void> {
    if (this.preparedServers.has(server.key)) return;
    const controlPlane = new URL(this.options.controlPlaneUrl);
    const controlPlaneDb = decodeURIComponent(controlPlane.pathname.replace(/^\//, ''));
    const { rows } = await sql<{ user: string }>`select current_user as user`.execute(this.db);
    const controlPlaneUser = rows[0]!.user;
    await withAdmin(server, 'postgres', async (client) => {
      await createDatabaseIfMissing(client, TENANT_TEMPLATE_DATABASE);
      await client.query(`revoke all on database ${client.escapeIdentifier(TENANT_TEMPLATE_DATABASE)} from public`);
      if (serverKeyOf(this.options.controlPlaneUrl) === server.key && controlPlaneDb) {
        const cp = client.escapeIdentifier(controlPlaneDb);
        // Keep the control plane's own user in; everyone else needs an explicit grant.
        await client.query(`grant connect, temporary on database ${cp} to ${client.escapeIdentifier(controlPlaneUser)}`);
        await client.query(`revoke connect, temporary on database ${cp} from public`);
      }
    });
    await withAdmin(server, TENANT_TEMPLATE_DATABASE, async (client) => {
      await client.query('begin');
      try {
        await client.query(`select pg_advisory_xact_lock(hashtext('tenantry_tenant_template'))`);
        await client.query(TEMPLATE_DDL);
        await client.query('commit');
      } catch (err) {
        await client.query('rollback').catch(() => undefined);
        throw err;
      }
    });
    this.preparedServers.add(server.key);
  }
}

/** The tenant's login role, created or brought back to the stored password and attributes. */
export async function ensureRole(client: pg.Client, role: string, password: string): Promise<void> {
  assertTenantRoleName(role);
  // A SCRAM verifier, not the password: the statement may be logged by the server.
  const attributes = `login nosuperuser nocreatedb nocreaterole noinherit noreplication nobypassrls password ${client.escapeLiteral(scramSha256Verifier(password))}`;
  const { rowCount } = await client.query('select 1 from pg_roles where rolname = $1', [role]);
  if (!rowCount) {
    try {
      await client.query(`create role ${client.escapeIdentifier(role)} with ${attributes}`);
      return;
    } catch (err) {
      if (codeOf(err) !== '42710' && codeOf(err) !== '23505') throw err;
    }
  }
  await client.query(`alter role ${client.escapeIdentifier(role)} with ${attributes}`);
}

export interface DatabaseTenantStoreOptions {
  /** Where database tenants live (unused for cluster tenants, whose row names their instance). */
  servers: TenantDbServer[];
  /**
   * Which tenants this store serves: `database` (default), or `cluster` — a dedicated
   * instance per tenant, reached at the host:port its row records, database `tenant`.
   */
  isolation?: 'database' | 'cluster';
  secretKey: Buffer;
  /** Most per-tenant pools kept open; the least recently used beyond it is closed. */
  maxPools?: number;
  /** Connections per tenant pool. */
  connectionsPerPool?: number;
  /** An idle connection of a tenant pool is closed after this long. */
  idleTimeoutMillis?: number;
  /** application_name of the tenant connections (tells the api's from the worker's probes). */
  applicationName?: string;
  onError?: (message: string) => void;
}

interface PoolEntry {
  db: Kysely<Database>;
  /** Runs using the pool right now: it is closed only when none is. */
  active: number;
  evicted: boolean;
  closed: boolean;
}

/** Errors after which a tenant's pool is not worth keeping (its database or role changed or went away). */
function isConnectionProblem(err: unknown): boolean {
  const code = codeOf(err);
  // ECONNREFUSED: a tenant instance that is down, or came back on another port.
  return typeof code === 'string' && (code.startsWith('08') || code.startsWith('28') || code === '3D000' || code === '57P01' || code === 'ECONNREFUSED');
}

/**
 * The api's driver for database tenants: runs `fn` in a transaction on the tenant's own
 * database, connected as the tenant's own role (decrypting its password), with
 * app.tenant_id set for the RLS policy as well. Pools are per tenant and bounded: at most
 * `maxPools` of `connectionsPerPool` connections each (LRU), so the connections one api
 * instance holds stay at or below maxPools × connectionsPerPool however many tenants use it.
 */
export class DatabaseTenantStore implements TenantStore {
  private readonly pools = new Map<string, Promise<PoolEntry>>();
  private readonly maxPools: number;

  constructor(
    private readonly controlPlane: Db,
    private readonly options: DatabaseTenantStoreOptions,
  ) {
    this.maxPools = options.maxPools ?? 50;
  }

  /** Open tenant pools (for tests and metrics). */
  get poolCount(): number {
    return this.pools.size;
  }

  async run<T>(tenant: TenantRef, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    if (tenant.isolation !== (this.options.isolation ?? 'database')) throw new UnsupportedIsolationError(`no store driver for ${tenant.isolation} isolation`);
    const entry = await this.acquire(tenant.id);
    try {
      return await entry.db.transaction().execute(async (trx) => {
        await sql`select set_config('app.tenant_id', ${tenant.id}, true)`.execute(trx);
        return fn(trx);
      });
    } catch (err) {
      if (isConnectionProblem(err)) this.evict(tenant.id);
      throw err;
    } finally {
      entry.active -= 1;
      if (entry.evicted && entry.active === 0) this.closeEntry(entry);
    }
  }

  /** Close every pool (api shutdown). */
  async close(): Promise<void> {
    const entries = await Promise.allSettled([...this.pools.values()]);
    this.pools.clear();
    await Promise.all(entries.map((e) => (e.status === 'fulfilled' ? e.value.db.destroy().catch(() => undefined) : undefined)));
  }

  private async acquire(tenantId: string): Promise<PoolEntry> {
    let pending = this.pools.get(tenantId);
    if (pending) {
      // Most recently used goes to the end of the map's order.
      this.pools.delete(tenantId);
      this.pools.set(tenantId, pending);
    } else {
      const opening = this.open(tenantId);
      pending = opening;
      this.pools.set(tenantId, opening);
      opening.catch(() => {
        if (this.pools.get(tenantId) === opening) this.pools.delete(tenantId);
      });
      while (this.pools.size > this.maxPools) {
        const oldest = this.pools.keys().next().value as string;
        this.evict(oldest);
      }
    }
    const entry = await pending;
    // Evicted and closed while we waited for it: open a fresh one.
    if (entry.closed) return this.acquire(tenantId);
    entry.active += 1;
    return entry;
  }

  private evict(tenantId: string): void {
    const pending = this.pools.get(tenantId);
    if (!pending) return;
    this.pools.delete(tenantId);
    pending.then(
      (entry) => {
        entry.evicted = true;
        if (entry.active === 0) this.closeEntry(entry);
      },
      () => undefined,
    );
  }

  private closeEntry(entry: PoolEntry): void {
    if (entry.closed) return;
    entry.closed = true;
    entry.db.destroy().catch((err: Error) => this.options.onError?.(`closing a tenant pool failed: ${err.message}`));
  }

  private async open(tenantId: string): Promise<PoolEntry> {
    const row = await this.controlPlane
      .selectFrom('tenants')
      .select(['isolation', 'database_server', 'database_name', 'database_role', 'database_password_enc'])
      .where('id', '=', tenantId)
      .executeTakeFirst();
    const isolation = this.options.isolation ?? 'database';
    if (!row || row.isolation !== isolation || !row.database_server || !row.database_name || !row.database_role || !row.database_password_enc) {
      throw new Error(`the tenant has no ${isolation}`);
    }
    assertTenantRoleName(row.database_role);
    let server: TenantDbServer;
    if (isolation === 'cluster') {
      if (row.database_name !== CLUSTER_TENANT_DATABASE || !/^127\.0\.0\.1:\d{1,5}$/.test(row.database_server)) throw new Error('the tenant cluster placement is invalid');
      server = { key: row.database_server, adminUrl: `postgres://${row.database_server}/postgres` };
    } else {
      assertTenantDatabaseName(row.database_name);
      server = serverOf(this.options.servers, row.database_server);
    }
    const password = decryptSecret(this.options.secretKey, row.database_password_enc, tenantId);
    const pool = new pg.Pool({
      connectionString: urlOf(server, row.database_name, { user: row.database_role, password }),
      max: this.options.connectionsPerPool ?? 2,
      idleTimeoutMillis: this.options.idleTimeoutMillis ?? 10_000,
      connectionTimeoutMillis: 5_000,
      application_name: this.options.applicationName ?? 'tenantry-tenant',
    });
    guardPool(pool, 'tenant store', (message) => this.options.onError?.(message));
    return { db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), active: 0, evicted: false, closed: false };
  }
}
