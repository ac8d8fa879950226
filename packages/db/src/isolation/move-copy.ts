import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { TableVerification } from '../schema.js';
import type { AttachedStore } from './driver.js';
import { TENANT_TABLES, type TenantTable } from './shared/tenant-tables.js';

/**
 * The copy and the verification of a move, the same for every pair of models: both sides
 * are AttachedStores, i.e. transactions as the tenant's own role with its RLS context, so
 * a move reads and writes exactly what the tenant's requests could, and nothing needs
 * superuser rights, replication slots or server settings.
 *
 * Copy is a diff, not a dump: the source's rows are walked in key order in batches, each
 * batch compared by (key, md5 of the row) with the same key range of the target, and only
 * rows missing or different are fetched and upserted, rows the source no longer has are
 * deleted. The first pass copies everything; a pass while the tenant keeps writing catches
 * up with what changed meanwhile (its own snapshot per batch, converging); the pass after
 * the source is frozen makes the target exact. It is stateless, so a worker that dies
 * mid-copy loses nothing: the next pass diffs again.
 *
 * Why not logical replication: it needs wal_level=logical on the servers tenants share
 * (a restart of every one of them), a role with REPLICATION reachable from each tenant's
 * target (a tenant cluster subscribing to the shared server breaks the "tenant roles
 * cannot reach the control plane" boundary), and a slot per move that retains WAL for as
 * long as a dead worker leaves it behind. The diff costs a read of the tenant's keys and
 * hashes per pass — linear in its rows, measured in test/bench/moves.ts.
 */

export interface SyncResult {
  /** Rows inserted or updated in the target. */
  upserted: number;
  /** Rows deleted from the target (gone from the source). */
  deleted: number;
  /** Rows the source had, over all tables. */
  sourceRows: number;
}

/** Changed rows are fetched and written this many at a time: documents can be large (DOCUMENT_MAX_BYTES). */
const ROW_CHUNK = 200;

const ident = (name: string) => sql.id(name);

/** The SQL type of the table's key (from TENANT_TABLES, never from input). */
function keyType(table: TenantTable) {
  const column = table.columns.find((c) => c.name === table.key);
  if (!column) throw new Error(`${table.name}: its key ${table.key} is not among its columns`);
  return sql.raw(column.type);
}

/**
 * A column as text that is the same whatever the session's settings (TimeZone, DateStyle):
 * timestamps in UTC with microseconds, everything else in its canonical text form. Both
 * sides hash and copy these, so no value goes through a JS number or Date.
 */
function textOf(column: { name: string; type: string }) {
  return column.type === 'timestamptz'
    ? sql`to_char(${ident(column.name)} at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'`
    : sql`${ident(column.name)}::text`;
}

/** md5 of the row's columns in order, as text (what a diff and a checksum compare, with the key). */
function rowHash(table: TenantTable) {
  return sql`md5(row(${sql.join(table.columns.map(textOf))})::text)`;
}

interface KeyHash {
  key: string;
  hash: string;
}

/** Keys and row hashes of `table` after `after`, in key order, at most `limit`. */
async function keyHashes(store: AttachedStore, table: TenantTable, after: string | null, limit: number): Promise<KeyHash[]> {
  return store.run(async (trx) => {
    const key = ident(table.key);
    const { rows } = await sql<KeyHash>`
      select ${key}::text as key, ${rowHash(table)} as hash from ${ident(table.name)}
      ${after === null ? sql`` : sql`where ${key} > ${after}::${keyType(table)}`}
      order by ${key} limit ${limit}`.execute(trx);
    return rows;
  });
}

/** Whole rows of `table` by key, each column as its text form. */
async function rowsByKey(store: AttachedStore, table: TenantTable, keys: string[]): Promise<Array<Record<string, string | null>>> {
  return store.run(async (trx) => {
    const { rows } = await sql<Record<string, string | null>>`
      select ${sql.join(table.columns.map((c) => sql`${textOf(c)} as ${ident(c.name)}`))}
      from ${ident(table.name)} where ${ident(table.key)} = any(${keys}::${keyType(table)}[])`.execute(trx);
    return rows;
  });
}

/** Insert or overwrite rows (their text forms cast back column by column), one statement. */
async function upsertRows(store: AttachedStore, table: TenantTable, rows: Array<Record<string, string | null>>): Promise<void> {
  if (rows.length === 0) return;
  await store.run(async (trx) => {
    const columns = table.columns.map((c) => ident(c.name));
    const arrays = table.columns.map((c) => sql`${rows.map((r) => r[c.name] ?? null)}::text[]`);
    const casts = table.columns.map((c) => sql`${ident(c.name)}::${sql.raw(c.type)}`);
    const updates = table.columns.filter((c) => c.name !== table.key).map((c) => sql`${ident(c.name)} = excluded.${ident(c.name)}`);
    await sql`
      insert into ${ident(table.name)} (${sql.join(columns)})
      select ${sql.join(casts)} from unnest(${sql.join(arrays)}) as source (${sql.join(columns)})
      on conflict (${ident(table.key)}) do update set ${sql.join(updates)}`.execute(trx);
  });
}

async function deleteRows(store: AttachedStore, table: TenantTable, keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  await store.run((trx) => sql`delete from ${ident(table.name)} where ${ident(table.key)} = any(${keys}::${keyType(table)}[])`.execute(trx));
}

/**
 * One diff pass of every tenant table from `source` into `target`: both sides' keys and
 * hashes read side by side, `batchRows` at a time; the rows missing or different at the
 * target copied (ROW_CHUNK at a time), the ones the source no longer has deleted. With the
 * source frozen, the target equals it afterwards.
 */
export async function syncTenantTables(source: AttachedStore, target: AttachedStore, batchRows: number, onBatch?: () => void): Promise<SyncResult> {
  const result: SyncResult = { upserted: 0, deleted: 0, sourceRows: 0 };
  for (const table of TENANT_TABLES) {
    let after: string | null = null;
    for (;;) {
      const [from, to]: [KeyHash[], KeyHash[]] = await Promise.all([keyHashes(source, table, after, batchRows), keyHashes(target, table, after, batchRows)]);
      // Compare up to where both sides were read: a side that ran out was read to its end.
      const lastFrom: string | null = from.length === batchRows ? from.at(-1)!.key : null;
      const lastTo: string | null = to.length === batchRows ? to.at(-1)!.key : null;
      // uuid order is the order of its lower-case text, so keys compare as strings.
      const upTo: string | null = lastFrom === null ? lastTo : lastTo === null ? lastFrom : lastFrom < lastTo ? lastFrom : lastTo;
      const within = (r: KeyHash) => upTo === null || r.key <= upTo;
      const mine = from.filter(within);
      const theirs = new Map(to.filter(within).map((r) => [r.key, r.hash]));
      const changed = mine.filter((r) => theirs.get(r.key) !== r.hash).map((r) => r.key);
      const present = new Set(mine.map((r) => r.key));
      const gone = [...theirs.keys()].filter((k) => !present.has(k));
      // Rows deleted at the source since its keys were read are simply not fetched; the next pass deletes them.
      for (let i = 0; i < changed.length; i += ROW_CHUNK) {
        await upsertRows(target, table, await rowsByKey(source, table, changed.slice(i, i + ROW_CHUNK)));
      }
      await deleteRows(target, table, gone);
      result.upserted += changed.length;
      result.deleted += gone.length;
      result.sourceRows += mine.length;
      onBatch?.();
      if (upTo === null) break;
      after = upTo;
    }
  }
  return result;
}

export interface StoreChecksum {
  table: string;
  rows: number;
  checksum: string;
}

/**
 * Row count and checksum of every tenant table: SHA-256 over (key, md5 of the row) in key
 * order, read in batches of `batchRows` keys. Two stores holding the same rows give the
 * same answer, whatever model they are.
 */
export async function checksumTenantTables(store: AttachedStore, batchRows: number, onBatch?: () => void): Promise<StoreChecksum[]> {
  const sums: StoreChecksum[] = [];
  for (const table of TENANT_TABLES) {
    const hash = createHash('sha256');
    let rows = 0;
    let after: string | null = null;
    for (;;) {
      const batch = await keyHashes(store, table, after, batchRows);
      for (const r of batch) hash.update(`${r.key}:${r.hash}\n`);
      rows += batch.length;
      onBatch?.();
      if (batch.length < batchRows) break;
      after = batch.at(-1)!.key;
    }
    sums.push({ table: table.name, rows, checksum: hash.digest('hex') });
  }
  return sums;
}

/** Both sides' counts and checksums, table by table. */
export async function verifyTenantTables(source: AttachedStore, target: AttachedStore, batchRows: number, onBatch?: () => void): Promise<TableVerification[]> {
  // Side by side: the two reads are on different connections (often different servers).
  const [mine, theirs] = await Promise.all([checksumTenantTables(source, batchRows, onBatch), checksumTenantTables(target, batchRows, onBatch)]);
  return mine.map((s) => {
    const t = theirs.find((x) => x.table === s.table);
    const targetRows = t?.rows ?? 0;
    const targetChecksum = t?.checksum ?? '';
    return { table: s.table, sourceRows: s.rows, targetRows, sourceChecksum: s.checksum, targetChecksum, ok: s.rows === targetRows && s.checksum === targetChecksum };
  });
}
