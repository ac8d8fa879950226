import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { request, validSignup, waitFor, waitForSignup } from './support/http.js';
import { useStack } from './support/stack.js';

const stack = useStack();
const owner = validSignup({ email: 'Owner@Auth.Example', orgName: 'Auth Org' });
let token: string;

beforeAll(async () => {
  const accepted = await request(stack.api.baseUrl, 'POST', '/v1/signup', { body: owner });
  await waitForSignup(stack.api.baseUrl, accepted.body.signupId);
});

describe('login and sessions', () => {
  it('logs in with the email in any case; the token is opaque and stored only as a hash', async () => {
    const res = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email: 'OWNER@auth.example', password: owner.password } });
    expect(res.status).toBe(200);
    token = res.body.token;
    expect(token.length).toBeGreaterThan(40);
    const sessions = await stack.database.db.selectFrom('sessions').select('token_hash').execute();
    expect(sessions).toHaveLength(1);
    expect(Buffer.from(sessions[0]!.token_hash).equals(createHash('sha256').update(token).digest())).toBe(true);
    const stored = JSON.stringify(await stack.database.db.selectFrom('sessions').selectAll().execute());
    expect(stored).not.toContain(token);
    const audit = await stack.database.db.selectFrom('audit_log').select('action').where('action', '=', 'session.created').execute();
    expect(audit).toHaveLength(1);
  });

  it('wrong password and unknown email are the same 401', async () => {
    const wrong = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email: owner.email, password: 'not-the-password' } });
    const unknown = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email: 'nobody@auth.example', password: owner.password } });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.body).toEqual(unknown.body);
    expect(wrong.body.code).toBe('invalid_credentials');
  });

  it('login input is validated', async () => {
    const res = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email: '' } });
    expect(res.status).toBe(400);
    expect(res.body.fields.map((f: { field: string }) => f.field).sort()).toEqual(['email', 'password']);
  });

  it('/v1/me needs a valid, unexpired token', async () => {
    expect((await request(stack.api.baseUrl, 'GET', '/v1/me')).body.code).toBe('unauthenticated');
    const bogus = await request(stack.api.baseUrl, 'GET', '/v1/me', { token: 'tnt_s_forged' });
    expect(bogus.status).toBe(401);
    expect(bogus.body.code).toBe('invalid_token');
    expect((await request(stack.api.baseUrl, 'GET', '/v1/me', { token })).status).toBe(200);

    // Expired behind the api's back (SQL): the api hears of it through Postgres's
    // announcement, which arrives asynchronously, so the contract is "within 1 s", not "at once".
    await stack.database.db.updateTable('sessions').set({ expires_at: new Date(Date.now() - 1000) }).execute();
    const expired = await waitFor(async () => {
      const res = await request(stack.api.baseUrl, 'GET', '/v1/me', { token });
      return res.status === 200 ? undefined : res;
    }, 1_000, 20);
    expect(expired.status).toBe(401);
    expect(expired.body.code).toBe('invalid_token');
  });

  it('the same procedures answer over /trpc', async () => {
    const login = await request(stack.api.baseUrl, 'POST', '/trpc/auth.login', { body: { email: owner.email, password: owner.password } });
    expect(login.status).toBe(200);
    const me = await request(stack.api.baseUrl, 'GET', '/trpc/auth.me', { token: login.body.result.data.token });
    expect(me.status).toBe(200);
    expect(me.body.result.data.tenant.name).toBe('Auth Org');
  });

  it('a refused tenant call over /trpc carries its kind in tRPC\'s own error code, not INTERNAL_SERVER_ERROR', async () => {
    const refused = await request(stack.api.baseUrl, 'GET', '/trpc/auth.me', { token: 'tnt_s_not-a-real-token' });
    expect(refused.status).toBe(401);
    // -32001 is tRPC's UNAUTHORIZED (INTERNAL_SERVER_ERROR is -32603): what tRPC clients branch on.
    expect(refused.body.error.code).toBe(-32001);
    expect(refused.body.error.data).toMatchObject({ code: 'invalid_token', httpStatus: 401 });
  });
});

describe('health', () => {
  it('/healthz and /readyz answer 200 when Postgres and Redis are up', async () => {
    expect((await request(stack.api.baseUrl, 'GET', '/healthz')).status).toBe(200);
    const ready = await request(stack.api.baseUrl, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.checks).toEqual({ postgres: 'ok', redis: 'ok' });
  });

  it('unknown routes are 404 with a code; a wrong method is 405', async () => {
    const missing = await request(stack.api.baseUrl, 'GET', '/v1/nope');
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe('not_found');
    const method = await request(stack.api.baseUrl, 'DELETE', '/v1/signup');
    expect(method.status).toBe(405);
    expect(method.body.code).toBe('method_not_allowed');
  });
});

// Last: it leaves the owner's email locked out from this IP.
describe('login limiter', () => {
  it('password guessing is limited per email and IP: the 11th attempt in a row is 429, other emails are unaffected', async () => {
    const target = { email: 'OWNER@auth.example', password: 'guess' };
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) {
      statuses.push((await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { ...target, password: `guess-${i}` } })).status);
    }
    // An earlier wrong-password test spent one attempt; successful logins reset the count.
    expect(statuses.slice(0, 9)).toEqual(Array(9).fill(401));
    expect(statuses.at(-1)).toBe(429);
    const blocked = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email: owner.email, password: owner.password } });
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    const other = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email: 'someone-else@auth.example', password: 'x' } });
    expect(other.status).toBe(401);
  });

});
