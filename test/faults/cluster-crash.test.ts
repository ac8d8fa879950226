import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fromPublicId } from '@tenantry/domain';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_KEY, type RunningApi, TENANT_SECRET_KEY, startApi } from '../support/apps.js';
import { type TestDatabase, createTestDatabase } from '../support/database.js';
import { TEST_REDIS_URL } from '../support/env.js';
import { request, waitFor } from '../support/http.js';
import { spawnApp } from '../support/process.js';
import { deleteRedisKeys, redisPrefix } from '../support/redis.js';
import { destroyClusterRoot, makeClusterRoot, pgCtl } from '../support/tenant-clusters.js';

/**
 * A worker killed while it provisions a dedicated cluster — with everything it started, as
 * a container runtime or systemd kills a service — and a new worker that picks the job up:
 * the tenant ends active on exactly one running primary (and its standby), with nothing
 * half-made left.
 */
const root = makeClusterRoot();
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
    // A killed worker's jobs are redelivered once their lock expires: keep that short here.
    WORKER_LOCK_DURATION_MS: '2000',
    PROVISION_BACKOFF_MS: '50',
    WORKER_METRICS_PORT: '0',
    SHUTDOWN_TIMEOUT_MS: '5000',
    LOG_LEVEL: 'info',
    TENANT_SECRET_KEY,
    TENANT_CLUSTER_DATA_DIR: root,
    TENANT_CLUSTER_SETTINGS: 'shared_buffers=8MB max_connections=20',
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

/** Processes whose command line mentions `needle` (pgrep -f), not counting pgrep itself. */
function processesMatching(needle: string): string[] {
  try {
    return execFileSync('pgrep', ['-a', '-f', '--', needle]).toString().trim().split('\n').filter(Boolean);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

describe('a worker killed mid-provision of a cluster tenant', () => {
  it.each([
    ['during initdb', (dir: string) => existsSync(`${dir}.init`)],
    ['after the postmaster started, before the tenant is active', (dir: string) => existsSync(path.join(dir, 'postmaster.pid'))],
  ])('%s → a new worker finishes it: active, one running instance, nothing half-made', async (_, reached) => {
    const worker = await startWorkerProcess();
    const email = `crash-${workers.length}-${process.pid}@example.com`;
    const password = 'violet-otter-stapler-42';
    const created = await request(api.baseUrl, 'POST', '/v1/tenants', {
      token: PLATFORM_KEY,
      body: { name: `Crash Cluster ${workers.length}`, ownerEmail: email, ownerPassword: password, plan: 'enterprise', isolation: 'cluster' },
    });
    expect(created.status).toBe(202);
    const id = fromPublicId('ten', created.body.tenantId)!;
    const dir = path.join(root, `tc_${id.replaceAll('-', '')}`);

    await waitFor(async () => (reached(dir) ? true : undefined), 30_000, 5);
    killGroup(worker);
    await exited(worker);
    const tenant = () => database.db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect((await tenant()).status).toBe('provisioning');
    // Killed with the worker: no initdb still writing into the staging directory.
    expect(processesMatching(`${dir}.init`)).toEqual([]);

    const restarted = await startWorkerProcess();
    try {
      await waitFor(async () => ((await tenant()).status === 'active' ? true : undefined), 60_000);
    } finally {
      restarted.kill('SIGTERM');
      await exited(restarted);
    }

    // The primary and its one standby, running, in place; no staging directory or password file left.
    expect(readdirSync(root).filter((entry) => entry.startsWith(path.basename(dir))).sort()).toEqual([path.basename(dir), `${path.basename(dir)}_1`]);
    expect(pgCtl(['status', '-D', dir]).code).toBe(0);
    expect(pgCtl(['status', '-D', `${dir}_1`]).code).toBe(0);
    const postmasters = processesMatching(`-D ${dir} `).filter((line) => !line.includes('pg_ctl'));
    expect(postmasters).toHaveLength(1);
    expect(postmasters[0]).toContain(readFileSync(path.join(dir, 'postmaster.pid'), 'utf8').split('\n')[0]!);

    // Its owner can log in and use it.
    const login = await request(api.baseUrl, 'POST', '/v1/auth/login', { body: { email, password } });
    expect(login.status).toBe(200);
    const doc = await request(api.baseUrl, 'POST', '/v1/collections/notes/documents', { token: login.body.token, body: { data: { survived: true } } });
    expect(doc.status, JSON.stringify(doc.body)).toBe(201);
    const row = await tenant();
    expect(row.database_server).toBe(`127.0.0.1:${row.cluster_port}`);
  });
});
