import type { Transaction } from 'kysely';
import type { Db } from '../../client.js';
import type { Database } from '../../schema.js';
import { tenantContextStatement } from '../../tenant-context.js';

export interface TenantContext {
  tenantId: string;
  schemaName: string;
}

/**
 * Run `fn` in a transaction that can see one tenant's rows and nothing else: the data
 * role (not owner, not superuser, no BYPASSRLS), so RLS applies, with app.tenant_id and
 * the tenant's schema as search_path, all transaction-local (tenantContextStatement).
 * BEGIN and that statement are one round trip (LazyBeginPostgresDialect).
 */
export async function withTenant<T>(db: Db, tenant: TenantContext, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  const context = tenantContextStatement(tenant.tenantId, { schemaName: tenant.schemaName, asDataRole: true });
  return db.transaction().execute(async (trx) => {
    await context.execute(trx);
    return fn(trx);
  });
}
