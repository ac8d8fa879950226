import { assertTenantSchemaName } from '@tenantry/domain';
import { type Kysely, type Transaction, sql } from 'kysely';
import type { Db } from '../../client.js';
import type { Database } from '../../schema.js';

/** The role tenant data is accessed as (created by the foundation migration). */
export const DATA_ROLE = 'tenantry_data';

/**
 * Schema isolation: one Postgres schema per tenant in the shared database, and on top of
 * that row-level security keyed on `app.tenant_id`, so that even a query that names
 * another tenant's schema sees none of its rows.
 *
 * Every statement is idempotent (IF NOT EXISTS / DROP … IF EXISTS), and the whole
 * provision runs in one transaction — DDL is transactional in Postgres — so a crash
 * leaves either the complete schema or none of it.
 */
export async function provisionTenantSchema(trx: Transaction<Database>, schemaName: string): Promise<void> {
  assertTenantSchemaName(schemaName);
  // Identifiers cannot be bind parameters. schemaName matched ^t_[0-9a-f]{32}$ above and
  // is still quoted by sql.id, so no input can reach these statements.
  const schema = sql.id(schemaName);
  const documents = sql.id(schemaName, 'documents');
  const tenantOfRequest = sql`nullif(current_setting('app.tenant_id', true), '')::uuid`;

  const dataRole = sql.id(DATA_ROLE);
  const statements = [
    sql`create schema if not exists ${schema}`,
    sql`revoke all on schema ${schema} from public`,
    sql`grant usage on schema ${schema} to ${dataRole}`,
    sql`create table if not exists ${documents} (
      id uuid primary key default gen_random_uuid(),
      tenant_id uuid not null default ${tenantOfRequest},
      collection text not null,
      data jsonb not null,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )`,
    sql`create index if not exists documents_collection_idx on ${documents} (tenant_id, collection, id)`,
    sql`alter table ${documents} enable row level security`,
    // FORCE: without it the table's owner (the control-plane role) would bypass the policy.
    sql`alter table ${documents} force row level security`,
    sql`drop policy if exists tenant_isolation on ${documents}`,
    // No "IS NULL OR" escape hatch: no tenant context makes the comparison NULL, so zero rows.
    sql`create policy tenant_isolation on ${documents}
      using (tenant_id = ${tenantOfRequest})
      with check (tenant_id = ${tenantOfRequest})`,
    // Deliberately not TRUNCATE (it ignores RLS) and nothing on the schema itself.
    sql`grant select, insert, update, delete on ${documents} to ${dataRole}`,
  ];
  // One round trip: with no bind parameters the statements go as one simple-protocol query,
  // still inside the caller's transaction.
  await sql.join(statements, sql`;\n`).execute(trx);
}

export async function dropTenantSchema(db: Kysely<Database>, schemaName: string): Promise<void> {
  assertTenantSchemaName(schemaName);
  await sql`drop schema if exists ${sql.id(schemaName)} cascade`.execute(db);
}

export async function tenantSchemaExists(db: Db, schemaName: string): Promise<boolean> {
  const row = await sql<{ exists: boolean }>`
    select exists (select 1 from pg_namespace where nspname = ${schemaName}) as exists`.execute(db);
  return row.rows[0]?.exists ?? false;
}
