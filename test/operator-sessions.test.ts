import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { PLATFORM_KEY } from './support/apps.js';
import { request } from './support/http.js';
import { useStack } from './support/stack.js';

/**
 * Operator sessions (the dashboard's sign-in) at the HTTP level: the cookie, CSRF on
 * writes, expiry, revocation with the platform key, sign-out, and the audit trail.
 */
const stack = useStack({ worker: false, api: { OPERATOR_SESSION_TTL_MINUTES: '15' } });

const COOKIE = '__Host-tenantry_operator';

async function trpc(method: 'GET' | 'POST', procedure: string, options: { bearer?: string; cookie?: string; csrf?: string; input?: unknown } = {}) {
  const headers: Record<string, string> = {};
  if (options.bearer) headers.authorization = `Bearer ${options.bearer}`;
  if (options.cookie) headers.cookie = options.cookie;
  if (options.csrf) headers['x-csrf-token'] = options.csrf;
  let url = `${stack.api.baseUrl}/trpc/${procedure}`;
  if (method === 'POST') headers['content-type'] = 'application/json';
  else if (options.input !== undefined) url += `?input=${encodeURIComponent(JSON.stringify(options.input))}`;
  const res = await fetch(url, { method, headers, body: method === 'POST' ? JSON.stringify(options.input ?? {}) : undefined });
  return { status: res.status, setCookie: res.headers.get('set-cookie'), cacheControl: res.headers.get('cache-control'), body: (await res.json()) as any };
}

async function signIn(key = PLATFORM_KEY) {
  const res = await trpc('POST', 'operator.signIn', { bearer: key });
  expect(res.status).toBe(200);
  const token = /^__Host-tenantry_operator=([^;]+);/.exec(res.setCookie ?? '')?.[1];
  expect(token).toBeDefined();
  return { cookie: `${COOKIE}=${token}`, token: token!, csrf: res.body.result.data.csrfToken as string, view: res.body.result.data, setCookie: res.setCookie! };
}

const sha256 = (value: string) => createHash('sha256').update(value).digest();
const tenantId = async () => (await stack.admin('GET', '/v1/tenants?limit=1')).body.items[0].id as string;

describe('operator sessions', () => {
  it('sign-in sets a short-lived __Host- cookie (HttpOnly, Secure, SameSite=Strict); only its hash is stored; audited with the key id', async () => {
    const before = Date.now();
    const { token, view, setCookie } = await signIn();
    expect(setCookie).toMatch(/^__Host-tenantry_operator=tnt_o_[A-Za-z0-9_-]{43}; Path=\/; Max-Age=900; HttpOnly; Secure; SameSite=Strict$/);
    expect(view).toEqual({ keyId: 'env:1', expiresAt: expect.any(String), csrfToken: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
    const expires = Date.parse(view.expiresAt);
    expect(expires).toBeGreaterThanOrEqual(before + 15 * 60_000 - 1_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 15 * 60_000 + 1_000);

    const rows = await stack.database.db.selectFrom('operator_sessions').selectAll().execute();
    const row = rows.find((r) => r.token_hash.equals(sha256(token)));
    expect(row).toMatchObject({ key_id: 'env:1' });
    expect(row!.key_hash.equals(sha256(PLATFORM_KEY))).toBe(true);
    expect(JSON.stringify(rows)).not.toContain(token);

    const audit = await stack.admin('GET', '/v1/audit?limit=5');
    const entry = audit.body.items.find((e: { action: string; data: { sessionId: string } }) => e.action === 'operator_session.created' && e.data.sessionId === row!.id);
    expect(entry).toMatchObject({ actor: 'platform:env:1', data: { keyId: 'env:1', expiresAt: view.expiresAt } });
    expect(JSON.stringify(audit.body)).not.toContain(token);
  });

  it('sign-in needs the platform key itself: a wrong key, a session cookie or a tenant token get no session', async () => {
    const count = async () => Number((await sql<{ n: string }>`select count(*) as n from operator_sessions`.execute(stack.database.db)).rows[0]!.n);
    const n = await count();
    const wrong = await trpc('POST', 'operator.signIn', { bearer: 'tpk_wrong' });
    expect([wrong.status, wrong.body.error.data.code, wrong.setCookie]).toEqual([401, 'invalid_platform_key', null]);
    const { cookie, csrf } = await signIn();
    const viaCookie = await trpc('POST', 'operator.signIn', { cookie, csrf });
    expect([viaCookie.status, viaCookie.body.error.data.code, viaCookie.setCookie]).toEqual([401, 'unauthenticated', null]);
    expect(await count()).toBe(n + 1);
  });

  it('the cookie reads platform routes; a write needs the CSRF token of that very session', async () => {
    const id = await tenantId();
    const a = await signIn();
    const b = await signIn();
    expect((await request(stack.api.baseUrl, 'GET', `/v1/tenants/${id}`, { headers: { cookie: a.cookie } })).status).toBe(200);
    expect((await trpc('GET', 'tenants.list', { cookie: a.cookie, input: { limit: 1 } })).status).toBe(200);

    const body = { displayName: 'Renamed By Cookie' };
    for (const csrf of [undefined, '', b.csrf, a.csrf.slice(0, -1), a.token]) {
      const res = await request(stack.api.baseUrl, 'PATCH', `/v1/tenants/${id}`, { body, headers: { cookie: a.cookie, ...(csrf !== undefined ? { 'x-csrf-token': csrf } : {}) } });
      expect([res.status, res.body.code]).toEqual([403, 'csrf_token_invalid']);
    }
    expect((await stack.admin('GET', `/v1/tenants/${id}`)).body.name).not.toBe('Renamed By Cookie');
    const ok = await request(stack.api.baseUrl, 'PATCH', `/v1/tenants/${id}`, { body, headers: { cookie: a.cookie, 'x-csrf-token': a.csrf } });
    expect([ok.status, ok.body.name]).toEqual([200, 'Renamed By Cookie']);
    // The change is audited as the platform key the session came from.
    const audit = await stack.admin('GET', `/v1/audit?tenantId=${id}&limit=1`);
    expect(audit.body.items[0]).toMatchObject({ action: 'tenant.updated', actor: 'platform:env:1' });
  });

  it('the session query returns its expiry and CSRF token; without a session it is 401', async () => {
    const a = await signIn();
    const current = await trpc('GET', 'operator.session', { cookie: a.cookie });
    expect([current.status, current.body.result.data]).toEqual([200, a.view]);
    expect(current.cacheControl).toBe('no-store');
    const none = await trpc('GET', 'operator.session');
    expect([none.status, none.body.error.data.code]).toEqual([401, 'unauthenticated']);
    const bogus = await trpc('GET', 'operator.session', { cookie: `${COOKIE}=tnt_o_${randomBytes(32).toString('base64url')}` });
    expect([bogus.status, bogus.body.error.data.code]).toEqual([401, 'session_expired']);
    expect(bogus.setCookie).toMatch(/^__Host-tenantry_operator=; Path=\/; Max-Age=0;/);
  });

  it('a bearer credential is judged as a platform key even when a cookie comes along', async () => {
    const a = await signIn();
    const res = await request(stack.api.baseUrl, 'GET', '/v1/tenants', { token: 'tpk_wrong', headers: { cookie: a.cookie } });
    expect([res.status, res.body.code]).toEqual([401, 'invalid_platform_key']);
  });

  it('an expired session is refused and its cookie cleared', async () => {
    const a = await signIn();
    await sql`update operator_sessions set expires_at = now() - interval '1 second' where token_hash = ${sha256(a.token)}`.execute(stack.database.db);
    const res = await fetch(`${stack.api.baseUrl}/v1/tenants`, { headers: { cookie: a.cookie } });
    expect([res.status, ((await res.json()) as { code: string }).code]).toEqual([401, 'session_expired']);
    expect(res.headers.get('set-cookie')).toMatch(/Max-Age=0/);
  });

  it('revoking the platform key ends the sessions it opened', async () => {
    const key = `tpk_${randomBytes(32).toString('base64url')}`;
    const stored = await stack.database.db.insertInto('platform_keys').values({ name: 'dashboard-test', key_hash: sha256(key) }).returning('id').executeTakeFirstOrThrow();
    const a = await signIn(key);
    expect(a.view.keyId).toBe(stored.id);
    expect((await request(stack.api.baseUrl, 'GET', '/v1/tenants', { headers: { cookie: a.cookie } })).status).toBe(200);
    await stack.database.db.updateTable('platform_keys').set({ revoked_at: new Date() }).where('id', '=', stored.id).execute();
    const res = await request(stack.api.baseUrl, 'GET', '/v1/tenants', { headers: { cookie: a.cookie } });
    expect([res.status, res.body.code]).toEqual([401, 'session_expired']);
  });

  it('sign-out needs the CSRF token, deletes the session, clears the cookie and is audited', async () => {
    const a = await signIn();
    const forged = await trpc('POST', 'operator.signOut', { cookie: a.cookie });
    expect([forged.status, forged.body.error.data.code]).toEqual([403, 'csrf_token_invalid']);
    expect((await request(stack.api.baseUrl, 'GET', '/v1/tenants', { headers: { cookie: a.cookie } })).status).toBe(200);

    const out = await trpc('POST', 'operator.signOut', { cookie: a.cookie, csrf: a.csrf });
    expect([out.status, out.body.result.data]).toEqual([200, { signedOut: true }]);
    expect(out.setCookie).toMatch(/^__Host-tenantry_operator=; Path=\/; Max-Age=0; HttpOnly; Secure; SameSite=Strict$/);
    expect(await stack.database.db.selectFrom('operator_sessions').select('id').where('token_hash', '=', sha256(a.token)).executeTakeFirst()).toBeUndefined();
    const res = await request(stack.api.baseUrl, 'GET', '/v1/tenants', { headers: { cookie: a.cookie } });
    expect([res.status, res.body.code]).toEqual([401, 'session_expired']);
    const audit = await stack.admin('GET', '/v1/audit?limit=3');
    expect(audit.body.items[0]).toMatchObject({ action: 'operator_session.ended', actor: 'platform:env:1', data: { keyId: 'env:1', reason: 'signed_out' } });
  });

  it('without a cookie or bearer, platform routes still answer 401 unauthenticated', async () => {
    const res = await request(stack.api.baseUrl, 'GET', '/v1/tenants');
    expect([res.status, res.body.code]).toEqual([401, 'unauthenticated']);
  });
});
