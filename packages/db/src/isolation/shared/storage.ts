import type pg from 'pg';

/**
 * What storageBytes measures, the same way for every model: the tenant's space on disk
 * (its schema's relations, or its whole database) minus the space Postgres has marked
 * reusable in its tables' free space maps. Both come from catalogs and the free space map
 * — never from reading rows — so the cost does not grow with the row count. Subtracting
 * reusable space is what lets a tenant that deleted rows write again: Postgres seldom
 * gives a table's pages back to the OS, but once (auto)vacuum has marked them free, new
 * rows go there and the tenant's footprint does not grow.
 *
 * `$1` is the schema holding the tenant's tables; `$2` true measures the whole current
 * database (database and cluster tenants), false the schema's relations (schema tenants).
 * Needs the pg_freespacemap extension in the database it runs in.
 */
export const STORAGE_QUERY = `
  with tables as (
    select c.oid, c.reltoastrelid
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = $1 and c.relkind in ('r', 'm')
  ), heaps as (
    select oid from tables union all select reltoastrelid from tables where reltoastrelid <> 0
  ), rels as (
    select oid from heaps union all select i.indexrelid from pg_index i where i.indrelid in (select oid from heaps)
  )
  select (case when $2 then pg_database_size(current_database()) else (select coalesce(sum(pg_total_relation_size(oid)), 0) from tables) end)::text as total,
         (select coalesce(sum(f.avail), 0) from rels r cross join lateral pg_freespace(r.oid::regclass) f)::text as reusable`;

export interface StorageMeasure {
  /** On disk (the schema's relations, or the database). */
  totalBytes: number;
  /** Marked reusable in the free space maps. */
  reusableBytes: number;
  /** What the meter records and the quota compares: total − reusable. */
  bytes: number;
}

export function storageMeasure(row: { total: string; reusable: string } | undefined): StorageMeasure {
  const totalBytes = Number(row?.total ?? 0);
  const reusableBytes = Math.min(totalBytes, Number(row?.reusable ?? 0));
  return { totalBytes, reusableBytes, bytes: totalBytes - reusableBytes };
}

/** Measure inside a tenant database, as its admin (installing pg_freespacemap there on first use). */
export async function measureTenantDatabase(client: pg.Client): Promise<StorageMeasure> {
  await client.query('create extension if not exists pg_freespacemap');
  const { rows } = await client.query<{ total: string; reusable: string }>(STORAGE_QUERY, ['public', true]);
  return storageMeasure(rows[0]);
}

/**
 * Plain VACUUM of every table in `schema` (no exclusive lock: reads and writes go on), so
 * space freed by deletes is marked reusable now rather than whenever autovacuum comes by.
 * Run for tenants at or over their storage limit.
 */
export async function vacuumSchemaTables(client: Pick<pg.Client, 'query' | 'escapeIdentifier'>, schema: string): Promise<void> {
  const { rows } = await client.query<{ relname: string }>(
    `select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relkind in ('r', 'm') order by 1`,
    [schema],
  );
  for (const { relname } of rows) await client.query(`vacuum ${client.escapeIdentifier(schema)}.${client.escapeIdentifier(relname)}`);
}
