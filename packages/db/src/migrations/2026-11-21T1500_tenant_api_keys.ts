import { type Kysely, sql } from 'kysely';

/** API keys a tenant makes for its own programs: hashed, scoped, revocable. */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table tenant_api_keys (
      id uuid primary key default gen_random_uuid(),
      tenant_id uuid not null references tenants (id) on delete cascade,
      name text not null check (length(name) between 1 and 100),
      scope text not null check (scope in ('read', 'write')),
      key_hash bytea not null,
      created_by uuid references users (id) on delete set null,
      created_at timestamptz not null default now(),
      revoked_at timestamptz,
      constraint tenant_api_keys_key_hash_key unique (key_hash)
    )`.execute(db);
  await sql`create index tenant_api_keys_tenant_idx on tenant_api_keys (tenant_id, created_at)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('tenant_api_keys').ifExists().execute();
}
