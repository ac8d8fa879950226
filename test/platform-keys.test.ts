import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { type RunningApi, startApi } from './support/apps.js';
import { type TestDatabase, createTestDatabase } from './support/database.js';
import { msUntil, request, waitFor } from './support/http.js';
import { deleteRedisKeys, redisPrefix } from './support/redis.js';

const prefix = redisPrefix();
const databases: TestDatabase[] = [];
const apis: RunningApi[] = [];

async function freshDatabase() {
  const db = await createTestDatabase();
  databases.push(db);
  return db;
}

/** Start an api with no PLATFORM_API_KEY, capturing what it prints as a secret. */
async function startWithoutKey(database: TestDatabase, printed: string[]) {
  const api = await startApi(
    { DATABASE_URL: database.url, REDIS_PREFIX: prefix, PLATFORM_API_KEY: '' },
    { printSecret: (line) => printed.push(line) },
  );
  apis.push(api);
  return api;
}

const keyIn = (lines: string[]) => lines.join('\n').match(/tpk_[A-Za-z0-9_-]{43}/)?.[0];

afterAll(async () => {
  for (const api of apis) await api.close();
  for (const db of databases) await db.drop();
  await deleteRedisKeys(prefix);
});

describe('bootstrap platform key', () => {
  let database: TestDatabase;
  let key: string;

  beforeAll(async () => {
    database = await freshDatabase();
  });

  it('the first start with no key configured generates one, prints it once and stores only its hash', async () => {
    const printed: string[] = [];
    const api = await startWithoutKey(database, printed);
    key = keyIn(printed)!;
    expect(key).toBeDefined();
    expect((await request(api.baseUrl, 'GET', '/v1/tenants', { token: key })).status).toBe(200);

    const rows = await database.db.selectFrom('platform_keys').selectAll().execute();
    expect(rows).toHaveLength(1);
    expect(Buffer.from(rows[0]!.key_hash).equals(createHash('sha256').update(key).digest())).toBe(true);
    expect(JSON.stringify(rows)).not.toContain(key.slice(4));
    const audit = await database.db.selectFrom('audit_log').select(['action', 'data']).where('action', '=', 'platform_key.created').execute();
    expect(audit).toHaveLength(1);
    expect(JSON.stringify(audit)).not.toContain(key.slice(4));
  });

  it('later starts print nothing and the stored key keeps working', async () => {
    const printed: string[] = [];
    const api = await startWithoutKey(database, printed);
    expect(printed).toEqual([]);
    expect((await request(api.baseUrl, 'GET', '/v1/tenants', { token: key })).status).toBe(200);
  });

  it('a revoked key is refused (by every instance, within 1 s)', async () => {
    await database.db.updateTable('platform_keys').set({ revoked_at: new Date() }).execute();
    for (const api of apis) expect(await msUntil(() => request(api.baseUrl, 'GET', '/v1/tenants', { token: key }), 401)).toBeLessThan(1_000);
    const res = await request(apis[0]!.baseUrl, 'GET', '/v1/tenants', { token: key });
    expect([res.status, res.body.code]).toEqual([401, 'invalid_platform_key']);
  });

  it('instances starting together on an empty database generate exactly one key', async () => {
    const db = await freshDatabase();
    const printed: string[] = [];
    await Promise.all([startWithoutKey(db, printed), startWithoutKey(db, printed), startWithoutKey(db, printed)]);
    expect(printed.filter((line) => line.includes('tpk_'))).toHaveLength(1);
    expect(await db.db.selectFrom('platform_keys').select('id').execute()).toHaveLength(1);
  });
});

describe('configured keys', () => {
  it('several keys may be active at once (rotation); others are refused; nothing is generated', async () => {
    const database = await freshDatabase();
    const printed: string[] = [];
    const api = await startApi(
      { DATABASE_URL: database.url, REDIS_PREFIX: prefix, PLATFORM_API_KEY: 'tpk_old-key-being-retired, tpk_new-key-rolling-out' },
      { printSecret: (line) => printed.push(line) },
    );
    apis.push(api);
    for (const token of ['tpk_old-key-being-retired', 'tpk_new-key-rolling-out']) {
      expect((await request(api.baseUrl, 'GET', '/v1/tenants', { token })).status).toBe(200);
    }
    expect((await request(api.baseUrl, 'GET', '/v1/tenants', { token: 'tpk_old-key-being-retire' })).status).toBe(401);
    expect(printed).toEqual([]);
    expect(await database.db.selectFrom('platform_keys').select('id').execute()).toHaveLength(0);
  });
});

describe('platform-key command (rotation without a restart)', () => {
  it('creates a key that works at once, lists it, and revokes it', async () => {
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    const { REPO_ROOT } = await import('./support/process.js');
    const database = await freshDatabase();
    const api = await startApi({ DATABASE_URL: database.url, REDIS_PREFIX: prefix, PLATFORM_API_KEY: 'tpk_configured-key' });
    apis.push(api);
    const cli = (...args: string[]) =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', 'apps/api/src/cli/platform-key.ts', ...args], {
        cwd: REPO_ROOT,
        env: { PATH: process.env.PATH ?? '', DATABASE_URL: database.url },
      });

    const created = await cli('create', 'billing-system');
    const key = keyIn([created.stdout])!;
    const id = created.stdout.match(/created platform key ([0-9a-f-]{36})/)![1]!;
    expect((await request(api.baseUrl, 'GET', '/v1/tenants', { token: key })).status).toBe(200);
    expect((await cli('list')).stdout).toMatch(new RegExp(`${id}\\s+billing-system\\s+created .* active`));

    await cli('revoke', id);
    expect(await msUntil(() => request(api.baseUrl, 'GET', '/v1/tenants', { token: key }), 401)).toBeLessThan(1_000);
    expect((await cli('list')).stdout).toContain('revoked');
    const audit = await database.db.selectFrom('audit_log').select('action').where('action', 'like', 'platform_key.%').orderBy('id').execute();
    expect(audit.map((a) => a.action)).toEqual(['platform_key.created', 'platform_key.revoked']);
    await expect(cli('revoke', id)).rejects.toMatchObject({ code: 2 });
    await expect(cli('create')).rejects.toMatchObject({ code: 2 });
  });
});

/**
 * The stored keys are held in memory (apps/api/src/services/platform-keys.ts), across two
 * api instances on one database: a platform call needs no key query, and every change to
 * the keys is honoured by both within 1 s, whoever makes it.
 */
describe('stored keys held in memory', () => {
  let database: TestDatabase;
  let first: RunningApi;
  let second: RunningApi;
  const sha256 = (key: string) => createHash('sha256').update(key).digest();
  const list = (api: RunningApi, token: string) => request(api.baseUrl, 'GET', '/v1/tenants?limit=1', { token });
  async function lookups(api: RunningApi): Promise<Record<'hit' | 'miss' | 'bypass', number>> {
    const text = await (await fetch(api.metricsUrl)).text();
    const value = (result: string) => Number(new RegExp(`^tenantry_platform_key_lookups_total\\{result="${result}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
    return { hit: value('hit'), miss: value('miss'), bypass: value('bypass') };
  }
  const listeners = async () =>
    Number(
      (
        await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = 'tenantry-api-changes'`.execute(
          database.db,
        )
      ).rows[0]!.n,
    );

  beforeAll(async () => {
    database = await freshDatabase();
    await database.db.insertInto('platform_keys').values({ name: 'stored', key_hash: sha256('tpk_stored-key') }).execute();
    first = await startApi({ DATABASE_URL: database.url, REDIS_PREFIX: prefix, PLATFORM_API_KEY: 'tpk_configured-key' });
    second = await startApi({ DATABASE_URL: database.url, REDIS_PREFIX: prefix, PLATFORM_API_KEY: 'tpk_configured-key' });
    apis.push(first, second);
    await waitFor(async () => ((await listeners()) === 2 ? true : undefined), 5_000);
  });

  it('after the first call, the keys come from memory', async () => {
    expect((await list(second, 'tpk_stored-key')).status).toBe(200);
    const before = await lookups(second);
    for (let i = 0; i < 5; i++) expect((await list(second, 'tpk_stored-key')).status).toBe(200);
    const after = await lookups(second);
    expect([after.hit - before.hit, after.miss - before.miss, after.bypass - before.bypass]).toEqual([5, 0, 0]);
  });

  it('a key made a moment ago works at once, even before its announcement arrives', async () => {
    expect((await list(first, 'tpk_stored-key')).status).toBe(200);
    // Made with the trigger off, so no announcement ever comes: only the second look finds it.
    await database.db.transaction().execute(async (trx) => {
      await sql`alter table platform_keys disable trigger platform_keys_announce_change`.execute(trx);
      await trx.insertInto('platform_keys').values({ name: 'unannounced', key_hash: sha256('tpk_unannounced-key') }).execute();
      await sql`alter table platform_keys enable trigger platform_keys_announce_change`.execute(trx);
    });
    expect((await list(first, 'tpk_unannounced-key')).status).toBe(200);
    expect((await list(first, 'tpk_never-made')).status).toBe(401);
  });

  it('a key revoked in SQL is refused by both instances within 1 s; the others keep working', async () => {
    await database.db.insertInto('platform_keys').values({ name: 'doomed', key_hash: sha256('tpk_doomed-key') }).execute();
    for (const api of [first, second]) for (let i = 0; i < 2; i++) expect((await list(api, 'tpk_doomed-key')).status).toBe(200);
    await database.db.updateTable('platform_keys').set({ revoked_at: new Date() }).where('name', '=', 'doomed').execute();
    for (const api of [first, second]) {
      expect(await msUntil(() => list(api, 'tpk_doomed-key'), 401)).toBeLessThan(1_000);
      expect((await list(api, 'tpk_stored-key')).status).toBe(200);
      expect((await list(api, 'tpk_configured-key')).status).toBe(200);
    }
  });

  it('while the change feed is away every call reads the keys: a revocation then is never missed', async () => {
    await database.db.insertInto('platform_keys').values({ name: 'revoked-while-away', key_hash: sha256('tpk_revoked-while-away') }).execute();
    for (let i = 0; i < 2; i++) expect((await list(second, 'tpk_revoked-while-away')).status).toBe(200);
    // Both instances' LISTEN connections, killed by the server (as a Postgres restart or failover would).
    const { rows } = await sql<{ n: number }>`
      select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
      where datname = current_database() and application_name = 'tenantry-api-changes'`.execute(database.db);
    expect(rows[0]!.n).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await database.db.updateTable('platform_keys').set({ revoked_at: new Date() }).where('name', '=', 'revoked-while-away').execute();
    expect((await list(second, 'tpk_revoked-while-away')).status).toBe(401);

    // Back: listening again, and serving from memory.
    await waitFor(async () => ((await listeners()) === 2 ? true : undefined), 5_000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await list(second, 'tpk_stored-key');
    const before = await lookups(second);
    expect((await list(second, 'tpk_stored-key')).status).toBe(200);
    expect((await lookups(second)).hit - before.hit).toBe(1);
    // What was held before the loss is not served again: the revocation made meanwhile stands.
    expect((await list(second, 'tpk_revoked-while-away')).status).toBe(401);
  });
});
