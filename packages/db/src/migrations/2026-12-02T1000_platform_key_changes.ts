import { type Kysely, sql } from 'kysely';

/**
 * Postgres announces every change to the stored platform keys:
 * `NOTIFY tenantry_platform_keys, 'changed'`, delivered to every listener when (and only
 * if) the transaction commits. The api keeps the active keys' hashes in memory and reads
 * them again on the announcement (apps/api/src/services/platform-keys.ts), so a platform
 * call needs no key query, and a revocation made anywhere (the platform-key command, an
 * operator's SQL) is honoured by every instance within the notification's delivery.
 *
 * A statement-level trigger, as in 2026-12-01T1800_tenant_changes: no code path can forget
 * to announce, and keys change a few times a year, so the NOTIFY costs nothing that matters.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create function tenantry_announce_platform_keys_change() returns trigger
    language plpgsql
    set search_path = pg_catalog, public
    as $$
    begin
      perform pg_notify('tenantry_platform_keys', 'changed');
      return null;
    end
    $$`.execute(db);
  await sql`
    create trigger platform_keys_announce_change
    after insert or update or delete or truncate on platform_keys
    for each statement
    execute function tenantry_announce_platform_keys_change()`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop trigger if exists platform_keys_announce_change on platform_keys`.execute(db);
  await sql`drop function if exists tenantry_announce_platform_keys_change()`.execute(db);
}
