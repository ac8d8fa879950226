import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { DATA_ROLE, appendAudit, verifyAuditChain } from '@tenantry/db';
import { sql } from 'kysely';
import { beforeAll, describe, expect, it } from 'vitest';
import { request } from './support/http.js';
import { REPO_ROOT } from './support/process.js';
import { useStack } from './support/stack.js';

const stack = useStack();
let tenantId: string;
let token: string;

beforeAll(async () => {
  ({ tenantId, token } = await stack.signUpTenant({ orgName: 'Audited Org' }));
  await stack.admin('POST', `/v1/tenants/${tenantId}/suspend`, { body: { reason: 'audit test' } });
  await stack.admin('POST', `/v1/tenants/${tenantId}/unsuspend`, { body: {} });
});

const verifyCli = () =>
  promisify(execFile)(process.execPath, ['--import', 'tsx', 'packages/db/src/cli/audit-verify.ts'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', DATABASE_URL: stack.database.url },
  });

/** As the data role, in a transaction that is rolled back either way. */
async function asDataRole(statement: ReturnType<typeof sql>) {
  return stack.database.db.transaction().execute(async (trx) => {
    await sql`set local role ${sql.id(DATA_ROLE)}`.execute(trx);
    return statement.execute(trx);
  });
}

describe('audit log', () => {
  it('chains every entry; the verifier command finds the chain intact', async () => {
    expect(await verifyAuditChain(stack.database.db)).toMatchObject({ intact: true });
    const { stdout } = await verifyCli();
    expect(stdout).toMatch(/audit chain intact: \d+ entries/);
  });

  it('stays intact past ten entries (sequence numbers compare as numbers, not text)', async () => {
    for (let i = 0; i < 12; i++) await appendAudit(stack.database.db, { actor: 'system:test', action: 'filler.appended', data: { i } });
    expect(await verifyAuditChain(stack.database.db)).toMatchObject({ intact: true });
  });

  it('the data role (tenant requests) can neither append, forge a chained entry, nor touch the chain head', async () => {
    await expect(asDataRole(sql`update audit_log set actor = 'forged'`)).rejects.toThrow(/permission denied/);
    await expect(asDataRole(sql`delete from audit_log`)).rejects.toThrow(/permission denied/);
    await expect(asDataRole(sql`truncate audit_log`)).rejects.toThrow(/permission denied/);
    await expect(asDataRole(sql`insert into audit_log (actor, action, data) values ('tenant:probe', 'probe.appended', '{}'::jsonb)`)).rejects.toThrow(
      /permission denied/,
    );
    await expect(asDataRole(sql`select * from audit_chain_head`)).rejects.toThrow(/permission denied/);
    await expect(asDataRole(sql`update audit_chain_head set seq = seq + 1`)).rejects.toThrow(/permission denied/);
    expect(await verifyAuditChain(stack.database.db)).toMatchObject({ intact: true });
  });

  it('the audit functions run with a fixed search_path', async () => {
    const { rows } = await sql<{ proname: string; proconfig: string[] | null }>`
      select proname, proconfig from pg_proc where proname like 'tenantry_audit%' order by proname`.execute(stack.database.db);
    expect(rows.map((r) => r.proname)).toEqual(['tenantry_audit_chain', 'tenantry_audit_digest', 'tenantry_audit_log_is_append_only']);
    for (const row of rows) expect(row.proconfig).toContain('search_path=pg_catalog, public');
  });

  it('even the owner cannot update or delete entries (the trigger raises)', async () => {
    await expect(sql`update audit_log set actor = 'forged'`.execute(stack.database.db)).rejects.toThrow(/append-only/);
    await expect(sql`delete from audit_log`.execute(stack.database.db)).rejects.toThrow(/append-only/);
  });

  it('a rolled-back change leaves no audit row and no link in the chain', async () => {
    const before = await sql<{ n: number }>`select count(*)::int as n from audit_log`.execute(stack.database.db);
    await expect(
      stack.database.db.transaction().execute(async (trx) => {
        await appendAudit(trx, { actor: 'system:test', action: 'doomed.change', data: {} });
        throw new Error('the change fails after its audit entry');
      }),
    ).rejects.toThrow(/change fails/);
    const after = await sql<{ n: number }>`select count(*)::int as n from audit_log`.execute(stack.database.db);
    expect(after.rows[0]!.n).toBe(before.rows[0]!.n);
    await appendAudit(stack.database.db, { actor: 'system:test', action: 'next.change', data: {} });
    expect(await verifyAuditChain(stack.database.db)).toMatchObject({ intact: true });
  });

  it('GET /v1/audit: newest first, by tenant, paginated; platform key only', async () => {
    const first = await stack.admin('GET', `/v1/audit?tenantId=${tenantId}&limit=2`);
    expect(first.status).toBe(200);
    expect(first.body.items.map((e: { action: string }) => e.action)).toEqual(['tenant.unsuspended', 'tenant.suspended']);
    expect(first.body.items[1]).toMatchObject({ actor: 'platform:env:1', tenantId, data: { from: 'active', to: 'suspended', reason: 'audit test' } });
    const rest = await stack.admin('GET', `/v1/audit?tenantId=${tenantId}&limit=50&cursor=${first.body.nextCursor}`);
    expect(rest.body.items.map((e: { action: string }) => e.action)).toEqual(['session.created', 'tenant.provisioned', 'tenant.requested']);
    expect(rest.body.nextCursor).toBeNull();
    const refused = await request(stack.api.baseUrl, 'GET', '/v1/audit', { token });
    expect([refused.status, refused.body.code]).toEqual([403, 'platform_key_required']);
    expect((await stack.admin('GET', '/v1/audit?tenantId=acme')).status).toBe(400);
  });

  // Last: these break the chain of this file's database for good.
  it('a row altered by a superuser is named by the verifier', async () => {
    const target = await stack.database.db
      .selectFrom('audit_log')
      .select(['id', 'chain_seq'])
      .where('action', '=', 'tenant.suspended')
      .executeTakeFirstOrThrow();
    await sql`alter table audit_log disable trigger audit_log_no_update_delete`.execute(stack.database.db);
    await sql`update audit_log set data = data || '{"reason":"nothing to see"}'::jsonb where id = ${target.id}`.execute(stack.database.db);
    await sql`alter table audit_log enable trigger audit_log_no_update_delete`.execute(stack.database.db);

    expect(await verifyAuditChain(stack.database.db)).toMatchObject({
      intact: false,
      brokenAt: { chainSeq: target.chain_seq, id: target.id, reason: expect.stringContaining('altered') },
    });
    const failed = await verifyCli().catch((err: { code: number; stderr: string }) => err);
    expect(failed).toMatchObject({ code: 1 });
    expect((failed as { stderr: string }).stderr).toContain(`BROKEN at entry #${target.chain_seq} (id ${target.id})`);
  });

  it('a deleted row is found as a gap', async () => {
    await sql`alter table audit_log disable trigger audit_log_no_update_delete`.execute(stack.database.db);
    // Deleting the entry the previous test altered leaves a gap as the only problem.
    const victim = await sql<{ chain_seq: string }>`select chain_seq::text from audit_log where action = 'tenant.suspended'`.execute(stack.database.db);
    await sql`delete from audit_log where chain_seq = ${victim.rows[0]!.chain_seq}`.execute(stack.database.db);
    await sql`alter table audit_log enable trigger audit_log_no_update_delete`.execute(stack.database.db);
    const verdict = await verifyAuditChain(stack.database.db);
    expect(verdict.intact).toBe(false);
    expect(verdict).toMatchObject({ brokenAt: { chainSeq: String(Number(victim.rows[0]!.chain_seq) + 1), reason: expect.stringContaining('gap') } });
  });
});
