import { type Kysely, sql } from 'kysely';

/**
 * Files (issue 12). File metadata lives in the control plane, not in each tenant's store:
 * a file's bytes are in the file storage (a directory or a bucket), outside every tenant
 * database anyway, and its metadata must commit in ONE transaction with the counter the
 * quota is held by (`file_usage`) and the reservation it converts — across three
 * isolation models that is only possible here. A tier move (database ↔ cluster) then
 * leaves files where they are, as it should.
 *
 * - tenant_files: one row per (tenant, key), naming the immutable object that holds the
 *   current content. An overwrite commits a new object and retires the old one.
 * - file_usage: the maintained counters per tenant: bytes of committed files, bytes
 *   reserved by uploads in flight. A reservation is one conditional UPDATE of this row.
 * - file_uploads: each upload in flight, its object and the bytes it reserved; one whose
 *   `expires_at` passed (nobody finished it: the api was killed) is released by the worker,
 *   which removes its partial object.
 * - file_trash: objects no file points at any more (overwritten, deleted), to remove from
 *   the storage; written in the transaction that retires them, removed once they are gone.
 *
 * Tenant requests reach these tables as the data role with app.tenant_id set, under the
 * same policy as tenant documents; RLS is enabled but not forced, because the control plane
 * (the owner: the purge, the sweeper, the usage sampler) works across tenants by design.
 */
const TENANT_OF_REQUEST = sql`nullif(current_setting('app.tenant_id', true), '')::uuid`;

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table tenant_files (
      tenant_id uuid not null default ${TENANT_OF_REQUEST} references tenants (id) on delete cascade,
      key text collate "C" not null check (length(key) between 1 and 512),
      object uuid not null,
      size bigint not null check (size >= 0),
      content_type text not null,
      sha256 text not null check (sha256 ~ '^[0-9a-f]{64}$'),
      created_at timestamptz not null default now(),
      primary key (tenant_id, key)
    )`.execute(db);

  await sql`
    create table file_usage (
      tenant_id uuid primary key default ${TENANT_OF_REQUEST} references tenants (id) on delete cascade,
      committed_bytes bigint not null default 0 check (committed_bytes >= 0),
      reserved_bytes bigint not null default 0 check (reserved_bytes >= 0),
      updated_at timestamptz not null default now()
    )`.execute(db);

  await sql`
    create table file_uploads (
      id uuid primary key,
      tenant_id uuid not null default ${TENANT_OF_REQUEST} references tenants (id) on delete cascade,
      key text collate "C" not null,
      reserved_bytes bigint not null check (reserved_bytes >= 0),
      started_at timestamptz not null default now(),
      expires_at timestamptz not null
    )`.execute(db);
  await sql`create index file_uploads_expiry_idx on file_uploads (expires_at)`.execute(db);
  await sql`create index file_uploads_tenant_idx on file_uploads (tenant_id)`.execute(db);

  await sql`
    create table file_trash (
      object uuid primary key,
      tenant_id uuid not null default ${TENANT_OF_REQUEST} references tenants (id) on delete cascade,
      since timestamptz not null default now()
    )`.execute(db);
  await sql`create index file_trash_tenant_idx on file_trash (tenant_id)`.execute(db);

  for (const table of ['tenant_files', 'file_usage', 'file_uploads', 'file_trash']) {
    const t = sql.id(table);
    await sql`alter table ${t} enable row level security`.execute(db);
    await sql`create policy tenant_isolation on ${t} using (tenant_id = ${TENANT_OF_REQUEST}) with check (tenant_id = ${TENANT_OF_REQUEST})`.execute(db);
    // Never TRUNCATE (it ignores RLS).
    await sql`grant select, insert, update, delete on ${t} to tenantry_data`.execute(db);
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['file_trash', 'file_uploads', 'file_usage', 'tenant_files']) await db.schema.dropTable(table).ifExists().execute();
}
