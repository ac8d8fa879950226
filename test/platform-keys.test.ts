import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningApi, startApi } from './support/apps.js';
import { type TestDatabase, createTestDatabase } from './support/database.js';
import { request } from './support/http.js';
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

  it('a revoked key is refused', async () => {
    await database.db.updateTable('platform_keys').set({ revoked_at: new Date() }).execute();
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
    expect((await request(api.baseUrl, 'GET', '/v1/tenants', { token: key })).status).toBe(401);
    expect((await cli('list')).stdout).toContain('revoked');
    const audit = await database.db.selectFrom('audit_log').select('action').where('action', 'like', 'platform_key.%').orderBy('id').execute();
    expect(audit.map((a) => a.action)).toEqual(['platform_key.created', 'platform_key.revoked']);
    await expect(cli('revoke', id)).rejects.toMatchObject({ code: 2 });
    await expect(cli('create')).rejects.toMatchObject({ code: 2 });
  });
});
