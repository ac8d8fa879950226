import { randomUUID } from 'node:crypto';
import { insertProvisioningTenant } from '@tenantry/db';
import { type TenantStatus, fromPublicId, toPublicId } from '@tenantry/domain';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { request, validSignup, waitForSignup } from './support/http.js';
import { useStack } from './support/stack.js';

const stack = useStack();
const DAY = 86_400_000;

/** A tenant row in the given state, made directly (no saga needed for transition rules). */
async function tenantIn(status: TenantStatus, statusBeforeDeletion: 'active' | 'suspended' | null = null): Promise<string> {
  const id = randomUUID();
  await insertProvisioningTenant(stack.database.db, { id, name: `State ${status} ${id.slice(0, 6)}`, plan: 'trial', isolation: 'schema' });
  await stack.database.db
    .updateTable('tenants')
    .set({
      status,
      status_before_deletion: status === 'pending_deletion' ? (statusBeforeDeletion ?? 'active') : null,
      delete_after: status === 'pending_deletion' ? new Date(Date.now() + 30 * DAY) : null,
    })
    .where('id', '=', id)
    .execute();
  return toPublicId('ten', id);
}

const ACTIONS = {
  suspend: (id: string) => ['POST', `/v1/tenants/${id}/suspend`, { reason: 'chargeback' }] as const,
  unsuspend: (id: string) => ['POST', `/v1/tenants/${id}/unsuspend`, {}] as const,
  delete: (id: string) => ['DELETE', `/v1/tenants/${id}?reason=closed%20account`, undefined] as const,
  restore: (id: string) => ['POST', `/v1/tenants/${id}/restore`, {}] as const,
};
type Action = keyof typeof ACTIONS;

// from state, action → resulting state, or the 409 code.
const table: Array<[TenantStatus, Action, TenantStatus | 'illegal_transition']> = [
  ['active', 'suspend', 'suspended'],
  ['active', 'unsuspend', 'illegal_transition'],
  ['active', 'delete', 'pending_deletion'],
  ['active', 'restore', 'illegal_transition'],
  ['suspended', 'suspend', 'illegal_transition'],
  ['suspended', 'unsuspend', 'active'],
  ['suspended', 'delete', 'pending_deletion'],
  ['suspended', 'restore', 'illegal_transition'],
  ['pending_deletion', 'suspend', 'illegal_transition'],
  ['pending_deletion', 'unsuspend', 'illegal_transition'],
  ['pending_deletion', 'delete', 'illegal_transition'],
  ['pending_deletion', 'restore', 'active'],
  ['provisioning', 'suspend', 'illegal_transition'],
  ['provisioning', 'delete', 'illegal_transition'],
  ['deleted', 'restore', 'illegal_transition'],
  ['deleted', 'unsuspend', 'illegal_transition'],
];

describe('lifecycle transitions', () => {
  it.each(table)('%s --%s--> %s', async (from, action, expected) => {
    const id = await tenantIn(from);
    const [method, path, body] = ACTIONS[action](id);
    const res = await stack.admin(method, path, { body });
    const uuid = fromPublicId('ten', id)!;
    const audit = await stack.database.db.selectFrom('audit_log').selectAll().where('tenant_id', '=', uuid).orderBy('id').execute();
    const lifecycleAudit = audit.filter((a) => a.action !== 'tenant.requested');
    if (expected === 'illegal_transition') {
      expect([res.status, res.body.code]).toEqual([409, 'illegal_transition']);
      expect((await stack.admin('GET', `/v1/tenants/${id}`)).body.status).toBe(from);
      expect(lifecycleAudit).toEqual([]);
    } else {
      expect(res.status).toBe(200);
      expect(res.body.status).toBe(expected);
      expect(lifecycleAudit).toHaveLength(1);
      expect(lifecycleAudit[0]).toMatchObject({ actor: 'platform:env:1', data: { from, to: expected } });
    }
  });

  it('restore returns a tenant to the state it was deleted from', async () => {
    const id = await tenantIn('suspended');
    const deleted = await stack.admin('DELETE', `/v1/tenants/${id}`);
    expect(deleted.body.status).toBe('pending_deletion');
    const restored = await stack.admin('POST', `/v1/tenants/${id}/restore`, { body: {} });
    expect(restored.body).toMatchObject({ status: 'suspended', deleteAfter: null });
  });

  it('delete sets deleteAfter to now + TENANT_DATA_RETENTION_DAYS (30 by default)', async () => {
    const id = await tenantIn('active');
    const res = await stack.admin('DELETE', `/v1/tenants/${id}`);
    const days = (new Date(res.body.deleteAfter).getTime() - Date.now()) / DAY;
    expect(days).toBeGreaterThan(29.99);
    expect(days).toBeLessThan(30.01);
  });

  it('suspend needs a reason, and records it', async () => {
    const id = await tenantIn('active');
    const missing = await stack.admin('POST', `/v1/tenants/${id}/suspend`, { body: {} });
    expect([missing.status, missing.body.fields[0].field]).toEqual([400, 'reason']);
    const res = await stack.admin('POST', `/v1/tenants/${id}/suspend`, { body: { reason: 'abuse report #42' } });
    expect(res.body).toMatchObject({ status: 'suspended', statusReason: 'abuse report #42' });
    const audit = await stack.database.db
      .selectFrom('audit_log')
      .select('data')
      .where('tenant_id', '=', fromPublicId('ten', id)!)
      .where('action', '=', 'tenant.suspended')
      .executeTakeFirstOrThrow();
    expect(audit.data).toMatchObject({ reason: 'abuse report #42', from: 'active', to: 'suspended' });
  });

  it("the platform's default tenant can be neither suspended nor deleted", async () => {
    for (const action of ['suspend', 'delete'] as const) {
      const [method, path, body] = ACTIONS[action]('default');
      const res = await stack.admin(method, path, { body });
      expect([res.status, res.body.code]).toEqual([409, 'default_tenant_protected']);
    }
    expect((await stack.admin('GET', '/v1/tenants/default')).body.status).toBe('active');
  });
});

describe("a tenant's own access follows its lifecycle", () => {
  it('suspended: tokens refused (403 tenant_suspended), platform routes still work; unsuspend restores access', async () => {
    const { tenantId, token, email, password } = await stack.signUpTenant({ orgName: 'Suspend Me' });
    expect((await request(stack.api.baseUrl, 'GET', '/v1/me', { token })).status).toBe(200);

    await stack.admin('POST', `/v1/tenants/${tenantId}/suspend`, { body: { reason: 'unpaid' } });
    const refused = await request(stack.api.baseUrl, 'GET', '/v1/me', { token });
    expect([refused.status, refused.body.code]).toEqual([403, 'tenant_suspended']);
    const login = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email, password } });
    expect([login.status, login.body.code]).toEqual([403, 'tenant_suspended']);
    expect((await stack.admin('GET', `/v1/tenants/${tenantId}`)).status).toBe(200);

    await stack.admin('POST', `/v1/tenants/${tenantId}/unsuspend`, { body: {} });
    expect((await request(stack.api.baseUrl, 'GET', '/v1/me', { token })).status).toBe(200);
  });

  it('pending deletion: tokens refused (403 tenant_pending_deletion); restore brings them back', async () => {
    const { tenantId, token } = await stack.signUpTenant({ orgName: 'Delete Me' });
    await stack.admin('DELETE', `/v1/tenants/${tenantId}`);
    const refused = await request(stack.api.baseUrl, 'GET', '/v1/me', { token });
    expect([refused.status, refused.body.code]).toEqual([403, 'tenant_pending_deletion']);
    await stack.admin('POST', `/v1/tenants/${tenantId}/restore`, { body: {} });
    expect((await request(stack.api.baseUrl, 'GET', '/v1/me', { token })).status).toBe(200);
  });
});

describe('purge after retention', () => {
  async function schemaExists(name: string) {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_namespace where nspname = ${name}`.execute(stack.database.db);
    return rows[0]!.n === 1;
  }

  it('nothing is purged before deleteAfter; after it, only a tombstone and the audit trail remain', async () => {
    const body = validSignup({ email: 'purged.owner@example.com', orgName: 'Purge Me' });
    const accepted = await request(stack.api.baseUrl, 'POST', '/v1/signup', { body });
    const { tenantId } = await waitForSignup(stack.api.baseUrl, accepted.body.signupId);
    await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email: body.email, password: body.password } });
    const uuid = fromPublicId('ten', tenantId)!;
    const tenant = await stack.database.db.selectFrom('tenants').selectAll().where('id', '=', uuid).executeTakeFirstOrThrow();
    await stack.admin('DELETE', `/v1/tenants/${tenantId}?reason=customer%20request`);

    await stack.worker!.purge(new Date(Date.now() + 29 * DAY));
    expect((await stack.admin('GET', `/v1/tenants/${tenantId}`)).body.status).toBe('pending_deletion');
    expect(await schemaExists(tenant.schema_name!)).toBe(true);

    // (Other tenants of this file past their retention go in the same pass.)
    expect(await stack.worker!.purge(new Date(Date.now() + 31 * DAY))).toBeGreaterThanOrEqual(1);
    expect(await schemaExists(tenant.schema_name!)).toBe(false);
    const tombstone = await stack.admin('GET', `/v1/tenants/${tenantId}`);
    expect(tombstone.body).toMatchObject({ status: 'deleted', name: 'Purge Me', deletedAt: expect.any(String) });
    const db = stack.database.db;
    const left = await sql<Record<string, number>>`
      select
        (select count(*)::int from users where email = 'purged.owner@example.com') as users,
        (select count(*)::int from memberships where tenant_id = ${uuid}) as memberships,
        (select count(*)::int from sessions where tenant_id = ${uuid}) as sessions,
        (select count(*)::int from billing_states where tenant_id = ${uuid}) as billing,
        (select count(*)::int from provisioning_steps where tenant_id = ${uuid}) as steps,
        (select count(*)::int from signups where tenant_id = ${uuid}) as signups`.execute(db);
    expect(left.rows[0]).toEqual({ users: 0, memberships: 0, sessions: 0, billing: 0, steps: 0, signups: 0 });
    const trail = await db.selectFrom('audit_log').select('action').where('tenant_id', '=', uuid).orderBy('id').execute();
    expect(trail.map((a) => a.action)).toEqual(['tenant.requested', 'tenant.provisioned', 'session.created', 'tenant.deletion_scheduled', 'tenant.purged']);

    // Purging is idempotent, and the email is free to sign up again.
    expect(await stack.worker!.purge(new Date(Date.now() + 60 * DAY))).toBe(0);
    const again = await request(stack.api.baseUrl, 'POST', '/v1/signup', { body });
    expect((await waitForSignup(stack.api.baseUrl, again.body.signupId)).status).toBe('ready');
  });

  it('a purge that dies half-way leaves the tenant whole; the next run finishes it', async () => {
    const { tenantId } = await stack.signUpTenant({ orgName: 'Interrupted Purge' });
    const uuid = fromPublicId('ten', tenantId)!;
    const schema = (await stack.database.db.selectFrom('tenants').select('schema_name').where('id', '=', uuid).executeTakeFirstOrThrow()).schema_name!;
    await stack.admin('DELETE', `/v1/tenants/${tenantId}`);
    // The purge fails after dropping the schema and deleting the members: the signup delete raises.
    await sql`create function test_fail_purge() returns trigger language plpgsql as $$ begin raise exception 'killed mid-purge (injected)'; end $$`.execute(
      stack.database.db,
    );
    await sql`create trigger fail_purge before delete on signups for each row execute function test_fail_purge()`.execute(stack.database.db);
    await expect(stack.worker!.purge(new Date(Date.now() + 31 * DAY))).rejects.toThrow(/killed mid-purge/);
    expect((await stack.admin('GET', `/v1/tenants/${tenantId}`)).body.status).toBe('pending_deletion');
    expect(await schemaExists(schema)).toBe(true);

    await sql`drop trigger fail_purge on signups`.execute(stack.database.db);
    await stack.worker!.purge(new Date(Date.now() + 31 * DAY));
    expect((await stack.admin('GET', `/v1/tenants/${tenantId}`)).body.status).toBe('deleted');
    expect(await schemaExists(schema)).toBe(false);
  });

  it('a tenant restored before its purge is left alone', async () => {
    const { tenantId } = await stack.signUpTenant({ orgName: 'Saved In Time' });
    await stack.admin('DELETE', `/v1/tenants/${tenantId}`);
    await stack.admin('POST', `/v1/tenants/${tenantId}/restore`, { body: {} });
    await stack.worker!.purge(new Date(Date.now() + 365 * DAY));
    expect((await stack.admin('GET', `/v1/tenants/${tenantId}`)).body.status).toBe('active');
  });
});
