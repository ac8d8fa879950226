import type { Isolation } from '@tenantry/domain';
import type { Transaction } from 'kysely';
import type { Db } from '../client.js';
import type { Database } from '../schema.js';
import { withTenant } from '../with-tenant.js';

export interface TenantRef {
  id: string;
  isolation: Isolation;
  schemaName: string | null;
}

/**
 * Where a tenant's data lives, behind one interface: `run` gives `fn` a transaction that
 * sees that tenant's tables — and only its rows — whatever the isolation model.
 */
export interface TenantStore {
  run<T>(tenant: TenantRef, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T>;
}

export class UnsupportedIsolationError extends Error {}

/** Schema isolation: the tenant's schema in the shared database, behind row-level security. */
export class SchemaTenantStore implements TenantStore {
  constructor(private readonly db: Db) {}

  run<T>(tenant: TenantRef, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    if (tenant.isolation !== 'schema' || !tenant.schemaName) {
      throw new UnsupportedIsolationError(`no store driver for ${tenant.isolation} isolation`);
    }
    return withTenant(this.db, { tenantId: tenant.id, schemaName: tenant.schemaName }, fn);
  }
}

/** Picks the driver by the tenant's isolation model; a model with no driver is refused. */
export class RoutingTenantStore implements TenantStore {
  constructor(private readonly drivers: Partial<Record<Isolation, TenantStore>>) {}

  run<T>(tenant: TenantRef, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    const driver = this.drivers[tenant.isolation];
    if (!driver) throw new UnsupportedIsolationError(`no store driver for ${tenant.isolation} isolation`);
    return driver.run(tenant, fn);
  }
}
