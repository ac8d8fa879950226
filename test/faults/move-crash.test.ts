import { type Isolation } from '@tenantry/domain';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_KEY, type RunningApi, TENANT_SECRET_KEY, startApi } from '../support/apps.js';
import { type TestDatabase, createTestDatabase } from '../support/database.js';
import { TEST_REDIS_URL } from '../support/env.js';
import { request, waitFor } from '../support/http.js';
import { type MoveTenant, NumberedWriter, connectToPlacement, createTenant, numberedCounts, tenantRow } from '../support/moves.js';
import { spawnApp } from '../support/process.js';
import { deleteRedisKeys, redisPrefix } from '../support/redis.js';
import type { Stack } from '../support/stack.js';
import { dropTenantDatabasesOf } from '../support/tenant-databases.js';
import { destroyClusterRoot, makeClusterRoot } from '../support/tenant-clusters.js';

/**
 * A worker SIGKILLed at each step of a move in turn — copying, cutover, verifying — while
 * the tenant keeps writing: at that moment the tenant is whole on its source (the tenant
 * row names it, every acknowledged write is in it, reads work), and a new worker resumes
 * the move to done with every acknowledged write exactly once on the target.
 *
 * Small copy batches make each step last long enough to be caught; the cutover is caught
 * by holding a write open at the source, which the freeze waits for.
 */
const root = makeClusterRoot();
let database: TestDatabase;
let api: RunningApi;
const prefix = redisPrefix();
let workerEnv: Record<string, string>;
const workers: Array<ReturnType<typeof spawnApp>> = [];
const SEEDED = 3_000;

/** Enough of a Stack for the move helpers. */
const stack = {} as Stack;

beforeAll(async () => {
  database = await createTestDatabase();
  api = await startApi({ DATABASE_URL: database.url, REDIS_PREFIX: prefix });
  Object.assign(stack, {
    database,
    api,
    prefix,
    admin: (method: string, path: string, opts: { body?: unknown } = {}) => request(api.baseUrl, method, path, { body: opts.body, token: PLATFORM_KEY }),
  });
  workerEnv = {
    DATABASE_URL: database.url,
    REDIS_URL: TEST_REDIS_URL,
    REDIS_PREFIX: prefix,
    // A killed worker's jobs are redelivered once their lock expires: keep that short here.
    WORKER_LOCK_DURATION_MS: '2000',
    WORKER_METRICS_PORT: '0',
    SHUTDOWN_TIMEOUT_MS: '3000',
    LOG_LEVEL: 'info',
    TENANT_SECRET_KEY,
    TENANT_CLUSTER_DATA_DIR: root,
    TENANT_CLUSTER_SETTINGS: 'shared_buffers=8MB max_connections=20',
    MOVE_BATCH_ROWS: '50',
    MOVE_FREEZE_TIMEOUT_MS: '60000',
    MOVE_SOURCE_GRACE_MS: '500',
  };
});

afterAll(async () => {
  for (const worker of workers) if (worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL');
  await api?.close();
  if (database) await dropTenantDatabasesOf(database.name);
  destroyClusterRoot(root);
  await database?.drop();
  await deleteRedisKeys(prefix);
});

async function startWorkerProcess() {
  const worker = spawnApp('worker', workerEnv);
  workers.push(worker);
  await waitFor(async () => (worker.output().includes('worker started') ? true : undefined), 30_000);
  return worker;
}

const exited = (worker: ReturnType<typeof spawnApp>) =>
  worker.exitCode !== null || worker.signalCode !== null ? Promise.resolve() : new Promise<void>((resolve) => worker.once('exit', () => resolve()));

async function moveRow(moveId: string) {
  return database.db.selectFrom('tenant_moves').selectAll().where('id', '=', moveId).executeTakeFirstOrThrow();
}

describe('a worker killed at each step of a move', () => {
  let tenant: MoveTenant;

  beforeAll(async () => {
    const worker = await startWorkerProcess();
    try {
      tenant = await createTenant(stack, { plan: 'enterprise', isolation: 'schema' }, 90_000);
    } finally {
      worker.kill('SIGTERM');
      await exited(worker);
    }
    const row = await tenantRow(stack, tenant);
    await sql`insert into ${sql.id(row.schema_name!, 'documents')} (tenant_id, collection, data)
      select ${tenant.id}::uuid, 'seed', jsonb_build_object('i', g) from generate_series(1, ${SEEDED}) g`.execute(database.db);
  }, 120_000);

  const cases: Array<[step: 'copying' | 'cutover' | 'verifying', from: Isolation, to: Isolation]> = [
    ['copying', 'schema', 'database'],
    ['cutover', 'database', 'cluster'],
    ['verifying', 'cluster', 'schema'],
  ];

  it.each(cases)('killed while %s (%s → %s): whole on its source at that moment; a new worker resumes it to done, no acknowledged write lost or doubled', async (step, from, to) => {
    const before = await tenantRow(stack, tenant);
    expect(before.isolation).toBe(from);
    const collection = `crash-${step}`;
    const writer = new NumberedWriter([api.baseUrl], tenant.token, collection).start(1);
    const worker = await startWorkerProcess();

    // The cutover waits for writes already running at the source: hold one open.
    let blocker: pg.Client | undefined;
    let moveId: string;
    try {
      if (step === 'cutover') {
        blocker = await connectToPlacement(before, database.url);
        blocker.on('error', () => undefined);
        await blocker.query('begin');
        await blocker.query('lock table documents in row exclusive mode');
      }
      const accepted = await stack.admin('POST', `/v1/tenants/${tenant.tenantId}/move`, { body: { isolation: to } });
      expect(accepted.status).toBe(202);
      moveId = (await database.db.selectFrom('tenant_moves').select('id').where('tenant_id', '=', tenant.id).orderBy('created_at', 'desc').executeTakeFirstOrThrow()).id;
      await waitFor(async () => {
        const move = await moveRow(moveId);
        if (step === 'cutover') return move.status === 'cutover' && move.paused_at !== null ? true : undefined;
        return move.status === step && move.switched_at === null ? true : undefined;
      }, 90_000, 5);
      // Let it reach the freeze's lock wait.
      if (step === 'cutover') await new Promise((resolve) => setTimeout(resolve, 300));
    } finally {
      worker.kill('SIGKILL');
      await exited(worker);
      await blocker?.query('rollback').catch(() => undefined);
      await blocker?.end().catch(() => undefined);
    }

    // Whole on its source: the tenant row names it, every write acknowledged so far is in
    // it once, and it is readable through the api.
    const during = await tenantRow(stack, tenant);
    expect(during).toMatchObject({ isolation: from, placement_generation: before.placement_generation });
    expect((await moveRow(moveId)).status).toBe(step);
    const acknowledged = new Map(writer.acked);
    const onSource = await numberedCounts(stack, tenant, collection);
    expect([...acknowledged.keys()].filter((n) => onSource.get(n) !== 1)).toEqual([]);
    const read = await request(api.baseUrl, 'GET', '/v1/collections/seed/documents?limit=5', { token: tenant.token });
    expect(read.status).toBe(200);
    expect(read.body.items).toHaveLength(5);

    const restarted = await startWorkerProcess();
    try {
      const final = await waitFor(async () => {
        const move = await moveRow(moveId);
        return move.status === 'done' || move.status === 'rolled_back' ? move : undefined;
      }, 120_000, 100);
      expect(final.status).toBe('done');
    } finally {
      restarted.kill('SIGTERM');
      await exited(restarted);
    }
    await writer.stop();

    const after = await tenantRow(stack, tenant);
    expect(after).toMatchObject({ isolation: to, placement_generation: before.placement_generation + 1, writes_paused_at: null });
    const counts = await numberedCounts(stack, tenant, collection);
    expect([...writer.acked.keys()].filter((n) => counts.get(n) !== 1)).toEqual([]);
    expect(counts.size).toBe(writer.acked.size);
    expect([...writer.statuses.keys()].filter((s) => s !== '201' && s !== '503 tenant_moving')).toEqual([]);
    const client = await connectToPlacement(after, database.url);
    try {
      expect((await client.query(`select count(*)::int as n from documents where collection = 'seed'`)).rows[0].n).toBe(SEEDED);
    } finally {
      await client.end();
    }
    // Resumed, not started over: it was placed and provisioned once.
    const steps = (await database.db.selectFrom('tenant_move_steps').select('status').where('move_id', '=', moveId).orderBy('id').execute()).map((s) => s.status);
    expect(steps.filter((s) => s === 'pending')).toHaveLength(1);
    expect(steps.at(-1)).toBe('done');
  }, 240_000);
});
