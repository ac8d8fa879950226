import { type Kysely, sql } from 'kysely';

/**
 * Operator sessions of the dashboard: a platform key exchanged for a short-lived cookie.
 * Only the SHA-256 of the session token is kept. `key_hash` is the SHA-256 of the platform
 * key the session came from (the same value platform_keys keeps), so a session ends the
 * moment its key is revoked or leaves PLATFORM_API_KEY.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table operator_sessions (
      id uuid primary key default gen_random_uuid(),
      token_hash bytea not null,
      key_id text not null check (length(key_id) between 1 and 64),
      key_hash bytea not null,
      created_at timestamptz not null default now(),
      expires_at timestamptz not null,
      constraint operator_sessions_token_hash_key unique (token_hash)
    )`.execute(db);
  await sql`create index operator_sessions_expires_idx on operator_sessions (expires_at)`.execute(db);
  await sql`create index operator_sessions_key_hash_idx on operator_sessions (key_hash)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('operator_sessions').ifExists().execute();
}
