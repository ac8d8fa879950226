import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { withTenant } from '@tenantry/db';
import { fromPublicId, tenantSchemaName } from '@tenantry/domain';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_KEY } from './support/apps.js';
import { REPO_ROOT } from './support/process.js';
import { useStack } from './support/stack.js';

const stack = useStack();
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tenantry-backup-'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Run one of the commands to its exit, as an operator would; never rejects. */
async function cli(command: 'tenant-backup' | 'tenant-restore', ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', `packages/db/src/cli/${command}.ts`, ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', DATABASE_URL: stack.database.url },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

function context(publicId: string) {
  const tenantId = fromPublicId('ten', publicId)!;
  return { tenantId, schemaName: tenantSchemaName(tenantId) };
}

interface Row {
  id: string;
  tenant_id: string;
  collection: string;
  data: string;
  created_at: string;
  updated_at: string;
}

/** What the tenant itself sees, exactly: jsonb and timestamps as text (microseconds). */
async function documentsOf(publicId: string): Promise<Row[]> {
  const { rows } = await withTenant(stack.database.db, context(publicId), (trx) =>
    sql<Row>`select id, tenant_id, collection, data::text as data, created_at::text as created_at, updated_at::text as updated_at
             from documents order by id`.execute(trx),
  );
  return rows;
}

async function insertDocuments(publicId: string, docs: Array<{ id?: string; collection: string; data: unknown; createdAt?: string; updatedAt?: string }>) {
  await withTenant(stack.database.db, context(publicId), async (trx) => {
    for (const doc of docs) {
      await sql`insert into documents (id, collection, data, created_at, updated_at)
                values (${doc.id ?? randomUUID()}, ${doc.collection}, ${typeof doc.data === 'string' ? doc.data : JSON.stringify(doc.data)}::jsonb,
                        coalesce(${doc.createdAt ?? null}::timestamptz, now()), coalesce(${doc.updatedAt ?? null}::timestamptz, now()))`.execute(trx);
    }
  });
}

async function stagingSchemas(): Promise<string[]> {
  const { rows } = await sql<{ nspname: string }>`select nspname from pg_namespace where nspname like 'tenantry\\_restore\\_%'`.execute(stack.database.db);
  return rows.map((r) => r.nspname);
}

async function restoreAudits(publicId: string) {
  return stack.database.db
    .selectFrom('audit_log')
    .select(['actor', 'action', 'data'])
    .where('tenant_id', '=', fromPublicId('ten', publicId)!)
    .where('action', '=', 'tenant.restored_from_backup')
    .orderBy('id')
    .execute();
}

// Each command is a process of its own (a few seconds each under a full parallel run).
describe('tenant backup and restore into a fresh tenant', { timeout: 90_000 }, () => {
  let a: { tenantId: string; token: string };
  let b: { tenantId: string; token: string };
  let c: { tenantId: string; token: string };
  let slugA: string;
  let aBefore: Row[];
  let bBefore: Row[];
  let file: string;

  beforeAll(async () => {
    a = await stack.signUpTenant();
    b = await stack.signUpTenant();
    slugA = (await stack.admin('GET', `/v1/tenants/${a.tenantId}`)).body.slug;
    await insertDocuments(a.tenantId, [
      // The nil uuid sorts first: the copy's batching must not skip it.
      { id: '00000000-0000-0000-0000-000000000000', collection: 'notes', data: { title: 'first' }, createdAt: '2024-02-29 12:34:56.789123+00', updatedAt: '2024-03-01 00:00:00.000001+00' },
      // Data that mentions the source schema, and COPY's special characters: never rewritten.
      { collection: 'notes', data: { text: `see ${context(a.tenantId).schemaName}.documents`, tricky: 'tab\there\nnewline \\. back\\slash "quotes" ünïcödé 🚀' } },
      // A number beyond double precision: must not pass through a JavaScript number.
      { collection: 'ledger', data: '{"amount": 12345678901234567890.123456789012345, "nested": {"list": [1, null, true, {"k": "v"}]}}' },
      { collection: 'empty', data: {}, createdAt: '2001-01-01 00:00:00+00', updatedAt: '2001-01-01 00:00:00+00' },
    ]);
    await insertDocuments(b.tenantId, [{ collection: 'notes', data: { secret: 'tenant B only' } }]);
    aBefore = await documentsOf(a.tenantId);
    bBefore = await documentsOf(b.tenantId);
    expect(aBefore).toHaveLength(4);
    expect(bBefore).toHaveLength(1);
    file = path.join(dir, 'a.dump');
  });

  it('backs a tenant up by slug: a dump and a manifest with row counts and no secrets', async () => {
    const run = await cli('tenant-backup', slugA, file);
    expect(run, run.stderr).toMatchObject({ code: 0 });
    expect(run.stdout).toContain(`backed up tenant ${a.tenantId}`);

    const manifestText = await readFile(`${file}.json`, 'utf8');
    const manifest = JSON.parse(manifestText);
    expect(manifest).toMatchObject({
      format: 'tenantry.tenant-backup.v1',
      tenant_id: a.tenantId,
      slug: slugA,
      schema: context(a.tenantId).schemaName,
      row_counts: { documents: 4 },
      dump_file: 'a.dump',
    });
    expect(manifest.pg_dump_version).toMatch(/^pg_dump \(PostgreSQL\) \d+/);
    expect(new Date(manifest.taken_at).getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(manifest.dump_bytes).toBe((await stat(file)).size);
    for (const secret of [stack.database.url, 'postgres://', 'password', PLATFORM_KEY, a.token, b.token]) {
      expect(manifestText).not.toContain(secret);
    }
    // The tenant's data: readable by its owner only.
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const audit = await stack.database.db.selectFrom('audit_log').select(['actor', 'data']).where('action', '=', 'tenant.backup_taken').execute();
    expect(audit).toEqual([expect.objectContaining({ actor: 'operator:cli', data: expect.objectContaining({ file: 'a.dump', rows: { documents: 4 } }) })]);

    // A backup is never overwritten.
    const again = await cli('tenant-backup', a.tenantId, file);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already exists/);
  });

  it("restores into a fresh tenant: exactly A's documents, now C's; A and B untouched; staging gone", async () => {
    c = await stack.signUpTenant();
    expect(await documentsOf(c.tenantId)).toEqual([]);

    const run = await cli('tenant-restore', file, c.tenantId);
    expect(run, run.stderr).toMatchObject({ code: 0 });
    expect(run.stdout).toContain(`restored 4 document(s) of tenant ${a.tenantId}`);

    const cIds = fromPublicId('ten', c.tenantId)!;
    const cAfter = await documentsOf(c.tenantId);
    expect(cAfter).toEqual(aBefore.map((row) => ({ ...row, tenant_id: cIds })));
    // Byte-exact jsonb (the big number keeps every digit) and microsecond timestamps.
    expect(cAfter.find((r) => r.collection === 'ledger')!.data).toContain('12345678901234567890.123456789012345');
    expect(cAfter[0]!.created_at).toBe('2024-02-29 12:34:56.789123+00');

    expect(await documentsOf(a.tenantId)).toEqual(aBefore);
    expect(await documentsOf(b.tenantId)).toEqual(bBefore);
    const bIds = new Set(bBefore.map((r) => r.id));
    expect(cAfter.filter((r) => bIds.has(r.id) || r.data.includes('tenant B only'))).toEqual([]);
    // Nothing in C's schema beyond what C sees (no rows of another tenant_id slipped in).
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from ${sql.id(context(c.tenantId).schemaName, 'documents')}`.execute(stack.database.db);
    expect(rows[0]!.n).toBe(4);

    expect(await stagingSchemas()).toEqual([]);
    const audits = await restoreAudits(c.tenantId);
    expect(audits).toEqual([
      { actor: 'operator:cli', action: 'tenant.restored_from_backup', data: expect.objectContaining({ sourceTenantId: a.tenantId, file: 'a.dump', rows: 4 }) },
    ]);
    expect(JSON.stringify(audits)).not.toContain('postgres://');
    // Written as the data role inside the copy's transaction, and chained like any entry.
    const chained = await sql<{ ok: boolean }>`
      select a.hash = tenantry_audit_digest(a.prev_hash, a.chain_seq, a.at, a.actor, a.action, a.tenant_id, a.data)
             and a.prev_hash = (select p.hash from audit_log p where p.chain_seq = a.chain_seq - 1) as ok
      from audit_log a where a.action = 'tenant.restored_from_backup'`.execute(stack.database.db);
    expect(chained.rows).toEqual([{ ok: true }]);
  });

  it('refuses a target that is not empty, changing nothing; --replace replaces', async () => {
    await insertDocuments(c.tenantId, [{ collection: 'notes', data: { written: 'after the restore' } }]);
    const cBefore = await documentsOf(c.tenantId);
    expect(cBefore).toHaveLength(5);

    const run = await cli('tenant-restore', file, c.tenantId);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`target tenant ${c.tenantId}`);
    expect(run.stderr).toMatch(/already has 5 document\(s\).*--replace/);
    expect(await documentsOf(c.tenantId)).toEqual(cBefore);
    expect(await stagingSchemas()).toEqual([]);
    expect(await restoreAudits(c.tenantId)).toHaveLength(1);

    const replaced = await cli('tenant-restore', file, c.tenantId, '--replace');
    expect(replaced, replaced.stderr).toMatchObject({ code: 0 });
    expect(await documentsOf(c.tenantId)).toEqual(aBefore.map((row) => ({ ...row, tenant_id: fromPublicId('ten', c.tenantId)! })));
    expect((await restoreAudits(c.tenantId))[1]!.data).toMatchObject({ rows: 4, replacedRows: 5 });
    expect(await stagingSchemas()).toEqual([]);
    expect(await documentsOf(a.tenantId)).toEqual(aBefore);
    expect(await documentsOf(b.tenantId)).toEqual(bBefore);
  });

  it('an unknown tenant fails with exit code 2 and a clear message', async () => {
    const unknownId = `ten_${'0'.repeat(31)}1`;
    const backup = await cli('tenant-backup', unknownId, path.join(dir, 'unknown.dump'));
    expect(backup.code).toBe(2);
    expect(backup.stderr).toContain(`no tenant ${unknownId}`);
    const bySlug = await cli('tenant-backup', 'no-such-slug', path.join(dir, 'unknown.dump'));
    expect(bySlug.code).toBe(2);
    expect(bySlug.stderr).toContain('no tenant no-such-slug');
    const restore = await cli('tenant-restore', file, unknownId);
    expect(restore.code).toBe(2);
    expect(restore.stderr).toContain(`no tenant ${unknownId}`);
    await expect(stat(path.join(dir, 'unknown.dump'))).rejects.toThrow();
    await expect(stat(path.join(dir, 'unknown.dump.json'))).rejects.toThrow();
  });

  it('refuses a backup whose schema holds rows of another tenant, and a dump that does not match its manifest', async () => {
    const d = await stack.signUpTenant();
    const e = await stack.signUpTenant();
    // Only a superuser bypassing RLS could plant this: a row of B in D's schema.
    await sql`insert into ${sql.id(context(d.tenantId).schemaName, 'documents')} (tenant_id, collection, data)
              values (${fromPublicId('ten', b.tenantId)!}, 'notes', '{}'::jsonb)`.execute(stack.database.db);
    const dFile = path.join(dir, 'd.dump');
    expect((await cli('tenant-backup', d.tenantId, dFile)).code).toBe(0);
    const run = await cli('tenant-restore', dFile, e.tenantId);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/do not belong to its tenant/);
    expect(await documentsOf(e.tenantId)).toEqual([]);
    expect(await stagingSchemas()).toEqual([]);

    // A's dump with D's manifest: the checksum gives it away.
    const { copyFile } = await import('node:fs/promises');
    const mixed = path.join(dir, 'mixed.dump');
    await copyFile(file, mixed);
    await copyFile(`${dFile}.json`, `${mixed}.json`);
    const mismatch = await cli('tenant-restore', mixed, e.tenantId);
    expect(mismatch.code).toBe(2);
    expect(mismatch.stderr).toMatch(/does not match its manifest/);
    expect(await documentsOf(e.tenantId)).toEqual([]);
  });
});
