import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningApi, startApi } from '../support/apps.js';
import { type TestDatabase, createTestDatabase } from '../support/database.js';
import { TEST_REDIS_URL } from '../support/env.js';
import { request, validSignup, waitFor } from '../support/http.js';
import { spawnApp } from '../support/process.js';
import { deleteRedisKeys, redisPrefix } from '../support/redis.js';

let database: TestDatabase;
let api: RunningApi;
const prefix = redisPrefix();
let workerEnv: Record<string, string>;

beforeAll(async () => {
  database = await createTestDatabase();
  api = await startApi({ DATABASE_URL: database.url, REDIS_PREFIX: prefix, SIGNUP_RATE_LIMIT_PER_HOUR: '1000' });
  workerEnv = {
    DATABASE_URL: database.url,
    REDIS_URL: TEST_REDIS_URL,
    REDIS_PREFIX: prefix,
    WORKER_CONCURRENCY: '4',
    // A killed worker's jobs are redelivered once their lock expires: keep that short here.
    WORKER_LOCK_DURATION_MS: '2000',
    WORKER_METRICS_PORT: '0',
    SHUTDOWN_TIMEOUT_MS: '3000',
    LOG_LEVEL: 'info',
  };
});

afterAll(async () => {
  await api?.close();
  await database?.drop();
  await deleteRedisKeys(prefix);
});

async function startWorkerProcess() {
  const worker = spawnApp('worker', workerEnv);
  await waitFor(async () => (worker.output().includes('worker started') ? true : undefined), 20_000);
  return worker;
}

async function countReady(): Promise<number> {
  const row = await database.db
    .selectFrom('signups')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('status', '=', 'ready')
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

async function submit(n: number, label: string): Promise<string[]> {
  const responses = await Promise.all(
    Array.from({ length: n }, (_, i) => request(api.baseUrl, 'POST', '/v1/signup', { body: validSignup({ orgName: `${label} ${i}` }) })),
  );
  expect(responses.map((r) => `${r.status} ${r.body?.code ?? ""}`.trim())).toEqual(Array(n).fill("202"));
  return responses.map((r) => r.body.signupId);
}

/** Every signup ready, and exactly one of everything per signup: nothing orphaned, nothing doubled. */
async function expectExactlyOneTenantPerSignup(expected: number) {
  const counts = await sql<{ signups: string; tenants: string; users: string; memberships: string; billing: string; provisioned: string; schemas: string }>`
    select
      (select count(*) from signups where status = 'ready') as signups,
      (select count(*) from tenants where status = 'active' and not is_default) as tenants,
      (select count(*) from users) as users,
      (select count(*) from memberships) as memberships,
      (select count(*) from billing_states) as billing,
      (select count(*) from audit_log where action = 'tenant.provisioned') as provisioned,
      (select count(*) from pg_namespace where nspname like 't\\_%') as schemas`.execute(database.db);
  expect(Object.values(counts.rows[0]!).map(Number)).toEqual(Array(7).fill(expected));
  const orphans = await sql<{ nspname: string }>`
    select nspname from pg_namespace
    where nspname like 't\\_%' and nspname not in (select schema_name from tenants where schema_name is not null)`.execute(database.db);
  expect(orphans.rows).toEqual([]);
}

describe('worker faults', () => {
  it('a worker SIGKILLed with a batch in flight → after restart every signup is ready, no orphan or duplicate', async () => {
    const ids = await submit(40, 'Crash');
    const worker = await startWorkerProcess();
    // Kill it once it is well into the batch, with jobs active.
    await waitFor(async () => ((await countReady()) >= 5 ? true : undefined), 20_000, 5);
    worker.kill('SIGKILL');
    await new Promise((resolve) => worker.once('exit', resolve));
    expect(await countReady()).toBeLessThan(ids.length);

    const restarted = await startWorkerProcess();
    try {
      await waitFor(async () => ((await countReady()) === ids.length ? true : undefined), 40_000);
      await expectExactlyOneTenantPerSignup(ids.length);
    } finally {
      restarted.kill('SIGKILL');
    }
  });

  it('SIGTERM mid-batch → the worker exits within its deadline; the batch completes after restart, each tenant exactly once', async () => {
    const before = await countReady();
    const ids = await submit(30, 'Term');
    const worker = await startWorkerProcess();
    await waitFor(async () => ((await countReady()) >= before + 3 ? true : undefined), 20_000, 5);
    const signalled = Date.now();
    worker.kill('SIGTERM');
    const code = await new Promise((resolve) => worker.once('exit', resolve));
    expect(code).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(3_000 + 5_000);

    const restarted = await startWorkerProcess();
    try {
      await waitFor(async () => ((await countReady()) === before + ids.length ? true : undefined), 40_000);
      await expectExactlyOneTenantPerSignup(before + ids.length);
    } finally {
      restarted.kill('SIGKILL');
    }
  });
});
