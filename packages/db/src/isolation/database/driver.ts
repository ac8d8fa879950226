import { assertTenantDatabaseName, assertTenantRoleName, tenantDatabaseName, tenantRoleName } from '@tenantry/domain';
import type { Transaction } from 'kysely';
import type { Database } from '../../schema.js';
import {
  type AttachedStore,
  type DriverContext,
  type IsolationDriver,
  type ProvisioningTenant,
  type StoreProbe,
  type TeardownTarget,
  type TenantRef,
  UnsupportedIsolationError,
  storeOf,
} from '../driver.js';
import type { Placement } from '../placement.js';
import { probeTenantStore } from '../probe.js';
import { decryptSecret } from '../shared/secrets.js';
import { connectionUrl } from '../shared/tenant-database.js';
import { TenantPools, attachTenantDatabase } from '../shared/tenant-pools.js';
import { freezeTenantTables, thawTenantTables } from '../shared/tenant-tables.js';
import { type DatabasePlacement, TenantDatabaseProvisioner } from './provisioner.js';
import { type StorageMeasure, measureTenantDatabase, vacuumSchemaTables } from '../shared/storage.js';
import { type TenantDbServer, serverOf, tenantDbServers, withAdmin } from './servers.js';

export interface DatabaseDriverOptions {
  /** TENANT_DB_SERVERS: admin URLs of the servers tenant databases are placed on (default: the control plane's server). */
  servers?: readonly string[] | undefined;
}

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
 * - Placement: the server with the fewest tenants. The role's password is random, stored
 *   only AES-256-GCM-encrypted on the tenant row, and reaches Postgres only as a SCRAM
 *   verifier.
 * - Requests: a bounded LRU of per-tenant pools, connected as the tenant's role.
 */
export class DatabaseDriver implements IsolationDriver {
  readonly model = 'database';
  readonly placementColumns = ['database_server', 'database_name', 'database_role', 'database_password_enc'] as const;
  private readonly servers: TenantDbServer[];
  private readonly provisioner: TenantDatabaseProvisioner;
  private readonly pools: TenantPools;

  constructor(
    private readonly context: DriverContext,
    options: DatabaseDriverOptions = {},
  ) {
    this.servers = tenantDbServers(options.servers, context.controlPlaneUrl);
    this.provisioner = new TenantDatabaseProvisioner(context.db, { servers: this.servers, secretKey: context.secretKey, controlPlaneUrl: context.controlPlaneUrl });
    this.pools = new TenantPools((tenantId) => this.connectionOf(tenantId), context.pools, context.warn);
  }

  /** Open tenant pools (for tests and metrics). */
  get poolCount(): number {
    return this.pools.poolCount;
  }

  unavailable(): string | undefined {
    return this.context.secretKey ? undefined : 'database isolation is not enabled on this installation (TENANT_SECRET_KEY is not set)';
  }

  async provision(tenant: ProvisioningTenant): Promise<void> {
    const reason = this.unavailable();
    if (reason) throw new Error(reason);
    await this.provisioner.provision(tenant);
  }

  /** Not transactional (DROP DATABASE cannot be): the database and role go at once; needs no key. */
  async drop(_trx: Transaction<Database>, tenant: TeardownTarget): Promise<void> {
    await this.provisioner.drop(tenant.id, tenant.row?.database_server ?? null);
  }

  open<T>(tenant: TenantRef, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    if (!this.context.secretKey) return Promise.reject(new UnsupportedIsolationError('no store driver for database isolation (TENANT_SECRET_KEY is not set)'));
    return this.pools.run(tenant, fn);
  }

  health(tenant: TenantRef): Promise<StoreProbe> {
    return probeTenantStore(storeOf(this), tenant);
  }

  /** As the server's admin, in each tenant's own database (pg_database_size and its free space maps). */
  async measureStorage(tenants: readonly TenantRef[], vacuumFirst: ReadonlySet<string>): Promise<Map<string, StorageMeasure>> {
    const measured = new Map<string, StorageMeasure>();
    if (tenants.length === 0) return measured;
    const rows = await this.context.db
      .selectFrom('tenants')
      .select(['id', 'database_server', 'database_name'])
      .where('id', 'in', tenants.map((t) => t.id))
      .where('isolation', '=', this.model)
      .execute();
    for (const row of rows) {
      if (!row.database_server || !row.database_name) continue;
      assertTenantDatabaseName(row.database_name);
      try {
        measured.set(
          row.id,
          await withAdmin(serverOf(this.servers, row.database_server), row.database_name, async (client) => {
            if (vacuumFirst.has(row.id)) await vacuumSchemaTables(client, 'public');
            return measureTenantDatabase(client);
          }),
        );
      } catch (err) {
        this.context.warn('could not measure a tenant database', { tenantId: row.id, err: (err as Error).message });
      }
    }
    return measured;
  }

  async close(): Promise<void> {
    await Promise.all([this.pools.close(), this.provisioner.close()]);
  }

  /** The tenant's own database on its server, as its own role (the password decrypted here, once per pool). */
  private async connectionOf(tenantId: string): Promise<{ url: string; generation: number }> {
    const row = await this.context.db
      .selectFrom('tenants')
      .select(['database_server', 'database_name', 'database_role', 'database_password_enc', 'placement_generation'])
      .where('id', '=', tenantId)
      .where('isolation', '=', this.model)
      .executeTakeFirst();
    if (!row) throw new Error('the tenant has no database');
    return { url: this.urlOf(tenantId, row), generation: row.placement_generation };
  }

  private urlOf(tenantId: string, placement: Placement): string {
    const { server, database, role, passwordEnc } = this.databasePlacement(tenantId, placement);
    const password = decryptSecret(this.context.secretKey!, passwordEnc, tenantId);
    return connectionUrl(serverOf(this.servers, server).adminUrl, database, { user: role, password });
  }

  /** A placement's parts, checked: its names must be the ones the tenant id gives. */
  private databasePlacement(tenantId: string, placement: Placement): DatabasePlacement {
    const { database_server: server, database_name: database, database_role: role, database_password_enc: passwordEnc } = placement;
    if (!server || !database || !role || !passwordEnc) throw new Error('the tenant has no database');
    assertTenantRoleName(role);
    assertTenantDatabaseName(database);
    if (database !== tenantDatabaseName(tenantId) || role !== tenantRoleName(tenantId)) throw new Error("the placement names another tenant's database");
    return { server, database, role, passwordEnc };
  }

  // ---- Moves: the target database td_<id> on the least loaded server, as for a new tenant.

  async placeMove(tenantId: string): Promise<Placement> {
    const reason = this.unavailable();
    if (reason) throw new Error(reason);
    const chosen = await this.provisioner.choose(this.context.db, tenantId);
    return { database_server: chosen.server, database_name: chosen.database, database_role: chosen.role, database_password_enc: chosen.passwordEnc };
  }

  async provisionAt(tenantId: string, placement: Placement): Promise<Placement> {
    await this.provisioner.provisionAt(tenantId, this.databasePlacement(tenantId, placement));
    return placement;
  }

  async attach(tenantId: string, placement: Placement): Promise<AttachedStore> {
    return attachTenantDatabase(this.urlOf(tenantId, placement), tenantId, { applicationName: 'tenantry-move', warn: this.context.warn });
  }

  /** As the server's admin, in the tenant's database (which the admin owns). */
  async freeze(tenantId: string, placement: Placement, timeoutMs: number): Promise<void> {
    const { server, database, role } = this.databasePlacement(tenantId, placement);
    await withAdmin(serverOf(this.servers, server), database, (client) => freezeTenantTables(client, 'public', role, timeoutMs));
  }

  async thaw(tenantId: string, placement: Placement): Promise<void> {
    const { server, database, role } = this.databasePlacement(tenantId, placement);
    await withAdmin(serverOf(this.servers, server), database, (client) => thawTenantTables(client, 'public', role));
  }

  /** The database and its role, on the placement's server only. */
  async dropAt(tenantId: string, placement: Placement): Promise<void> {
    if (placement.database_name) assertTenantDatabaseName(placement.database_name);
    await this.provisioner.drop(tenantId, placement.database_server ?? null);
  }
}
