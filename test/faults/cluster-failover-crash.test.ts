import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { CLUSTER_SUPERUSER, decryptSecret, parseSecretKey } from '@tenantry/db';
import { fromPublicId } from '@tenantry/domain';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_KEY, type RunningApi, TENANT_SECRET_KEY, startApi } from '../support/apps.js';
import { type TestDatabase, createTestDatabase } from '../support/database.js';
import { TEST_REDIS_URL } from '../support/env.js';
import { request, waitFor } from '../support/http.js';
import { spawnApp } from '../support/process.js';
import { deleteRedisKeys, redisPrefix } from '../support/redis.js';
import { destroyClusterRoot, makeClusterRoot, pgCtl } from '../support/tenant-clusters.js';

/**
 * A worker SIGKILLed (with everything it started) in the middle of a failover, and a new
 * worker: it resumes the recorded failover from its step, and the tenant ends with exactly
 * one primary — one instance out of recovery among those running, one row — and a
 * streaming standby.
 */
const root = makeClusterRoot();
const key = parseSecretKey(TENANT_SECRET_KEY);
let database: TestDatabase;
let api: RunningApi;
const prefix = redisPrefix();
let workerEnv: Record<string, string>;
const workers: Array<ReturnType<typeof spawnApp>> = [];

beforeAll(async () => {
  database = await createTestDatabase();
  api = await startApi({ DATABASE_URL: database.url, REDIS_PREFIX: prefix });
  workerEnv = {
    DATABASE_URL: database.url,
    REDIS_URL: TEST_REDIS_URL,
    REDIS_PREFIX: prefix,
    WORKER_LOCK_DURATION_MS: '2000',
    PROVISION_BACKOFF_MS: '50',
    WORKER_METRICS_PORT: '0',
    SHUTDOWN_TIMEOUT_MS: '5000',
    LOG_LEVEL: 'info',
    TENANT_SECRET_KEY,
    TENANT_CLUSTER_DATA_DIR: root,
    TENANT_CLUSTER_SETTINGS: 'shared_buffers=8MB max_connections=20',
    TENANT_CLUSTER_WATCH_INTERVAL_MS: '300',
    TENANT_CLUSTER_FAILOVER_AFTER_MS: '3000',
  };
});

afterAll(async () => {
  for (const worker of workers) if (worker.exitCode === null && worker.signalCode === null) killGroup(worker);
  await api?.close();
  destroyClusterRoot(root);
  await database?.drop();
  await deleteRedisKeys(prefix);
});

async function startWorkerProcess() {
  const worker = spawnApp('worker', workerEnv, { processGroup: true });
  workers.push(worker);
  await waitFor(async () => (worker.output().includes('worker started') ? true : undefined), 20_000);
  return worker;
}

function killGroup(worker: ReturnType<typeof spawnApp>): void {
  try {
    process.kill(-worker.pid!, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

const exited = (worker: ReturnType<typeof spawnApp>) =>
  worker.exitCode !== null || worker.signalCode !== null ? Promise.resolve() : new Promise<void>((resolve) => worker.once('exit', () => resolve()));

const instances = (id: string) => database.db.selectFrom('cluster_instances').selectAll().where('tenant_id', '=', id).orderBy('generation').execute();
const failoverOf = (id: string) => database.db.selectFrom('cluster_failovers').selectAll().where('tenant_id', '=', id).executeTakeFirst();
const postmasterPid = (dir: string) => Number(readFileSync(path.join(dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
const running = (dir: string) => pgCtl(['status', '-D', dir]).code === 0;

describe('a worker killed mid-failover', () => {
  it('the next worker finishes it: exactly one primary, a streaming standby, the api writes', async () => {
    let worker = await startWorkerProcess();
    const email = `failover-crash-${process.pid}@example.com`;
    const password = 'violet-otter-stapler-42';
    const created = await request(api.baseUrl, 'POST', '/v1/tenants', {
      token: PLATFORM_KEY,
      body: { name: 'Failover Crash', ownerEmail: email, ownerPassword: password, plan: 'enterprise', isolation: 'cluster' },
    });
    expect(created.status).toBe(202);
    const id = fromPublicId('ten', created.body.tenantId)!;
    await waitFor(async () => ((await database.db.selectFrom('tenants').select('status').where('id', '=', id).executeTakeFirst())?.status === 'active' ? true : undefined), 90_000);
    const [primary] = await instances(id);

    process.kill(postmasterPid(primary!.data_dir), 'SIGKILL');
    // Kill the worker as soon as the failover is recorded and not finished.
    const caught = await waitFor(async () => {
      const row = await failoverOf(id);
      return row && row.step !== 'done' ? row : undefined;
    }, 30_000, 10);
    killGroup(worker);
    await exited(worker);
    const interrupted = await failoverOf(id);
    expect(interrupted!.step, `killed at ${caught.step}`).not.toBe('done');

    worker = await startWorkerProcess();
    try {
      await waitFor(async () => ((await failoverOf(id))?.step === 'done' ? true : undefined), 60_000, 100);
      await waitFor(async () => {
        const rows = await instances(id);
        return rows.some((r) => r.role === 'standby' && r.state === 'active' && r.observed_state === 'streaming') ? true : undefined;
      }, 30_000, 100);
    } finally {
      worker.kill('SIGTERM');
      await exited(worker);
    }

    const rows = await instances(id);
    const active = rows.filter((r) => r.role === 'primary' && r.state === 'active');
    expect(active).toHaveLength(1);
    expect(rows.find((r) => r.id === primary!.id)!.state).toBe('fenced');
    // Among the postmasters running, exactly one is out of recovery: the recorded primary.
    const tenant = await database.db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    const password0 = decryptSecret(key, tenant.cluster_admin_password_enc!, id);
    const primaries: number[] = [];
    for (const r of rows.filter((row) => running(row.data_dir))) {
      const client = new pg.Client({ host: '127.0.0.1', port: r.port, user: CLUSTER_SUPERUSER, password: password0, database: 'postgres' });
      await client.connect();
      if (!(await client.query('select pg_is_in_recovery() as r')).rows[0].r) primaries.push(r.port);
      await client.end();
    }
    expect(primaries).toEqual([active[0]!.port]);
    expect(tenant.cluster_port).toBe(active[0]!.port);
    expect(await database.db.selectFrom('audit_log').select('id').where('tenant_id', '=', id).where('action', '=', 'tenant.cluster_failover').execute()).toHaveLength(1);
    // No pg_basebackup of the killed worker left running.
    let leftovers = '';
    try {
      leftovers = execFileSync('pgrep', ['-a', '-f', 'pg_basebackup']).toString();
    } catch {
      // pgrep exits 1 when nothing matches
    }
    expect(leftovers).not.toContain(root);

    const login = await request(api.baseUrl, 'POST', '/v1/auth/login', { body: { email, password } });
    const doc = await request(api.baseUrl, 'POST', '/v1/collections/notes/documents', { token: login.body.token, body: { data: { survived: true } } });
    expect(doc.status, JSON.stringify(doc.body)).toBe(201);
  }, 240_000);
});
