import { type Kysely, sql } from 'kysely';

/**
 * The admin API: lifecycle columns, a stable sort key and search indexes on tenants, the
 * platform's default tenant, platform keys, and tenants created by operators (who may
 * leave the owner without a password).
 */
export async function up(db: Kysely<any>): Promise<void> {
  // Trigram indexes make substring search (ILIKE '%acme%') fast; pg_trgm is a trusted
  // extension, so a database owner may create it.
  await sql`create extension if not exists pg_trgm`.execute(db);

  await sql`
    alter table tenants
      add column seq bigint generated always as identity,
      add column is_default boolean not null default false,
      add column status_reason text,
      add column status_before_deletion text check (status_before_deletion in ('active', 'suspended')),
      add column delete_after timestamptz,
      add column deleted_at timestamptz`.execute(db);
  // Keyset pagination walks seq: unique, increasing, never reused, so a page boundary is
  // stable while tenants are being created.
  await sql`alter table tenants add constraint tenants_seq_key unique (seq)`.execute(db);
  await sql`create unique index tenants_single_default on tenants (is_default) where is_default`.execute(db);
  await sql`create index tenants_name_trgm on tenants using gin (lower(name) gin_trgm_ops)`.execute(db);
  await sql`create index tenants_slug_trgm on tenants using gin (slug gin_trgm_ops)`.execute(db);
  await sql`create index tenants_status_seq on tenants (status, seq)`.execute(db);
  await sql`create index tenants_plan_seq on tenants (plan, seq)`.execute(db);
  await sql`create index tenants_purge_due on tenants (delete_after) where status = 'pending_deletion'`.execute(db);

  // The operator's own tenant. It has no tenant schema of its own (nothing is provisioned
  // for it) and is protected from suspension and deletion.
  await sql`
    insert into tenants (id, slug, name, status, plan, isolation, schema_name, is_default)
    values (gen_random_uuid(), 'default', 'Default', 'active', 'enterprise', 'schema', null, true)`.execute(db);

  // Operators may create a tenant whose owner has no password yet (cannot log in).
  await sql`alter table users alter column password_hash drop not null`.execute(db);
  await sql`
    alter table signups
      add column source text not null default 'signup' check (source in ('signup', 'platform')),
      add column plan text not null default 'trial'`.execute(db);

  await sql`
    create table platform_keys (
      id uuid primary key default gen_random_uuid(),
      name text not null,
      key_hash bytea not null,
      created_at timestamptz not null default now(),
      revoked_at timestamptz,
      constraint platform_keys_key_hash_key unique (key_hash)
    )`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('platform_keys').ifExists().execute();
  await sql`alter table signups drop column source, drop column plan`.execute(db);
  await sql`delete from tenants where is_default`.execute(db);
  for (const index of ['tenants_purge_due', 'tenants_plan_seq', 'tenants_status_seq', 'tenants_slug_trgm', 'tenants_name_trgm', 'tenants_single_default']) {
    await sql`drop index if exists ${sql.id(index)}`.execute(db);
  }
  await sql`
    alter table tenants
      drop column seq, drop column is_default, drop column status_reason,
      drop column status_before_deletion, drop column delete_after, drop column deleted_at`.execute(db);
}
