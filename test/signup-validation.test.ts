import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningApi, startApi } from './support/apps.js';
import { type TestDatabase, createTestDatabase } from './support/database.js';
import { request, validSignup } from './support/http.js';
import { deleteRedisKeys, redisPrefix } from './support/redis.js';

let database: TestDatabase;
let hosted: RunningApi;
let selfHosted: RunningApi;
const prefix = redisPrefix();

beforeAll(async () => {
  database = await createTestDatabase();
  hosted = await startApi({ DATABASE_URL: database.url, REDIS_PREFIX: prefix, SIGNUP_RATE_LIMIT_PER_HOUR: '1000' });
  selfHosted = await startApi({ DATABASE_URL: database.url, REDIS_PREFIX: prefix, HOSTED_MODE: 'false', MULTI_TENANT_ENABLED: 'false' });
});

afterAll(async () => {
  await hosted?.close();
  await selfHosted?.close();
  await database?.drop();
  await deleteRedisKeys(prefix);
});

async function signupRowCount(): Promise<number> {
  const row = await database.db.selectFrom('signups').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

const long = (n: number, ch = 'a') => ch.repeat(n);

// Each case: a body that breaks exactly one rule, and the field the error must name.
const invalid: Array<[string, Record<string, unknown>, string]> = [
  ['email missing', { email: undefined }, 'email'],
  ['email without @', { email: 'not-an-email' }, 'email'],
  ['email over 254 chars', { email: `${long(250)}@x.io` }, 'email'],
  ['email not a string', { email: 42 }, 'email'],
  ['password missing', { password: undefined }, 'password'],
  ['password of 7 chars', { password: 'k7#mq2z' }, 'password'],
  ['password of 129 chars', { password: long(129, 'q') + '' }, 'password'],
  ['common password', { password: 'password123' }, 'password'],
  ['common password, other case', { password: 'PassWord123' }, 'password'],
  ['orgName missing', { orgName: undefined }, 'orgName'],
  ['orgName of 2 chars', { orgName: 'ab' }, 'orgName'],
  ['orgName of 65 chars', { orgName: long(65) }, 'orgName'],
  ['orgName with a slash', { orgName: 'acme/../etc' }, 'orgName'],
  ['orgName with a dot', { orgName: 'acme.inc' }, 'orgName'],
  ['orgName with markup', { orgName: '<script>' }, 'orgName'],
  ['isolation not a model', { isolation: 'vm' }, 'isolation'],
  ['database isolation needs a paid plan; signup is trial', { isolation: 'database' }, 'isolation'],
  ['cluster isolation is not available', { isolation: 'cluster' }, 'isolation'],
  ['unknown field', { admin: true }, '(body)'],
];

describe('POST /v1/signup validation', () => {
  it.each(invalid)('%s → 400 validation_failed naming the field, nothing written', async (_name, override, field) => {
    const res = await request(hosted.baseUrl, 'POST', '/v1/signup', { body: { ...validSignup(), ...override } });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    expect(typeof res.body.message).toBe('string');
    expect(res.body.fields.map((f: { field: string }) => f.field)).toContain(field);
    expect(await signupRowCount()).toBe(0);
  });

  it('accepts the boundaries: 8- and 128-char passwords, 3- and 64-char org names, unicode letters', async () => {
    for (const body of [
      validSignup({ password: 'k7#mq2zx' }),
      validSignup({ password: long(128, 'z') }),
      validSignup({ orgName: 'abc' }),
      validSignup({ orgName: long(64, 'b') }),
      validSignup({ orgName: 'Café Ünïcode_Team-2' }),
    ]) {
      const res = await request(hosted.baseUrl, 'POST', '/v1/signup', { body });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
    }
  });

  it('no composition rules: a long all-lowercase passphrase is accepted', async () => {
    const res = await request(hosted.baseUrl, 'POST', '/v1/signup', { body: validSignup({ password: 'plain lowercase words only' }) });
    expect(res.status).toBe(202);
  });

  it('a body that is not JSON → 400 invalid_json; wrong content type → 415', async () => {
    const before = await signupRowCount();
    const broken = await request(hosted.baseUrl, 'POST', '/v1/signup', { rawBody: '{"email": ' });
    expect(broken.status).toBe(400);
    expect(broken.body.code).toBe('invalid_json');
    const text = await request(hosted.baseUrl, 'POST', '/v1/signup', { rawBody: 'email=a', headers: { 'content-type': 'text/plain' } });
    expect(text.status).toBe(415);
    expect(text.body.code).toBe('unsupported_media_type');
    expect(await signupRowCount()).toBe(before);
  });

  it('a body over 1 MiB → 413', async () => {
    const res = await request(hosted.baseUrl, 'POST', '/v1/signup', { body: validSignup({ orgName: long(1_100_000) }) });
    expect(res.status).toBe(413);
    expect(res.body.code).toBe('payload_too_large');
  });

  it('a malformed signup id → 400; an unknown one → 404', async () => {
    const malformed = await request(hosted.baseUrl, 'GET', '/v1/signup/12345');
    expect(malformed.status).toBe(400);
    expect(malformed.body.code).toBe('validation_failed');
    const unknown = await request(hosted.baseUrl, 'GET', `/v1/signup/sgn_${'0'.repeat(32)}`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('signup_not_found');
  });
});

describe('hosted-mode gate', () => {
  it('without HOSTED_MODE, signup routes answer 404 and write nothing, even for valid input', async () => {
    const before = await signupRowCount();
    const post = await request(selfHosted.baseUrl, 'POST', '/v1/signup', { body: validSignup() });
    expect(post.status).toBe(404);
    expect(post.body.code).toBe('not_found');
    const get = await request(selfHosted.baseUrl, 'GET', `/v1/signup/sgn_${'0'.repeat(32)}`);
    expect(get.status).toBe(404);
    expect(await signupRowCount()).toBe(before);
  });

  it('the gate answers before validation: invalid input is 404 too, not 400', async () => {
    const res = await request(selfHosted.baseUrl, 'POST', '/v1/signup', { body: { email: 'x' } });
    expect(res.status).toBe(404);
  });

  it('hosted mode answers the same procedure over /trpc', async () => {
    const res = await request(hosted.baseUrl, 'POST', '/trpc/signup.create', { body: { email: 'x' } });
    expect(res.status).toBe(400);
    expect(res.body.error.data.code).toBe('validation_failed');
  });
});
