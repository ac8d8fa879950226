import { type Transaction, sql } from 'kysely';
import type { Db } from './client.js';
import type { Database } from './schema.js';
import { tenantContextStatement } from './tenant-context.js';

/**
 * File metadata and the fileStorageBytes counters (migration 2026-12-01T1500_files_realtime).
 *
 * Quota with no overshoot: an upload reserves its bytes before a single one is stored, in
 * one conditional UPDATE of the tenant's counter row — the row lock serialises concurrent
 * reservations, so committed plus reserved bytes can never pass the limit, whatever the
 * number of uploads in flight. Committing converts the reservation into committed bytes,
 * aborting releases it, and the worker releases reservations nobody finished.
 *
 * Tenant requests run as the data role with app.tenant_id set (row-level security), like
 * tenant documents: another tenant's key is simply absent. The worker's functions at the
 * bottom work across tenants as the control plane.
 */

export interface FileRow {
  key: string;
  object: string;
  size: number;
  contentType: string;
  sha256: string;
  createdAt: Date;
}

interface RawFileRow {
  key: string;
  object: string;
  size: string;
  content_type: string;
  sha256: string;
  created_at: Date;
}

const fileRow = (r: RawFileRow): FileRow => ({ key: r.key, object: r.object, size: Number(r.size), contentType: r.content_type, sha256: r.sha256, createdAt: r.created_at });

/** Run `fn` as the data role in `tenantId`'s context: it sees that tenant's file rows and no one else's. */
export function withTenantFiles<T>(db: Db, tenantId: string, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    await tenantContextStatement(tenantId, { asDataRole: true }).execute(trx);
    return fn(trx);
  });
}

export type Reservation = { ok: true } | { ok: false; used: number };

/**
 * Reserve `bytes` more for an upload (`first`: the upload starts, and its row is written
 * with its expiry), or refuse when the tenant's committed plus reserved bytes would pass
 * `limit`. The decision is the one UPDATE below.
 */
export async function reserveFileBytes(
  db: Db,
  input: { tenantId: string; uploadId: string; key: string; bytes: number; limit: number; ttlMs: number; first: boolean },
): Promise<Reservation> {
  return withTenantFiles(db, input.tenantId, async (trx) => {
    if (input.first) await sql`insert into file_usage (tenant_id) values (${input.tenantId}) on conflict (tenant_id) do nothing`.execute(trx);
    const { rows } = await sql<{ used: string; ok: boolean }>`
      with current as (select committed_bytes + reserved_bytes as used from file_usage where tenant_id = ${input.tenantId}),
           taken as (
             update file_usage set reserved_bytes = reserved_bytes + ${input.bytes}, updated_at = now()
             where tenant_id = ${input.tenantId} and committed_bytes + reserved_bytes + ${input.bytes} <= ${input.limit}
             returning 1)
      select (select used from current)::text as used, exists (select 1 from taken) as ok`.execute(trx);
    const row = rows[0];
    if (!row?.ok) return { ok: false, used: Number(row?.used ?? 0) };
    const expires = sql`now() + make_interval(secs => ${input.ttlMs / 1000})`;
    if (input.first) {
      await sql`insert into file_uploads (id, tenant_id, key, reserved_bytes, expires_at) values (${input.uploadId}, ${input.tenantId}, ${input.key}, ${input.bytes}, ${expires})`.execute(trx);
    } else {
      const updated = await sql`update file_uploads set reserved_bytes = reserved_bytes + ${input.bytes}, expires_at = ${expires} where id = ${input.uploadId}`.execute(trx);
      // Expired and released by the worker meanwhile: nothing to add to (the UPDATE above rolls back).
      if (Number(updated.numAffectedRows ?? 0) === 0) throw new UploadExpiredError();
    }
    return { ok: true };
  });
}

/** An upload still in progress pushes its expiry out, so only one nobody is finishing expires. */
export async function touchFileUpload(db: Db, tenantId: string, uploadId: string, ttlMs: number): Promise<void> {
  await withTenantFiles(db, tenantId, (trx) => sql`update file_uploads set expires_at = now() + make_interval(secs => ${ttlMs / 1000}) where id = ${uploadId}`.execute(trx));
}

/** The upload's reservation is gone (it expired and the worker released it): its object may be too. */
export class UploadExpiredError extends Error {
  constructor() {
    super('the upload expired before it completed');
  }
}

/**
 * Commit an upload whose object is complete in the file storage: the file row points at
 * it (an overwrite retires the old object to the trash), the reservation becomes committed
 * bytes, all in one transaction. Answers the file and the object it replaced, if any.
 */
export async function commitFileUpload(
  db: Db,
  input: { tenantId: string; uploadId: string; key: string; size: number; contentType: string; sha256: string },
): Promise<{ file: FileRow; replaced: { object: string } | undefined }> {
  return withTenantFiles(db, input.tenantId, async (trx) => {
    const upload = await sql<{ reserved_bytes: string }>`delete from file_uploads where id = ${input.uploadId} returning reserved_bytes`.execute(trx);
    const reserved = upload.rows[0];
    if (!reserved) throw new UploadExpiredError();
    const previous = await sql<RawFileRow>`select key, object, size::text, content_type, sha256, created_at from tenant_files where tenant_id = ${input.tenantId} and key = ${input.key} for update`.execute(trx);
    const old = previous.rows[0];
    const { rows } = await sql<RawFileRow>`
      insert into tenant_files (tenant_id, key, object, size, content_type, sha256)
      values (${input.tenantId}, ${input.key}, ${input.uploadId}, ${input.size}, ${input.contentType}, ${input.sha256})
      on conflict (tenant_id, key) do update set object = excluded.object, size = excluded.size, content_type = excluded.content_type, sha256 = excluded.sha256, created_at = now()
      returning key, object, size::text, content_type, sha256, created_at`.execute(trx);
    await sql`
      update file_usage set
        reserved_bytes = reserved_bytes - ${reserved.reserved_bytes}::bigint,
        committed_bytes = committed_bytes + ${input.size} - ${old ? old.size : 0}::bigint,
        updated_at = now()
      where tenant_id = ${input.tenantId}`.execute(trx);
    if (old) await sql`insert into file_trash (object, tenant_id) values (${old.object}, ${input.tenantId}) on conflict do nothing`.execute(trx);
    return { file: fileRow(rows[0]!), replaced: old ? { object: old.object } : undefined };
  });
}

/** Give an unfinished upload's reservation back (it failed, or was refused mid-stream). Idempotent. */
export async function abortFileUpload(db: Db, tenantId: string, uploadId: string): Promise<void> {
  await withTenantFiles(db, tenantId, async (trx) => {
    const { rows } = await sql<{ reserved_bytes: string }>`delete from file_uploads where id = ${uploadId} returning reserved_bytes`.execute(trx);
    if (rows[0]) {
      await sql`update file_usage set reserved_bytes = reserved_bytes - ${rows[0].reserved_bytes}::bigint, updated_at = now() where tenant_id = ${tenantId}`.execute(trx);
    }
  });
}

export async function getFile(db: Db, tenantId: string, key: string): Promise<FileRow | undefined> {
  const { rows } = await withTenantFiles(db, tenantId, (trx) =>
    sql<RawFileRow>`select key, object, size::text, content_type, sha256, created_at from tenant_files where tenant_id = ${tenantId} and key = ${key}`.execute(trx),
  );
  return rows[0] ? fileRow(rows[0]) : undefined;
}

/** Keys in byte order (collation "C"), after `after`, starting with `prefix`: keyset pages over the primary key. */
export async function listFiles(db: Db, tenantId: string, input: { prefix: string; after: string | undefined; limit: number }): Promise<FileRow[]> {
  const { rows } = await withTenantFiles(db, tenantId, (trx) =>
    sql<RawFileRow>`
      select key, object, size::text, content_type, sha256, created_at from tenant_files
      where tenant_id = ${tenantId}
        and left(key, length(${input.prefix})) = ${input.prefix}
        ${input.after === undefined ? sql`` : sql`and key > ${input.after}`}
      order by key
      limit ${input.limit}`.execute(trx),
  );
  return rows.map(fileRow);
}

/** Delete a file: its row goes, its bytes leave the counter, its object goes to the trash. */
export async function deleteFile(db: Db, tenantId: string, key: string): Promise<FileRow | undefined> {
  return withTenantFiles(db, tenantId, async (trx) => {
    const { rows } = await sql<RawFileRow>`delete from tenant_files where tenant_id = ${tenantId} and key = ${key} returning key, object, size::text, content_type, sha256, created_at`.execute(trx);
    const row = rows[0];
    if (!row) return undefined;
    await sql`update file_usage set committed_bytes = committed_bytes - ${row.size}::bigint, updated_at = now() where tenant_id = ${tenantId}`.execute(trx);
    await sql`insert into file_trash (object, tenant_id) values (${row.object}, ${tenantId}) on conflict do nothing`.execute(trx);
    return fileRow(row);
  });
}

/** Objects removed from the storage: out of the trash. */
export async function forgetTrashedObjects(db: Db, tenantId: string, objects: readonly string[]): Promise<void> {
  if (objects.length === 0) return;
  await withTenantFiles(db, tenantId, (trx) => sql`delete from file_trash where object = any(${objects}::uuid[])`.execute(trx));
}

/** The tenant's file counters: committed and reserved bytes (0 before its first upload). */
export async function fileUsageOf(db: Db, tenantId: string): Promise<{ committed: number; reserved: number }> {
  const row = await db.selectFrom('file_usage').select(['committed_bytes', 'reserved_bytes']).where('tenant_id', '=', tenantId).executeTakeFirst();
  return { committed: Number(row?.committed_bytes ?? 0), reserved: Number(row?.reserved_bytes ?? 0) };
}

// ---- the control plane's side (worker) ------------------------------------------------

/**
 * Release uploads whose reservation expired (nobody is finishing them: their api was
 * killed, or lost Postgres for longer than the TTL), at most `limit`: each one's bytes go
 * back to its tenant's counter, and its object (partial, or complete but never committed)
 * to the trash, in one transaction per batch. Answers how many were released.
 */
export async function releaseExpiredUploads(db: Db, limit: number): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const { rows } = await sql<{ id: string; tenant_id: string; reserved_bytes: string }>`
      delete from file_uploads where id in (
        select id from file_uploads where expires_at < now() order by expires_at limit ${limit} for update skip locked)
      returning id, tenant_id, reserved_bytes`.execute(trx);
    if (rows.length === 0) return 0;
    await sql`
      update file_usage u set reserved_bytes = u.reserved_bytes - r.bytes, updated_at = now()
      from (select tenant_id, sum(b)::bigint as bytes from unnest(${rows.map((r) => r.tenant_id)}::uuid[], ${rows.map((r) => r.reserved_bytes)}::bigint[]) as x(tenant_id, b) group by tenant_id) r
      where u.tenant_id = r.tenant_id`.execute(trx);
    await sql`
      insert into file_trash (object, tenant_id)
      select * from unnest(${rows.map((r) => r.id)}::uuid[], ${rows.map((r) => r.tenant_id)}::uuid[])
      on conflict do nothing`.execute(trx);
    return rows.length;
  });
}

/** Trashed objects to remove from the storage, oldest first (older than `minAgeMs`: a request may still be removing its own). */
export async function trashedObjects(db: Db, limit: number, minAgeMs: number): Promise<Array<{ tenantId: string; object: string }>> {
  const { rows } = await sql<{ tenant_id: string; object: string }>`
    select tenant_id, object from file_trash where since < now() - make_interval(secs => ${minAgeMs / 1000}) order by since limit ${limit}`.execute(db);
  return rows.map((r) => ({ tenantId: r.tenant_id, object: r.object }));
}

export async function removeTrashEntries(db: Db, objects: readonly string[]): Promise<void> {
  if (objects.length > 0) await sql`delete from file_trash where object = any(${objects}::uuid[])`.execute(db);
}

/** Every file row, upload, trash entry and counter of a tenant (its purge: the storage was emptied first). */
export async function removeTenantFileRows(trx: Transaction<Database>, tenantId: string): Promise<void> {
  for (const table of ['tenant_files', 'file_uploads', 'file_trash', 'file_usage'] as const) await trx.deleteFrom(table).where('tenant_id', '=', tenantId).execute();
}

/** Committed file bytes of the given tenants (those with no file yet are absent). */
export async function committedFileBytes(db: Db, tenantIds: readonly string[]): Promise<Map<string, number>> {
  if (tenantIds.length === 0) return new Map();
  const rows = await db.selectFrom('file_usage').select(['tenant_id', 'committed_bytes']).where('tenant_id', 'in', tenantIds).execute();
  return new Map(rows.map((r) => [r.tenant_id, Number(r.committed_bytes)]));
}
