import { assertTenantSchemaName } from '@tenantry/domain';
import { type Transaction, sql } from 'kysely';
import type { Db } from '../../client.js';
import type { Database } from '../../schema.js';
import { DATA_ROLE } from './ddl.js';

export interface TenantContext {
  tenantId: string;
  schemaName: string;
}

/**
 * Run `fn` in a transaction that can see one tenant's rows and nothing else:
 * - SET LOCAL ROLE to the data role (not owner, not superuser, no BYPASSRLS), so RLS applies;
 * - app.tenant_id and search_path set with set_config(…, true): transaction-local, so they
 *   vanish at commit and a pooled connection never carries one tenant's context into the
 *   next request (pg-pool does not reset session state).
 */
export async function withTenant<T>(db: Db, tenant: TenantContext, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  assertTenantSchemaName(tenant.schemaName);
  return db.transaction().execute(async (trx) => {
    // One statement (one round trip on every tenant request): set_config(…, true) is SET
    // LOCAL, so the tenant, the schema and the role all end with the transaction.
    await sql`select set_config('app.tenant_id', ${tenant.tenantId}, true), set_config('search_path', ${`"${tenant.schemaName}"`}, true), set_config('role', ${DATA_ROLE}, true)`.execute(trx);
    return fn(trx);
  });
}
