import { assertTenantSchemaName, tenantSchemaName } from '@tenantry/domain';
import { type Transaction, sql } from 'kysely';
import type pg from 'pg';
import type { Database } from '../../schema.js';
import { lockTenant } from '../../tenant-lock.js';
import { insertProvisioningTenant } from '../../tenants.js';
import {
  type AttachedStore,
  type DriverContext,
  type IsolationDriver,
  type ProvisioningTenant,
  type StoreProbe,
  type TeardownTarget,
  type TenantRef,
  storeOf,
} from '../driver.js';
import { withClient } from '../../pg-faults.js';
import type { Placement } from '../placement.js';
import { freezeTenantTables, thawTenantTables } from '../shared/tenant-tables.js';
import { probeTenantStore } from '../probe.js';
import { STORAGE_QUERY, type StorageMeasure, storageMeasure, vacuumSchemaTables } from '../shared/storage.js';
import { DATA_ROLE, dropTenantSchema, provisionTenantSchema } from './ddl.js';
import { withTenant } from './with-tenant.js';

/**
 * Schema isolation: a schema `t_<32 hex>` per tenant in the control-plane database, its
 * documents table behind forced row-level security, reached as the data role
 * (tenantry_data) with app.tenant_id and search_path set per transaction. Needs no key and
 * no other server: always available.
 */
export class SchemaDriver implements IsolationDriver {
  readonly model = 'schema';
  readonly placementColumns = ['schema_name'] as const;

  constructor(private readonly context: DriverContext) {}

  unavailable(): undefined {
    return undefined;
  }

  /**
   * One transaction under the tenant's lock (CREATE SCHEMA IF NOT EXISTS is not safe
   * against a concurrent twin): the row if missing, its placement, and the schema's DDL —
   * DDL is transactional in Postgres, so a crash leaves all of it or none.
   */
  async provision(tenant: ProvisioningTenant): Promise<void> {
    await this.context.db.transaction().execute(async (trx) => {
      await lockTenant(trx, tenant.id);
      await insertProvisioningTenant(trx, tenant);
      await this.provisionIn(trx, tenant);
    });
  }

  /** The schema lives in the control-plane database, so the saga makes it in its own transaction. */
  async provisionIn(trx: Transaction<Database>, tenant: ProvisioningTenant): Promise<void> {
    const schemaName = tenantSchemaName(tenant.id);
    await trx.updateTable('tenants').set({ schema_name: schemaName, updated_at: sql`now()` }).where('id', '=', tenant.id).execute();
    await provisionTenantSchema(trx, schemaName);
  }

  /** Transactional: a teardown rolled back leaves the schema, with its rows, in place. */
  async drop(trx: Transaction<Database>, tenant: TeardownTarget): Promise<void> {
    await dropTenantSchema(trx, tenant.row?.schema_name ?? tenantSchemaName(tenant.id));
  }

  open<T>(tenant: TenantRef, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    // Not provisioned yet (or purged): nothing to open.
    if (!tenant.schemaName) return Promise.reject(new Error('the tenant has no store'));
    return withTenant(this.context.db, { tenantId: tenant.id, schemaName: tenant.schemaName }, fn);
  }

  health(tenant: TenantRef): Promise<StoreProbe> {
    return probeTenantStore(storeOf(this), tenant);
  }

  /** One connection to the control-plane database for the whole batch (every schema lives there). */
  async measureStorage(tenants: readonly TenantRef[], vacuumFirst: ReadonlySet<string>): Promise<Map<string, StorageMeasure>> {
    const measured = new Map<string, StorageMeasure>();
    await withClient({ connectionString: this.context.controlPlaneUrl, application_name: 'tenantry-storage-sampler' }, async (client) => {
      for (const tenant of tenants) {
        if (!tenant.schemaName) continue;
        assertTenantSchemaName(tenant.schemaName);
        if (vacuumFirst.has(tenant.id)) await vacuumSchemaTables(client, tenant.schemaName);
        const { rows } = await client.query<{ total: string; reusable: string }>(STORAGE_QUERY, [tenant.schemaName, false]);
        measured.set(tenant.id, storageMeasure(rows[0]));
      }
    }, (message) => this.context.warn(message));
    return measured;
  }

  async close(): Promise<void> {}

  // ---- Moves: the target schema is t_<id>, whatever the source; DDL in the control plane.

  async placeMove(tenantId: string): Promise<Placement> {
    return { schema_name: tenantSchemaName(tenantId) };
  }

  /** The schema, its table, policy and grants, in one transaction (as `provision`), the tenant row untouched. */
  async provisionAt(tenantId: string, placement: Placement): Promise<Placement> {
    const schemaName = this.schemaOf(tenantId, placement);
    await this.context.db.transaction().execute(async (trx) => {
      await lockTenant(trx, tenantId);
      await provisionTenantSchema(trx, schemaName);
    });
    return { schema_name: schemaName };
  }

  async attach(tenantId: string, placement: Placement): Promise<AttachedStore> {
    const schemaName = this.schemaOf(tenantId, placement);
    return { run: (fn) => withTenant(this.context.db, { tenantId, schemaName }, fn), close: async () => undefined };
  }

  /** On the control plane, as the schema's owner; the shared data role loses writes on this tenant's tables only. */
  async freeze(tenantId: string, placement: Placement, timeoutMs: number): Promise<void> {
    const schemaName = this.schemaOf(tenantId, placement);
    await this.asOwner((client) => freezeTenantTables(client, schemaName, DATA_ROLE, timeoutMs));
  }

  async thaw(tenantId: string, placement: Placement): Promise<void> {
    const schemaName = this.schemaOf(tenantId, placement);
    await this.asOwner((client) => thawTenantTables(client, schemaName, DATA_ROLE));
  }

  async dropAt(tenantId: string, placement: Placement): Promise<void> {
    const schemaName = this.schemaOf(tenantId, placement);
    await this.context.db.transaction().execute((trx) => dropTenantSchema(trx, schemaName));
  }

  /** The placement's schema, which must be the one the tenant id names (nothing else is ever dropped or frozen). */
  private schemaOf(tenantId: string, placement: Placement): string {
    const schemaName = placement.schema_name ?? tenantSchemaName(tenantId);
    assertTenantSchemaName(schemaName);
    if (schemaName !== tenantSchemaName(tenantId)) throw new Error('the placement names another tenant\'s schema');
    return schemaName;
  }

  private asOwner<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    return withClient({ connectionString: this.context.controlPlaneUrl, application_name: 'tenantry-move' }, fn, (message) => this.context.warn(message));
  }
}
