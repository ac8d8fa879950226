import { assertTenantRoleName, tenantRoleName } from '@tenantry/domain';
import path from 'node:path';
import { type Kysely, type Transaction, sql } from 'kysely';
import type pg from 'pg';
import type { Database } from '../../schema.js';
import {
  type AttachedStore,
  type DriverContext,
  type IsolationDriver,
  type ProvisioningTenant,
  type StorageSupervision,
  type StoreProbe,
  type TeardownTarget,
  type TenantRef,
  UnsupportedIsolationError,
  storeOf,
} from '../driver.js';
import { withClient } from '../../pg-faults.js';
import type { Placement } from '../placement.js';
import { probeTenantStore } from '../probe.js';
import { decryptSecret } from '../shared/secrets.js';
import { type StorageMeasure, measureTenantDatabase, vacuumSchemaTables } from '../shared/storage.js';
import { connectionUrl } from '../shared/tenant-database.js';
import { TenantPools, attachTenantDatabase } from '../shared/tenant-pools.js';
import { freezeTenantTables, thawTenantTables } from '../shared/tenant-tables.js';
import { KubernetesClusters } from './kubernetes.js';
import {
  CLUSTER_PLACEMENT_COLUMNS,
  CLUSTER_SUPERUSER,
  CLUSTER_TENANT_DATABASE,
  type ClusterPlacement,
  clusterColumnsOf,
  clusterPlacementOf,
  type LocalClusterOptions,
  LocalClusterProvisioner,
  tenantClusterDirName,
} from './local.js';
import { type ClusterRuntime, RemoteClusters } from './runtime.js';

export interface ClusterDriverOptions {
  /** TENANT_CLUSTER_DRIVER (default `local`). */
  driver?: 'local' | 'kubernetes' | undefined;
  /**
   * Where the `local` variant runs instances on this host (the worker's settings). A
   * process without them reaches cluster tenants but runs no instance (the api).
   */
  local?: Omit<LocalClusterOptions, 'secretKey'> | undefined;
  /** The `kubernetes` variant's namespace (TENANT_CLUSTER_NAMESPACE). */
  namespace?: string | undefined;
}

/** Instances listen on loopback only (local variant); anything else on a row is not ours. */
const LOOPBACK_SERVER = /^127\.0\.0\.1:\d{1,5}$/;

/**
 * Cluster isolation: a dedicated Postgres instance per tenant, reached as the tenant's own
 * login role in its database `tenant`, through the same bounded LRU of per-tenant pools as
 * database tenants. Where the instance runs is the runtime's business (runtime.ts); the
 * health pass starts an instance that is down, of tenants not served right now too.
 *
 * Placement: database_server (`127.0.0.1:<port>`), database_name (`tenant`),
 * database_role and database_password_enc as for database tenants, plus the instance's
 * data directory, port and encrypted superuser password.
 */
export class ClusterDriver implements IsolationDriver {
  readonly model = 'cluster';
  readonly placementColumns = CLUSTER_PLACEMENT_COLUMNS;
  readonly keepReady: ((tenantId: string) => Promise<boolean>) | undefined;
  readonly supervise: (() => Promise<StorageSupervision>) | undefined;
  private readonly runtime: ClusterRuntime;
  private readonly pools: TenantPools;

  constructor(
    private readonly context: DriverContext,
    options: ClusterDriverOptions = {},
  ) {
    this.runtime =
      options.driver === 'kubernetes'
        ? new KubernetesClusters({ namespace: options.namespace ?? 'tenantry', replicas: options.local?.replicas, synchronous: options.local?.synchronous })
        : options.local
          ? new LocalClusterProvisioner(context.db, { ...options.local, secretKey: context.secretKey, warn: context.warn })
          : new RemoteClusters();
    this.pools = new TenantPools((tenantId) => this.connectionOf(tenantId), context.pools, context.warn);
    this.keepReady = this.runtime.restartIfDown ? (tenantId) => this.startIfDown(tenantId) : undefined;
    this.supervise = this.runtime.supervise ? () => this.runtime.supervise!() : undefined;
  }

  unavailable(): string | undefined {
    if (!this.context.secretKey) return 'cluster isolation is not enabled on this installation (TENANT_SECRET_KEY is not set)';
    return this.runtime.unavailable();
  }

  async provision(tenant: ProvisioningTenant): Promise<void> {
    const reason = this.unavailable();
    if (reason) throw new Error(reason);
    await this.runtime.provision(tenant);
  }

  /**
   * Every instance — primary, standbys, fenced old primaries — is stopped and its
   * directory removed at once (not transactional; needs no key); their records go with
   * `trx`, and a failover still open is given up.
   */
  async drop(trx: Transaction<Database>, tenant: TeardownTarget): Promise<void> {
    await this.runtime.drop(tenant.id, tenant.row?.cluster_data_dir ?? null);
    await forgetInstances(trx, tenant.id, 'the tenant was removed');
  }

  open<T>(tenant: TenantRef, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    if (!this.context.secretKey) return Promise.reject(new UnsupportedIsolationError('no store driver for cluster isolation (TENANT_SECRET_KEY is not set)'));
    return this.pools.run(tenant, fn);
  }

  async health(tenant: TenantRef): Promise<StoreProbe> {
    const probe = await probeTenantStore(storeOf(this), tenant);
    if (probe.ok || !this.keepReady) return probe;
    // The tenant's own instance may simply be down: start it and probe again.
    const started = await this.keepReady(tenant.id).catch(() => false);
    return started ? probeTenantStore(storeOf(this), tenant) : probe;
  }

  /** As each instance's superuser, in its database `tenant` (pg_database_size and its free space maps). */
  async measureStorage(tenants: readonly TenantRef[], vacuumFirst: ReadonlySet<string>): Promise<Map<string, StorageMeasure>> {
    const measured = new Map<string, StorageMeasure>();
    if (!this.context.secretKey || tenants.length === 0) return measured;
    const rows = await this.context.db
      .selectFrom('tenants')
      .select(['id', 'database_server', 'cluster_port', 'cluster_admin_password_enc'])
      .where('id', 'in', tenants.map((t) => t.id))
      .where('isolation', '=', this.model)
      .execute();
    for (const row of rows) {
      if (!row.cluster_port || !row.cluster_admin_password_enc || !row.database_server || !LOOPBACK_SERVER.test(row.database_server)) continue;
      const password = decryptSecret(this.context.secretKey, row.cluster_admin_password_enc, row.id);
      try {
        measured.set(
          row.id,
          await withClient(
            { host: '127.0.0.1', port: row.cluster_port, user: CLUSTER_SUPERUSER, password, database: CLUSTER_TENANT_DATABASE, connectionTimeoutMillis: 5_000, application_name: 'tenantry-storage-sampler' },
            async (client) => {
              if (vacuumFirst.has(row.id)) await vacuumSchemaTables(client, 'public');
              return measureTenantDatabase(client);
            },
            (message) => this.context.warn(message),
          ),
        );
      } catch (err) {
        this.context.warn('could not measure a tenant cluster', { tenantId: row.id, err: (err as Error).message });
      }
    }
    return measured;
  }

  close(): Promise<void> {
    return this.pools.close();
  }

  private async startIfDown(tenantId: string): Promise<boolean> {
    const started = await this.runtime.restartIfDown!(tenantId);
    if (started) this.context.warn('restarted a tenant cluster that was down', { tenantId });
    return started;
  }

  /** The tenant's instance on loopback, database `tenant`, as its own role (the password decrypted here, once per pool). */
  private async connectionOf(tenantId: string): Promise<{ url: string; generation: number }> {
    const row = await this.context.db
      .selectFrom('tenants')
      .select(['database_server', 'database_name', 'database_role', 'database_password_enc', 'placement_generation'])
      .where('id', '=', tenantId)
      .where('isolation', '=', this.model)
      .executeTakeFirst();
    if (!row) throw new Error('the tenant has no cluster');
    return { url: this.urlOf(tenantId, row), generation: row.placement_generation };
  }

  private urlOf(tenantId: string, placement: Placement): string {
    const { database_server: server, database_name: database, database_role: role, database_password_enc: passwordEnc } = placement;
    if (!server || !database || !role || !passwordEnc) throw new Error('the tenant has no cluster');
    assertTenantRoleName(role);
    if (database !== CLUSTER_TENANT_DATABASE || !LOOPBACK_SERVER.test(server)) throw new Error('the tenant cluster placement is invalid');
    const password = decryptSecret(this.context.secretKey!, passwordEnc, tenantId);
    return connectionUrl(`postgres://${server}/postgres`, database, { user: role, password });
  }

  // ---- Moves: the target is a new instance of the runtime's; the source's is stopped and removed.

  async placeMove(tenantId: string): Promise<Placement> {
    const reason = this.unavailable();
    if (reason) throw new Error(reason);
    return clusterColumnsOf(await this.runtime.placeMove(tenantId));
  }

  async provisionAt(tenantId: string, placement: Placement): Promise<Placement> {
    const reason = this.unavailable();
    if (reason) throw new Error(reason);
    return clusterColumnsOf(await this.runtime.provisionAt(tenantId, this.clusterPlacement(tenantId, placement)));
  }

  async attach(tenantId: string, placement: Placement): Promise<AttachedStore> {
    return attachTenantDatabase(this.urlOf(tenantId, placement), tenantId, { applicationName: 'tenantry-move', warn: this.context.warn });
  }

  /** As the instance's superuser, in its database `tenant`. */
  async freeze(tenantId: string, placement: Placement, timeoutMs: number): Promise<void> {
    const cluster = this.clusterPlacement(tenantId, placement);
    await this.asSuperuser(tenantId, cluster, (client) => freezeTenantTables(client, 'public', cluster.role, timeoutMs));
  }

  async thaw(tenantId: string, placement: Placement): Promise<void> {
    const cluster = this.clusterPlacement(tenantId, placement);
    await this.asSuperuser(tenantId, cluster, (client) => thawTenantTables(client, 'public', cluster.role));
  }

  /**
   * Stop every instance (primary and standbys) and remove its directory (the runtime's
   * drop; needs no key), then forget their records. The tenant's row names another model
   * by now (a source after the switch) or still the one before (a target rolled back):
   * either way every instance recorded for the tenant is the placement's.
   */
  async dropAt(tenantId: string, placement: Placement): Promise<void> {
    await this.runtime.drop(tenantId, placement.cluster_data_dir ?? null);
    await forgetInstances(this.context.db, tenantId, 'the tenant moved to another isolation model');
  }

  /**
   * A placement's parts, checked: its directory and role must be the ones the tenant id
   * gives (a primary made by a failover is `<dir>_<generation>`).
   */
  private clusterPlacement(tenantId: string, placement: Placement): ClusterPlacement {
    const cluster = clusterPlacementOf(placement);
    if (!cluster) throw new Error('the tenant has no cluster');
    const dir = path.basename(cluster.dataDir);
    const base = tenantClusterDirName(tenantId);
    if ((dir !== base && !new RegExp(`^${base}_\\d+$`).test(dir)) || cluster.role !== tenantRoleName(tenantId)) throw new Error("the placement names another tenant's cluster");
    return cluster;
  }

  private asSuperuser<T>(tenantId: string, cluster: ClusterPlacement, fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const password = decryptSecret(this.context.secretKey!, cluster.adminPasswordEnc, tenantId);
    return withClient(
      { host: '127.0.0.1', port: cluster.port, user: CLUSTER_SUPERUSER, password, database: CLUSTER_TENANT_DATABASE, connectionTimeoutMillis: 5_000, application_name: 'tenantry-move' },
      fn,
      (message) => this.context.warn(message),
    );
  }
}

/** The records of a tenant's instances go with them; a failover still open is given up. */
async function forgetInstances(db: Kysely<Database>, tenantId: string, why: string): Promise<void> {
  await db.deleteFrom('cluster_instances').where('tenant_id', '=', tenantId).execute();
  await db
    .updateTable('cluster_failovers')
    .set({ step: 'abandoned', finished_at: sql`now()`, last_error: why })
    .where('tenant_id', '=', tenantId)
    .where('step', 'not in', ['done', 'abandoned'])
    .execute();
}
