import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { startWorker } from './support/apps.js';
import { request, validSignup, waitForSignup } from './support/http.js';
import { deleteRedisKeys } from './support/redis.js';
import { useStack } from './support/stack.js';

const stack = useStack();

async function tenantSchemas(): Promise<string[]> {
  const { rows } = await sql<{ nspname: string }>`select nspname from pg_namespace where nspname like 't\\_%' order by 1`.execute(stack.database.db);
  return rows.map((r) => r.nspname);
}

async function countWhere(table: 'tenants' | 'users' | 'signups' | 'memberships' | 'billing_states', column: string, value: string) {
  const row = await stack.database.db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where(sql.ref(column), '=', value)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

describe('signup → queued provisioning → login', () => {
  it('provisions a tenant with an owner, a trial, an RLS schema and an audit entry; the owner can log in', async () => {
    const body = validSignup({ email: 'Founder@Example.COM ', orgName: 'Rocket Labs' });
    const accepted = await request(stack.api.baseUrl, 'POST', '/v1/signup', { body });
    expect(accepted.status).toBe(202);
    expect(accepted.body).toEqual({ signupId: expect.stringMatching(/^sgn_[0-9a-f]{32}$/), status: 'pending' });

    const final = await waitForSignup(stack.api.baseUrl, accepted.body.signupId);
    expect(final).toEqual({ signupId: accepted.body.signupId, status: 'ready', tenantId: expect.stringMatching(/^ten_[0-9a-f]{32}$/) });

    const tenant = await stack.database.db.selectFrom('tenants').selectAll().where('slug', '=', 'rocket-labs').executeTakeFirstOrThrow();
    expect(tenant).toMatchObject({ name: 'Rocket Labs', status: 'active', plan: 'trial', isolation: 'schema' });
    const billing = await stack.database.db.selectFrom('billing_states').selectAll().where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
    expect(billing.subscription_state).toBe('trial');
    const trialDays = (new Date(billing.trial_ends_at as Date).getTime() - Date.now()) / 86_400_000;
    expect(trialDays).toBeGreaterThan(13.9);
    expect(trialDays).toBeLessThan(14.1);
    expect(await tenantSchemas()).toContain(tenant.schema_name);
    const audit = await stack.database.db.selectFrom('audit_log').selectAll().where('tenant_id', '=', tenant.id).orderBy('id').execute();
    expect(audit.map((a) => a.action)).toEqual(['tenant.requested', 'tenant.provisioned']);
    // The signup no longer holds the password hash once the owner has it.
    const signup = await stack.database.db.selectFrom('signups').select('password_hash').where('email', '=', 'founder@example.com').executeTakeFirstOrThrow();
    expect(signup.password_hash).toBeNull();

    const login = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email: '  FOUNDER@example.com', password: body.password } });
    expect(login.status).toBe(200);
    expect(login.body.tenantId).toBe(final.tenantId);
    expect(new Date(login.body.expiresAt).getTime()).toBeGreaterThan(Date.now());

    const me = await request(stack.api.baseUrl, 'GET', '/v1/me', { token: login.body.token });
    expect(me.status).toBe(200);
    expect(me.body).toEqual({
      user: { id: expect.stringMatching(/^usr_/), email: 'founder@example.com', role: 'owner' },
      tenant: { id: final.tenantId, slug: 'rocket-labs', name: 'Rocket Labs', status: 'active', plan: 'trial', isolation: 'schema' },
    });
  });

  it('two organisations with the same name get distinct slugs', async () => {
    const a = await request(stack.api.baseUrl, 'POST', '/v1/signup', { body: validSignup({ orgName: 'Twin Co' }) });
    const b = await request(stack.api.baseUrl, 'POST', '/v1/signup', { body: validSignup({ orgName: 'twin co' }) });
    await waitForSignup(stack.api.baseUrl, a.body.signupId);
    await waitForSignup(stack.api.baseUrl, b.body.signupId);
    const slugs = await stack.database.db.selectFrom('tenants').select('slug').where('slug', 'like', 'twin-co%').execute();
    expect(slugs).toHaveLength(2);
    expect(new Set(slugs.map((s) => s.slug)).size).toBe(2);
    expect(slugs.map((s) => s.slug)).toContain('twin-co');
  });

  it('30 concurrent signups of one email, in different cases and spacing → one signup, tenant, user and schema', async () => {
    const variants = Array.from({ length: 30 }, (_, i) => {
      const email = i % 3 === 0 ? 'race@example.com' : i % 3 === 1 ? ' RACE@Example.com' : 'Race@EXAMPLE.COM  ';
      return validSignup({ email, orgName: `Race Org ${i}` });
    });
    const schemasBefore = (await tenantSchemas()).length;
    const responses = await Promise.all(variants.map((body) => request(stack.api.baseUrl, 'POST', '/v1/signup', { body })));
    expect(responses.map((r) => r.status)).toEqual(Array(30).fill(202));
    const ids = new Set(responses.map((r) => r.body.signupId));
    expect(ids.size).toBe(1);
    await waitForSignup(stack.api.baseUrl, [...ids][0]!);

    expect(await countWhere('signups', 'email', 'race@example.com')).toBe(1);
    expect(await countWhere('users', 'email', 'race@example.com')).toBe(1);
    const user = await stack.database.db.selectFrom('users').select('id').where('email', '=', 'race@example.com').executeTakeFirstOrThrow();
    expect(await countWhere('memberships', 'user_id', user.id)).toBe(1);
    expect((await tenantSchemas()).length).toBe(schemasBefore + 1);
  });

  it('a repeat signup answers the same shape and changes neither the password nor the organisation', async () => {
    const first = validSignup({ email: 'repeat@example.com', orgName: 'Original Org' });
    const a = await request(stack.api.baseUrl, 'POST', '/v1/signup', { body: first });
    await waitForSignup(stack.api.baseUrl, a.body.signupId);

    const again = await request(stack.api.baseUrl, 'POST', '/v1/signup', {
      body: { email: 'Repeat@example.com', password: 'a-different-secret-99', orgName: 'Hijacked Org' },
    });
    expect(again.status).toBe(a.status);
    expect(Object.keys(again.body).sort()).toEqual(Object.keys(a.body).sort());
    expect(again.body.status).toBe('pending');

    const oldPassword = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email: 'repeat@example.com', password: first.password } });
    expect(oldPassword.status).toBe(200);
    const newPassword = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email: 'repeat@example.com', password: 'a-different-secret-99' } });
    expect(newPassword.status).toBe(401);
    const me = await request(stack.api.baseUrl, 'GET', '/v1/me', { token: oldPassword.body.token });
    expect(me.body.tenant.name).toBe('Original Org');
    expect(await stack.database.db.selectFrom('tenants').select('id').where('name', '=', 'Hijacked Org').execute()).toHaveLength(0);
  });
});

describe('permanent failure and compensation', () => {
  it('a step that always fails → compensation leaves no schema and no rows; the same email then signs up fine', async () => {
    // A real Postgres failure, injected from outside the code: the trial-billing insert raises.
    await sql`
      create function test_refuse_billing() returns trigger language plpgsql as $$
      begin raise exception 'billing store refuses writes (injected)'; end $$`.execute(stack.database.db);
    await sql`create trigger refuse_billing before insert on billing_states for each row execute function test_refuse_billing()`.execute(
      stack.database.db,
    );
    const schemasBefore = await tenantSchemas();
    const body = validSignup({ email: 'doomed@example.com', orgName: 'Doomed Org' });
    const accepted = await request(stack.api.baseUrl, 'POST', '/v1/signup', { body });
    const final = await waitForSignup(stack.api.baseUrl, accepted.body.signupId);
    expect(final.status).toBe('failed');
    expect(final.tenantId).toBeUndefined();

    expect(await tenantSchemas()).toEqual(schemasBefore);
    expect(await countWhere('users', 'email', 'doomed@example.com')).toBe(0);
    expect(await countWhere('tenants', 'name', 'Doomed Org')).toBe(0);
    const signup = await stack.database.db.selectFrom('signups').selectAll().where('email', '=', 'doomed@example.com').executeTakeFirstOrThrow();
    expect(signup.status).toBe('failed');
    expect(signup.last_error).toContain('billing store refuses writes');
    expect(signup.password_hash).toBeNull();
    const steps = await stack.database.db.selectFrom('provisioning_steps').selectAll().where('tenant_id', '=', signup.tenant_id).execute();
    expect(steps).toHaveLength(0);
    const audit = await stack.database.db.selectFrom('audit_log').select('action').where('tenant_id', '=', signup.tenant_id).orderBy('id').execute();
    expect(audit.map((a) => a.action)).toEqual(['tenant.requested', 'tenant.provision_failed']);

    await sql`drop trigger refuse_billing on billing_states`.execute(stack.database.db);
    const retry = await request(stack.api.baseUrl, 'POST', '/v1/signup', { body: { ...body, orgName: 'Second Try' } });
    expect(retry.status).toBe(202);
    expect(retry.body.signupId).toBe(accepted.body.signupId);
    const ready = await waitForSignup(stack.api.baseUrl, retry.body.signupId);
    expect(ready.status).toBe('ready');
    const login = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email: body.email, password: body.password } });
    expect(login.status).toBe(200);
    const me = await request(stack.api.baseUrl, 'GET', '/v1/me', { token: login.body.token });
    expect(me.body.tenant.name).toBe('Second Try');
  });
});

describe('reconciler', () => {
  it('re-enqueues a signup whose job was lost from Redis', async () => {
    // Stop consuming, accept a signup, then lose every job (as a Redis flush would).
    await stack.worker!.close();
    const accepted = await request(stack.api.baseUrl, 'POST', '/v1/signup', { body: validSignup({ orgName: 'Lost Job Inc' }) });
    expect(accepted.status).toBe(202);
    await deleteRedisKeys(stack.prefix);
    const status = await request(stack.api.baseUrl, 'GET', `/v1/signup/${accepted.body.signupId}`);
    expect(status.body.status).toBe('pending');

    // Make the intent look stale, then start a worker: its first reconcile pass finds it.
    await stack.database.db.updateTable('signups').set({ updated_at: new Date(Date.now() - 3_600_000) }).where('status', '=', 'pending').execute();
    stack.worker = await startWorker({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix });
    const final = await waitForSignup(stack.api.baseUrl, accepted.body.signupId);
    expect(final.status).toBe('ready');
  });
});
