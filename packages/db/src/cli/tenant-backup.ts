/**
 * Back up one schema-isolated tenant's data:
 *
 *   pnpm tenant:backup <tenant id (ten_…) or slug> <file>
 *
 * Writes <file> (pg_dump custom format of the tenant's schema only, no owner, no grants)
 * and <file>.json (manifest: tenant, schema, time, row counts, pg_dump version, size and
 * SHA-256 of the dump; never a secret). Both are mode 0600 and appear only once complete;
 * an existing file is never overwritten. The row counts and the dump come from one
 * snapshot (pg_dump --snapshot), so they agree even while the tenant keeps writing.
 *
 * Control-plane rows (tenant record, users, memberships, billing, audit) are not included.
 * Restore with tenant:restore into a freshly provisioned tenant.
 */
import { access, constants, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { toPublicId } from '@tenantry/domain';
import { sql } from 'kysely';
import { appendAudit } from '../audit.js';
import { createDb } from '../client.js';
import { loadMigrateConfig } from './config.js';
import {
  type BackupManifest,
  MANIFEST_FORMAT,
  OPERATOR_ACTOR,
  RefusalError,
  findTenantByRef,
  operatorPath,
  runCli,
  runTool,
  sha256File,
  tenantLabel,
  tenantSchemaFor,
  toolConnection,
} from './tenant-backup-support.js';

const USAGE = 'usage: tenant:backup <tenant id (ten_…) or slug> <file>';
/** Provisioning tenants have no complete schema yet; deleted ones have none left. */
const BACKUP_STATUSES = ['active', 'suspended', 'pending_deletion'] as const;

async function exists(file: string): Promise<boolean> {
  return access(file, constants.F_OK).then(
    () => true,
    () => false,
  );
}

await runCli(async () => {
  const args = process.argv.slice(2);
  if (args.length !== 2 || args.some((a) => a.startsWith('--'))) throw new RefusalError(USAGE);
  const [ref, fileArg] = args as [string, string];
  const file = operatorPath(fileArg);
  const manifestFile = `${file}.json`;
  for (const f of [file, manifestFile]) {
    if (await exists(f)) throw new RefusalError(`${f} already exists; backups are never overwritten, choose another file name`);
  }
  const dir = path.dirname(file);
  if (!(await stat(dir).then((s) => s.isDirectory(), () => false))) throw new RefusalError(`directory ${dir} does not exist`);

  const { DATABASE_URL } = loadMigrateConfig();
  const connection = toolConnection(DATABASE_URL);
  const pgDumpVersion = (await runTool('pg_dump', ['--version'], connection.env)).trim();

  // Written under temporary names and renamed at the end: a file at the final name is a
  // complete backup whose audit entry is committed.
  const partialDump = `${file}.partial-${process.pid}`;
  const partialManifest = `${manifestFile}.partial-${process.pid}`;
  let complete = false;
  const db = createDb(DATABASE_URL, { maxConnections: 2, applicationName: 'tenantry-tenant-backup' });
  try {
    const tenant = await findTenantByRef(db, ref);
    const schema = await tenantSchemaFor(db, tenant, BACKUP_STATUSES, 'backup');

    // Created empty with 0600 first: the dump is the tenant's data, and pg_dump keeps the
    // mode of a file it truncates.
    await (await open(partialDump, 'wx', 0o600)).close();

    const taken = await db
      .transaction()
      .setIsolationLevel('repeatable read')
      .setAccessMode('read only')
      .execute(async (trx) => {
        // Like pg_dump: all rows or an error, never a silently filtered count. A role that
        // is subject to the forced RLS (neither superuser nor BYPASSRLS) fails here.
        await sql`set local row_security = off`.execute(trx);
        const meta = await sql<{ snapshot: string; taken_at: Date; server_version: string }>`
          select pg_export_snapshot() as snapshot, now() as taken_at, current_setting('server_version') as server_version`.execute(trx);
        const { snapshot, taken_at, server_version } = meta.rows[0]!;
        const tables = await sql<{ relname: string }>`
          select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = ${schema} and c.relkind in ('r', 'p') order by c.relname`.execute(trx);
        const rowCounts: Record<string, number> = {};
        try {
          for (const { relname } of tables.rows) {
            // schema is validated (^t_[0-9a-f]{32}$); relname comes from the catalog; both quoted.
            const count = await sql<{ n: string }>`select count(*) as n from ${sql.id(schema, relname)}`.execute(trx);
            rowCounts[relname] = Number(count.rows[0]!.n);
          }
        } catch (err) {
          if (/row-level security/i.test((err as Error).message)) {
            throw new Error(
              'the DATABASE_URL role cannot bypass row-level security on tenant tables (needs superuser or BYPASSRLS); a backup as this role would be incomplete',
            );
          }
          throw err;
        }
        // The dump reads the same snapshot, held open by this transaction until it ends.
        await runTool(
          'pg_dump',
          [
            '--format=custom',
            `--schema=${schema}`,
            '--strict-names',
            '--no-owner',
            '--no-acl',
            `--snapshot=${snapshot}`,
            `--file=${partialDump}`,
            `--dbname=${connection.dbname}`,
          ],
          connection.env,
        );
        return { takenAt: taken_at, serverVersion: server_version, rowCounts };
      });

    const manifest: BackupManifest = {
      format: MANIFEST_FORMAT,
      tenant_id: toPublicId('ten', tenant.id),
      slug: tenant.slug,
      schema,
      taken_at: taken.takenAt.toISOString(),
      row_counts: taken.rowCounts,
      pg_dump_version: pgDumpVersion,
      server_version: taken.serverVersion,
      dump_file: path.basename(file),
      dump_bytes: (await stat(partialDump)).size,
      dump_sha256: await sha256File(partialDump),
    };
    await writeFile(partialManifest, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600, flag: 'wx' });

    // A copy of a tenant's data leaving the database is worth a trail.
    await appendAudit(db, {
      actor: OPERATOR_ACTOR,
      action: 'tenant.backup_taken',
      tenantId: tenant.id,
      data: { file: manifest.dump_file, rows: manifest.row_counts, sha256: manifest.dump_sha256, takenAt: manifest.taken_at },
    });
    await rename(partialDump, file);
    await rename(partialManifest, manifestFile);
    complete = true;

    const counts = Object.entries(manifest.row_counts).map(([table, n]) => `${table} ${n}`).join(', ') || 'no tables';
    console.log(`backed up tenant ${tenantLabel(tenant)} (schema ${schema}, rows: ${counts}) to ${file}`);
    console.log(`manifest: ${manifestFile}`);
  } finally {
    if (!complete) {
      await rm(partialDump, { force: true });
      await rm(partialManifest, { force: true });
    }
    await db.destroy();
  }
});
