/**
 * Restore a tenant backup (from tenant:backup) into an existing, freshly provisioned
 * schema-isolated tenant — normally a different tenant than the one backed up:
 *
 *   pnpm tenant:restore <file> <target tenant id (ten_…) or slug> [--replace]
 *
 * The target's documents must be empty unless --replace is given (then they are deleted
 * in the same transaction that writes the restored ones).
 *
 * How, and why it is safe under FORCE ROW LEVEL SECURITY:
 *  1. The file is checked: its archive lists exactly one schema, a tenant schema
 *     `t_<32 hex>` (which names the source tenant), and no table but `documents`; if the
 *     manifest `<file>.json` is there, the dump's SHA-256 and schema must match it.
 *  2. No SQL from the file is executed. pg_restore turns only the `documents` table data
 *     into a COPY stream; that stream is checked line by line (one COPY of exactly the
 *     expected columns, nothing else but comments and SET lines, which are dropped) and
 *     its data lines are fed, behind our own COPY header, to psql (ON_ERROR_STOP, single
 *     transaction) into a staging table `tenantry_restore_<random>.documents` that this
 *     command creates with its own DDL. The staging schema is never granted to anyone
 *     and is dropped at the end, on success, failure or interrupt alike.
 *  3. Every staged row must belong to the source tenant (tenant_id = the uuid in the
 *     schema name) and, with a manifest, the count must match: a backup holding another
 *     tenant's rows is refused, not filtered.
 *  4. The rows are written inside withTenant(target): as the data role (no superuser, no
 *     BYPASSRLS), with app.tenant_id = the target, so the policy's WITH CHECK admits only
 *     rows whose tenant_id is the target's; tenant_id is set to the target, and id,
 *     collection, data, created_at and updated_at are kept. The staged rows travel
 *     through this process as JSON text that is never parsed here (jsonb numbers and
 *     microsecond timestamps stay exact). The target table is locked against writes for
 *     the copy, and the audit entry `tenant.restored_from_backup` commits in the same
 *     transaction.
 */
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { toPublicId } from '@tenantry/domain';
import { type Transaction, sql } from 'kysely';
import { appendAudit } from '../audit.js';
import { type Db, createDb } from '../client.js';
import type { Database } from '../schema.js';
import { withTenant } from '../isolation/schema/with-tenant.js';
import { loadMigrateConfig } from './config.js';
import {
  type BackupManifest,
  MANIFEST_FORMAT,
  OPERATOR_ACTOR,
  RefusalError,
  collect,
  exitOf,
  findTenantByRef,
  operatorPath,
  runCli,
  runTool,
  sha256File,
  spawnTool,
  tenantIdOfSchema,
  tenantLabel,
  tenantSchemaFor,
  throwIfInterrupted,
  toolConnection,
} from './tenant-backup-support.js';

const USAGE = 'usage: tenant:restore <file> <target tenant id (ten_…) or slug> [--replace]';
const TARGET_STATUSES = ['active', 'suspended'] as const;
const TENANT_SCHEMA = /^t_[0-9a-f]{32}$/;
/** Staging schemas: never `t_…`, so nothing mistakes one for a tenant's schema. */
const STAGING_SCHEMA = /^tenantry_restore_[0-9a-f]{32}$/;
const COLUMNS = 'id, tenant_id, collection, data, created_at, updated_at';
/** Rows per copy batch, and a soft cap on the batch's data size. */
const BATCH_ROWS = 1000;
const BATCH_BYTES = 8 * 1024 * 1024;

function assertStagingSchemaName(name: string): void {
  if (!STAGING_SCHEMA.test(name)) throw new Error(`not a staging schema name: ${JSON.stringify(name)}`);
}

async function readManifest(file: string): Promise<BackupManifest | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  let manifest: Partial<BackupManifest>;
  try {
    manifest = JSON.parse(text) as Partial<BackupManifest>;
  } catch {
    throw new RefusalError(`${file} is not valid JSON`);
  }
  if (
    manifest.format !== MANIFEST_FORMAT ||
    typeof manifest.schema !== 'string' ||
    typeof manifest.dump_sha256 !== 'string' ||
    typeof manifest.row_counts !== 'object' ||
    manifest.row_counts === null
  ) {
    throw new RefusalError(`${file} is not a ${MANIFEST_FORMAT} manifest`);
  }
  return manifest as BackupManifest;
}

/** The archive's table of contents: its one tenant schema, and that it holds documents only. */
function sourceSchemaOf(toc: string): string {
  const schemas = new Set<string>();
  const tables = new Set<string>();
  let hasData = false;
  for (const line of toc.split('\n')) {
    const schema = /^\d+; \d+ \d+ SCHEMA - (\S+) /.exec(line);
    if (schema) schemas.add(schema[1]!);
    const table = /^\d+; \d+ \d+ TABLE (?!DATA )(\S+) (\S+) /.exec(line);
    if (table) tables.add(`${table[1]}.${table[2]}`);
    if (/^\d+; \d+ \d+ TABLE DATA (\S+) documents /.test(line)) hasData = true;
  }
  const [schema] = [...schemas];
  if (schemas.size !== 1 || !schema || !TENANT_SCHEMA.test(schema)) {
    throw new RefusalError(`not a tenant backup: the archive holds ${schemas.size === 0 ? 'no schema' : `schema(s) ${[...schemas].join(', ')}`}, expected one t_<32 hex>`);
  }
  const unknown = [...tables].filter((t) => t !== `${schema}.documents`);
  if (unknown.length > 0) throw new RefusalError(`the backup holds tables this restore does not know: ${unknown.join(', ')}`);
  if (!tables.has(`${schema}.documents`) || !hasData) throw new RefusalError('the backup holds no documents table data');
  return schema;
}

/** Split a byte stream on \n; lines stay Buffers, so data passes through byte for byte. */
async function* lines(stream: Readable): AsyncGenerator<Buffer> {
  let rest = Buffer.alloc(0);
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    const buffer = rest.length > 0 ? Buffer.concat([rest, chunk]) : chunk;
    let start = 0;
    let newline: number;
    while ((newline = buffer.indexOf(0x0a, start)) !== -1) {
      yield buffer.subarray(start, newline);
      start = newline + 1;
    }
    rest = Buffer.from(buffer.subarray(start));
  }
  if (rest.length > 0) yield rest;
}

/**
 * pg_restore (documents data only, as a COPY stream) → checked → psql into the staging
 * table. psql's input is ended only once the whole stream has been accepted; on any
 * failure psql is killed before its single transaction can commit.
 */
async function loadIntoStaging(file: string, sourceSchema: string, staging: string, connection: { dbname: string; env: NodeJS.ProcessEnv }): Promise<void> {
  assertStagingSchemaName(staging);
  const restore = spawnTool('pg_restore', ['--data-only', `--schema=${sourceSchema}`, '--table=documents', '--file=-', file], {
    env: connection.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const psql = spawnTool(
    'psql',
    ['--no-psqlrc', '--quiet', '--set=ON_ERROR_STOP=1', '--single-transaction', `--dbname=${connection.dbname}`, '--file=-'],
    { env: connection.env, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const restoreErr = collect(restore.stderr);
  const psqlErr = collect(psql.stderr);
  psql.stdout?.resume();
  psql.stdin!.on('error', () => {}); // EPIPE if psql dies: reported through its exit
  const restoreExit = exitOf(restore, 'pg_restore');
  const psqlExit = exitOf(psql, 'psql');
  restoreExit.catch(() => {});
  psqlExit.catch(() => {});

  let psqlGone = false;
  void psqlExit.finally(() => (psqlGone = true)).catch(() => {});
  const write = async (text: Buffer | string) => {
    if (psqlGone) throw new Error(`psql exited early:\n${psqlErr().trim()}`);
    if (!psql.stdin!.write(text)) await Promise.race([once(psql.stdin!, 'drain'), psqlExit]);
  };

  const copyHeader = new RegExp(`^COPY (?:${sourceSchema}|"${sourceSchema}")\\.(?:documents|"documents") \\(${COLUMNS}\\) FROM stdin;$`);
  let state: 'before' | 'copy' | 'after' = 'before';
  let lineNo = 0;
  try {
    for await (const raw of lines(restore.stdout!)) {
      lineNo++;
      if (state === 'copy') {
        // Data lines go through untouched (a row cannot produce a bare "\." line: COPY
        // escapes backslashes), so nothing in the data is ever rewritten or executed.
        if (raw.length === 2 && raw[0] === 0x5c && raw[1] === 0x2e) {
          await write('\\.\n');
          state = 'after';
        } else {
          await write(Buffer.concat([raw, Buffer.from('\n')]));
        }
        continue;
      }
      const line = raw.toString('latin1').replace(/\r$/, '');
      if (line === '' || line.startsWith('--') || /^\\(?:un)?restrict [A-Za-z0-9]+$/.test(line)) continue;
      if (line === "SELECT pg_catalog.set_config('search_path', '', false);") continue;
      const encoding = /^SET client_encoding = '([A-Za-z0-9_]+)';$/.exec(line);
      if (encoding) {
        await write(`SET client_encoding = '${encoding[1]}';\n`);
        continue;
      }
      if (/^SET [a-z_]+ = [A-Za-z0-9_' ]+;$/.test(line)) continue;
      if (state === 'before' && copyHeader.test(line)) {
        // Our header, our staging table: the dump's own schema name is never used.
        await write(`COPY "${staging}".documents (${COLUMNS}) FROM stdin;\n`);
        state = 'copy';
        continue;
      }
      throw new RefusalError(`unexpected content in the backup's data stream at line ${lineNo}: not a tenant:backup file`);
    }
    const code = await restoreExit;
    if (code !== 0) throw new Error(`pg_restore failed (exit ${code}):\n${restoreErr().trim()}`);
    if (state !== 'after') throw new RefusalError('the backup\'s documents data is incomplete (no end of COPY data)');
    throwIfInterrupted();
    psql.stdin!.end();
    const psqlCode = await psqlExit;
    if (psqlCode !== 0) throw new Error(`psql failed loading the staging table (exit ${psqlCode}):\n${psqlErr().trim()}`);
  } catch (err) {
    // Never let psql reach end of input (and COMMIT) after a failure.
    psql.kill('SIGKILL');
    restore.kill('SIGKILL');
    await Promise.allSettled([psqlExit, restoreExit]);
    throw err;
  }
}

/**
 * Copy the staged rows into the target inside withTenant(target). Reads the staging table
 * through a second connection (the data role has no access to it) in batches of JSON text.
 */
async function copyIntoTarget(
  db: Db,
  target: { id: string; schema: string },
  staging: string,
  options: { replace: boolean; expected: number; label: string; auditSchema: string },
  audit: (trx: Transaction<Database>, copied: { rows: number; replacedRows: number }) => Promise<void>,
): Promise<{ rows: number; replacedRows: number }> {
  assertStagingSchemaName(staging);
  const stagingTable = sql.id(staging, 'documents');
  const targetTable = sql.id(target.schema, 'documents');
  return withTenant(db, { tenantId: target.id, schemaName: target.schema }, async (trx) => {
    // No concurrent writes to the target between the emptiness check and the commit.
    await sql`lock table ${targetTable} in exclusive mode`.execute(trx);
    const existing = await sql<{ n: string }>`select count(*) as n from ${targetTable}`.execute(trx);
    let replacedRows = Number(existing.rows[0]!.n);
    if (replacedRows > 0) {
      if (!options.replace) {
        throw new RefusalError(
          `target tenant ${options.label} already has ${replacedRows} document(s); restore only into an empty (freshly provisioned) tenant, or pass --replace to delete them first`,
        );
      }
      const deleted = await sql`delete from ${targetTable}`.execute(trx);
      replacedRows = Number(deleted.numAffectedRows ?? replacedRows);
    }

    let after: string | null = null;
    let rows = 0;
    for (;;) {
      throwIfInterrupted();
      const batch: { rows: Array<{ rows: string; n: number; last: string | null }> } = await sql<{ rows: string; n: number; last: string | null }>`
        select coalesce(json_agg(json_build_object(
                 'id', b.id, 'collection', b.collection, 'data', b.data,
                 'created_at', b.created_at, 'updated_at', b.updated_at) order by b.id)::text, '[]') as rows,
               count(*)::int as n,
               (array_agg(b.id order by b.id desc))[1]::text as last
        from (
          select s.*, row_number() over w as rn, sum(octet_length(s.data::text)) over w as bytes
          from ${stagingTable} s
          where ${after}::uuid is null or s.id > ${after}::uuid
          window w as (order by s.id)
          order by s.id
          limit ${BATCH_ROWS}
        ) b
        where b.rn = 1 or b.bytes <= ${BATCH_BYTES}`.execute(db);
      const { rows: json, n, last }: { rows: string; n: number; last: string | null } = batch.rows[0]!;
      if (n === 0 || last === null) break;
      // tenant_id is the target's; RLS WITH CHECK verifies it for every row.
      const inserted = await sql`
        insert into ${targetTable} (id, tenant_id, collection, data, created_at, updated_at)
        select r.id, ${target.id}::uuid, r.collection, r.data, r.created_at, r.updated_at
        from json_to_recordset(${json}::json) as r(id uuid, collection text, data jsonb, created_at timestamptz, updated_at timestamptz)`.execute(trx);
      rows += Number(inserted.numAffectedRows ?? 0);
      after = last;
    }
    const visible = await sql<{ n: string }>`select count(*) as n from ${targetTable}`.execute(trx);
    if (rows !== options.expected || Number(visible.rows[0]!.n) !== options.expected) {
      throw new Error(`copied ${rows} row(s), target now shows ${visible.rows[0]!.n}, expected ${options.expected}; rolled back`);
    }
    const copied = { rows, replacedRows: options.replace ? replacedRows : 0 };
    // The audit entry is the control plane's, in the same transaction as the copy: back
    // to the CLI's own role (the data role may not write the audit log), and the control
    // plane's schema on the path, where withTenant left only the tenant's. Both are
    // transaction-local, and every statement above names its schema explicitly.
    await sql`select set_config('role', 'none', true), set_config('search_path', quote_ident(${target.schema}) || ', ' || quote_ident(${options.auditSchema}), true)`.execute(trx);
    await audit(trx, copied);
    return copied;
  });
}

await runCli(async () => {
  const args = process.argv.slice(2);
  const replace = args.includes('--replace');
  const positional = args.filter((a) => a !== '--replace');
  if (positional.length !== 2 || positional.some((a) => a.startsWith('--'))) throw new RefusalError(USAGE);
  const [fileArg, targetRef] = positional as [string, string];
  const file = operatorPath(fileArg);
  if (!(await stat(file).then((s) => s.isFile(), () => false))) throw new RefusalError(`${file} does not exist or is not a file`);

  const manifest = await readManifest(`${file}.json`);
  if (manifest && (await sha256File(file)) !== manifest.dump_sha256) {
    throw new RefusalError(`${file} does not match its manifest (SHA-256 differs): damaged, or not the dump the manifest describes`);
  }
  if (!manifest) console.error(`warning: no manifest ${file}.json; checksum and row counts cannot be verified`);

  const { DATABASE_URL } = loadMigrateConfig();
  const connection = toolConnection(DATABASE_URL);
  const sourceSchema = sourceSchemaOf(await runTool('pg_restore', ['--list', file], connection.env));
  if (manifest && manifest.schema !== sourceSchema) throw new RefusalError(`the manifest names schema ${manifest.schema} but the dump holds ${sourceSchema}`);
  const sourceTenantId = tenantIdOfSchema(sourceSchema);
  const expectedFromManifest = manifest ? manifest.row_counts.documents : undefined;

  const db = createDb(DATABASE_URL, { maxConnections: 3, applicationName: 'tenantry-tenant-restore' });
  const staging = `tenantry_restore_${randomBytes(16).toString('hex')}`;
  assertStagingSchemaName(staging);
  let stagingCreated = false;
  try {
    const target = await findTenantByRef(db, targetRef);
    const targetSchema = await tenantSchemaFor(db, target, TARGET_STATUSES, 'restore');
    const label = tenantLabel(target);

    // Fail fast, before loading anything (checked again under lock when copying).
    const existing = await withTenant(db, { tenantId: target.id, schemaName: targetSchema }, (trx) =>
      sql<{ n: string }>`select count(*) as n from ${sql.id(targetSchema, 'documents')}`.execute(trx),
    );
    const existingRows = Number(existing.rows[0]!.n);
    if (existingRows > 0 && !replace) {
      throw new RefusalError(
        `target tenant ${label} already has ${existingRows} document(s); restore only into an empty (freshly provisioned) tenant, or pass --replace to delete them first`,
      );
    }

    stagingCreated = true;
    const stagingSchema = sql.id(staging);
    await db.transaction().execute(async (trx) => {
      await sql`create schema ${stagingSchema}`.execute(trx);
      await sql`revoke all on schema ${stagingSchema} from public`.execute(trx);
      await sql`
        create table ${sql.id(staging, 'documents')} (
          id uuid primary key,
          tenant_id uuid not null,
          collection text not null,
          data jsonb not null,
          created_at timestamptz not null,
          updated_at timestamptz not null
        )`.execute(trx);
    });
    await loadIntoStaging(file, sourceSchema, staging, connection);
    throwIfInterrupted();

    const staged = await sql<{ n: string; foreign: string }>`
      select count(*) as n, count(*) filter (where tenant_id is distinct from ${sourceTenantId}::uuid) as foreign
      from ${sql.id(staging, 'documents')}`.execute(db);
    const stagedRows = Number(staged.rows[0]!.n);
    const foreignRows = Number(staged.rows[0]!.foreign);
    if (foreignRows > 0) {
      throw new RefusalError(`the backup holds ${foreignRows} row(s) that do not belong to its tenant ${toPublicId('ten', sourceTenantId)}; refusing to restore any of it`);
    }
    if (expectedFromManifest !== undefined && stagedRows !== expectedFromManifest) {
      throw new RefusalError(`the dump holds ${stagedRows} document(s) but its manifest says ${expectedFromManifest}`);
    }

    // Where the control plane's audit_log is, as its own search_path resolves it.
    const auditSchema = await sql<{ nspname: string }>`
      select n.nspname from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = to_regclass('audit_log')`.execute(db);
    if (!auditSchema.rows[0]) throw new Error('audit_log not found on the search path of the DATABASE_URL role: is the database migrated?');

    const copied = await copyIntoTarget(
      db,
      { id: target.id, schema: targetSchema },
      staging,
      { replace, expected: stagedRows, label, auditSchema: auditSchema.rows[0].nspname },
      (trx, result) =>
        appendAudit(trx, {
          actor: OPERATOR_ACTOR,
          action: 'tenant.restored_from_backup',
          tenantId: target.id,
          data: {
            sourceTenantId: toPublicId('ten', sourceTenantId),
            file: path.basename(file),
            rows: result.rows,
            replacedRows: result.replacedRows,
            takenAt: manifest?.taken_at ?? null,
          },
        }),
    );
    console.log(
      `restored ${copied.rows} document(s) of tenant ${toPublicId('ten', sourceTenantId)} from ${file} into tenant ${label}` +
        (replace ? ` (replaced ${copied.replacedRows})` : ''),
    );
  } finally {
    if (stagingCreated) {
      try {
        await sql`drop schema if exists ${sql.id(staging)} cascade`.execute(db);
      } catch (err) {
        console.error(`could not drop staging schema ${staging} (${(err as Error).message}); drop it by hand: DROP SCHEMA "${staging}" CASCADE`);
      }
    }
    await db.destroy();
  }
});
