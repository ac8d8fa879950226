import { tenantDatabaseName, tenantRoleName } from '@tenantry/domain';
import { sql } from 'kysely';
import type pg from 'pg';
import type { Db } from '../../client.js';
import { withTenantLock } from '../../tenant-lock.js';
import { insertProvisioningTenant } from '../../tenants.js';
import type { ProvisioningTenant } from '../driver.js';
import { decryptSecret, encryptSecret, generateRolePassword } from '../shared/secrets.js';
import { TEMPLATE_DDL, codeOf, ensureRole } from '../shared/tenant-database.js';
import { MaintenanceConnections, type TenantDbServer, serverKeyOf, serverOf, withAdmin } from './servers.js';

/** The template every tenant database is cloned from, on each server. */
export const TENANT_TEMPLATE_DATABASE = 'tenantry_tenant_template';

export interface DatabasePlacement {
  server: string;
  database: string;
  role: string;
  passwordEnc: Buffer;
}

/** CREATE DATABASE, tolerating a twin that created it first and a template briefly in use. */
async function createDatabaseIfMissing(client: pg.ClientBase, name: string, template?: string): Promise<void> {
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

export interface TenantDatabaseProvisionerOptions {
  servers: TenantDbServer[];
  /** Needed to place (create) database tenants; dropping them works without it. */
  secretKey?: Buffer | undefined;
  /** The control-plane database: tenant roles must not be able to connect to it. */
  controlPlaneUrl: string;
}

/**
 * Creates and drops tenant databases and roles. Every operation is idempotent and checks
 * the catalogs first, so a saga that crashed anywhere resumes; and none runs inside a
 * control-plane transaction, since CREATE/DROP DATABASE cannot.
 */
export class TenantDatabaseProvisioner {
  private readonly preparedServers = new Set<string>();
  private readonly maintenance = new MaintenanceConnections();

  constructor(
    private readonly db: Db,
    private readonly options: TenantDatabaseProvisionerOptions,
  ) {}

  /**
   * Place the tenant (once: recorded on its row, with the encrypted password, before
   * anything is created, so a retry reuses the same server and password), then make its
   * role and its database. Serialised per tenant with the saga's advisory lock.
   */
  async provision(tenant: ProvisioningTenant): Promise<DatabasePlacement> {
    return withTenantLock(this.db, tenant.id, async (conn) => {
      const placement = await this.place(conn, tenant);
      await this.make(tenant.id, placement);
      return placement;
    });
  }

  /**
   * A move's target: make the role and database of a placement chosen by `choose` and kept
   * on the move row (the tenant row still names the source). Same lock, same steps.
   */
  async provisionAt(tenantId: string, placement: DatabasePlacement): Promise<DatabasePlacement> {
    return withTenantLock(this.db, tenantId, async () => {
      await this.make(tenantId, placement);
      return placement;
    });
  }

  /** Where a new tenant database goes: the server with the fewest tenants (ties: the first listed), a fresh password. */
  async choose(conn: Db, tenantId: string): Promise<DatabasePlacement> {
    const key = this.requireKey();
    const counts = await conn
      .selectFrom('tenants')
      .select(['database_server', (eb) => eb.fn.countAll<string>().as('n')])
      .where('database_server', 'is not', null)
      .groupBy('database_server')
      .execute();
    const load = new Map(counts.map((c) => [c.database_server, Number(c.n)]));
    const server = [...this.options.servers].sort((a, b) => (load.get(a.key) ?? 0) - (load.get(b.key) ?? 0))[0];
    if (!server) throw new Error('no tenant database server configured');
    return {
      server: server.key,
      database: tenantDatabaseName(tenantId),
      role: tenantRoleName(tenantId),
      passwordEnc: encryptSecret(key, generateRolePassword(), tenantId),
    };
  }

  /** The role, the database cloned from the template, CONNECT and table grants: each idempotent. */
  private async make(tenantId: string, placement: DatabasePlacement): Promise<void> {
    const server = serverOf(this.options.servers, placement.server);
    await this.prepareServer(server);
    const key = this.requireKey();
    const password = decryptSecret(key, placement.passwordEnc, tenantId);
    await this.maintenance.run(server, async (client) => {
      await ensureRole(client, placement.role, password);
      await createDatabaseIfMissing(client, placement.database, TENANT_TEMPLATE_DATABASE);
      const database = client.escapeIdentifier(placement.database);
      await client.query(`revoke all on database ${database} from public; grant connect on database ${database} to ${client.escapeIdentifier(placement.role)}`);
    });
    await withAdmin(server, placement.database, async (client) => {
      const role = client.escapeIdentifier(placement.role);
      await client.query(`grant usage on schema public to ${role}; grant select, insert, update, delete on documents to ${role}`);
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
      await this.maintenance.run(server, async (client) => {
        // The database first: its ACL names the role.
        await client.query(`drop database if exists ${client.escapeIdentifier(database)} with (force)`);
        await client.query(`drop role if exists ${client.escapeIdentifier(role)}`);
      });
    }
  }

  /** Closes the kept maintenance connections. */
  close(): Promise<void> {
    return this.maintenance.close();
  }

  private requireKey(): Buffer {
    if (!this.options.secretKey) throw new Error('database isolation needs TENANT_SECRET_KEY (32 bytes, base64) on the worker');
    return this.options.secretKey;
  }

  private async place(conn: Db, tenant: ProvisioningTenant): Promise<DatabasePlacement> {
    await insertProvisioningTenant(conn, tenant);
    const row = await conn
      .selectFrom('tenants')
      .select(['database_server', 'database_name', 'database_role', 'database_password_enc'])
      .where('id', '=', tenant.id)
      .executeTakeFirstOrThrow();
    if (row.database_server && row.database_name && row.database_role && row.database_password_enc) {
      return { server: row.database_server, database: row.database_name, role: row.database_role, passwordEnc: row.database_password_enc };
    }
    const placement = await this.choose(conn, tenant.id);
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
    await this.maintenance.run(server, async (client) => {
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
