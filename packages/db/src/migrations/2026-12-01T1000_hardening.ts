import { type Kysely, sql } from 'kysely';

/**
 * Least privilege, from a review of what the data role could do:
 * - tenantry_data (the role tenant requests run as) could INSERT audit entries and UPDATE
 *   the chain head, so a forged entry, correctly chained, was indistinguishable to
 *   audit:verify. Only the control plane appends to the audit log; nothing in a tenant
 *   transaction ever did. The data role now has no privilege on either table.
 * - The audit functions run with the caller's search_path; pin it, so an object named like
 *   one they use, in a schema earlier on someone's path, cannot stand in for it.
 * - Foreign keys without an index make every delete of a tenant or user scan the table.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`revoke all on audit_log, audit_chain_head from tenantry_data`.execute(db);
  await sql`revoke all on audit_log, audit_chain_head from public`.execute(db);
  for (const fn of ['tenantry_audit_chain()', 'tenantry_audit_log_is_append_only()', 'tenantry_audit_digest(bytea, bigint, timestamptz, text, text, uuid, jsonb)']) {
    await sql`alter function ${sql.raw(fn)} set search_path = pg_catalog, public`.execute(db);
  }
  await sql`create index if not exists sessions_tenant_idx on sessions (tenant_id)`.execute(db);
  await sql`create index if not exists sessions_user_idx on sessions (user_id)`.execute(db);
  await sql`create index if not exists tenant_api_keys_created_by_idx on tenant_api_keys (created_by)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index if exists tenant_api_keys_created_by_idx`.execute(db);
  await sql`drop index if exists sessions_user_idx`.execute(db);
  await sql`drop index if exists sessions_tenant_idx`.execute(db);
  for (const fn of ['tenantry_audit_chain()', 'tenantry_audit_log_is_append_only()', 'tenantry_audit_digest(bytea, bigint, timestamptz, text, text, uuid, jsonb)']) {
    await sql`alter function ${sql.raw(fn)} reset search_path`.execute(db);
  }
  await sql`grant insert on audit_log to tenantry_data`.execute(db);
  await sql`grant select, update on audit_chain_head to tenantry_data`.execute(db);
}
