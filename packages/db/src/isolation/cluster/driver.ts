import { assertTenantRoleName } from '@tenantry/domain';
import { type Transaction, sql } from 'kysely';
import type { Database } from '../../schema.js';
import { type DriverContext, type IsolationDriver, type ProvisioningTenant, type StorageSupervision, type StoreProbe, type TeardownTarget, type TenantRef, UnsupportedIsolationError, storeOf } from '../driver.js';
import { withClient } from '../../pg-faults.js';
import { probeTenantStore } from '../probe.js';
import { decryptSecret } from '../shared/secrets.js';
import { type StorageMeasure, measureTenantDatabase, vacuumSchemaTables } from '../shared/storage.js';
import { connectionUrl } from '../shared/tenant-database.js';
import { TenantPools } from '../shared/tenant-pools.js';
import { KubernetesClusters } from './kubernetes.js';
import { CLUSTER_SUPERUSER, CLUSTER_TENANT_DATABASE, type LocalClusterOptions, LocalClusterProvisioner } from './local.js';
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
  readonly placementColumns = [
    'database_server',
    'database_name',
    'database_role',
    'database_password_enc',
    'cluster_data_dir',
    'cluster_port',
    'cluster_admin_password_enc',
    'cluster_replication_password_enc',
  ] as const;
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
    await trx.deleteFrom('cluster_instances').where('tenant_id', '=', tenant.id).execute();
    await trx
      .updateTable('cluster_failovers')
      .set({ step: 'abandoned', finished_at: sql`now()`, last_error: 'the tenant was removed' })
      .where('tenant_id', '=', tenant.id)
      .where('step', 'not in', ['done', 'abandoned'])
      .execute();
  }

  open<T>(tenant: TenantRef, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    if (!this.context.secretKey) return Promise.reject(new UnsupportedIsolationError('no store driver for cluster isolation (TENANT_SECRET_KEY is not set)'));
    return this.pools.run(tenant.id, fn);
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
  private async connectionOf(tenantId: string): Promise<string> {
    const row = await this.context.db
      .selectFrom('tenants')
      .select(['database_server', 'database_name', 'database_role', 'database_password_enc'])
      .where('id', '=', tenantId)
      .where('isolation', '=', this.model)
      .executeTakeFirst();
    if (!row || !row.database_server || !row.database_name || !row.database_role || !row.database_password_enc) throw new Error('the tenant has no cluster');
    assertTenantRoleName(row.database_role);
    if (row.database_name !== CLUSTER_TENANT_DATABASE || !LOOPBACK_SERVER.test(row.database_server)) throw new Error('the tenant cluster placement is invalid');
    const password = decryptSecret(this.context.secretKey!, row.database_password_enc, tenantId);
    return connectionUrl(`postgres://${row.database_server}/postgres`, row.database_name, { user: row.database_role, password });
  }
}
