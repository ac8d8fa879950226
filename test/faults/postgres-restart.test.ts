import type { ChildProcess } from 'node:child_process';
import { fromPublicId, tenantSchemaName } from '@tenantry/domain';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_KEY } from '../support/apps.js';
import { TEST_REDIS_URL } from '../support/env.js';
import { request, validSignup, waitFor } from '../support/http.js';
import { freePort } from '../support/ports.js';
import { PrivatePostgres } from '../support/postgres-server.js';
import { spawnApp } from '../support/process.js';
import { deleteRedisKeys, redisPrefix } from '../support/redis.js';

/**
 * Postgres restarted under load. A private instance (the shared server must stay up for the
 * other files) is restarted with `pg_ctl restart -m fast` three times while 30 clients sign
 * up, log in and write documents, and the worker runs health-probe passes back to back.
 * The api and the worker are real processes: a crash shows as a process that exited.
 */

const CLIENTS = 30;
const RESTARTS = 3;
const PASSWORD = 'violet-otter-stapler-42';

let postgres: PrivatePostgres;
let api: ChildProcess & { output: () => string };
let worker: ChildProcess & { output: () => string };
let baseUrl: string;
const prefix = redisPrefix();

beforeAll(async () => {
  postgres = await PrivatePostgres.start();
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  const common = { DATABASE_URL: postgres.url('tenantry'), REDIS_URL: TEST_REDIS_URL, REDIS_PREFIX: prefix, LOG_LEVEL: 'info' };
  api = spawnApp('api', {
    ...common,
    PORT: String(port),
    API_METRICS_PORT: '0',
    HOST: '127.0.0.1',
    HOSTED_MODE: 'true',
    MULTI_TENANT_ENABLED: 'true',
    PLATFORM_API_KEY: PLATFORM_KEY,
    SIGNUP_RATE_LIMIT_PER_HOUR: '100000',
    SHUTDOWN_DRAIN_DELAY_MS: '0',
    PROVISION_ATTEMPTS: '3',
    PROVISION_BACKOFF_MS: '100',
  });
  await waitFor(async () => (api.output().includes('api listening') ? true : undefined), 30_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${api.output()}`);
  });
  worker = spawnApp('worker', {
    ...common,
    WORKER_METRICS_PORT: '0',
    WORKER_CONCURRENCY: '4',
    HEALTH_PROBE_INTERVAL_MS: '200',
    RECONCILE_INTERVAL_MS: '2000',
    RECONCILE_STALE_AFTER_MS: '3000',
    WORKER_LOCK_DURATION_MS: '5000',
    SHUTDOWN_TIMEOUT_MS: '3000',
  });
  await waitFor(async () => (worker.output().includes('worker started') ? true : undefined), 30_000);
}, 90_000);

afterAll(async () => {
  for (const child of [worker, api]) {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 8_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }
  await postgres?.destroy();
  await deleteRedisKeys(prefix);
});

/** One request; a refused or reset connection is recorded as status 0 (the api is gone). */
async function call(method: string, path: string, options: { body?: unknown; token?: string } = {}) {
  try {
    return await request(baseUrl, method, path, options);
  } catch (err) {
    return { status: 0, body: { code: 'network_error', message: (err as Error).message }, headers: new Headers(), ms: 0 };
  }
}

const isAlive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

describe('a Postgres restart under load', () => {
  it('keeps the api and the worker up, answers 503 (never 500), and loses or doubles nothing', { timeout: 240_000 }, async () => {
    // Tenants to log in to and write to, made before any fault.
    const tenants: Array<{ id: string; email: string; token: string }> = [];
    for (let i = 0; i < 6; i++) {
      const body = validSignup({ password: PASSWORD });
      const accepted = await call('POST', '/v1/signup', { body });
      expect(accepted.status).toBe(202);
      const ready = await waitFor(async () => {
        const res = await call('GET', `/v1/signup/${accepted.body.signupId}`);
        return res.body?.status === 'ready' ? res.body : undefined;
      }, 30_000);
      const login = await call('POST', '/v1/auth/login', { body: { email: body.email, password: PASSWORD } });
      expect(login.status).toBe(200);
      tenants.push({ id: ready.tenantId, email: body.email as string, token: login.body.token });
    }

    const statuses = new Map<string, number>();
    const note = (what: string, status: number) => statuses.set(`${what} ${status}`, (statuses.get(`${what} ${status}`) ?? 0) + 1);
    const signupIds: string[] = [];
    const acknowledged: Array<{ tenant: string; marker: string }> = [];
    const attempted: Array<{ tenant: string; marker: string }> = [];
    let running = true;

    const client = async (n: number) => {
      for (let round = 0; running; round++) {
        const tenant = tenants[(n + round) % tenants.length]!;
        switch ((n + round) % 3) {
          case 0: {
            // A signup is retried on 503 until accepted, as a real client would.
            const body = validSignup({ password: PASSWORD });
            for (;;) {
              const res = await call('POST', '/v1/signup', { body });
              note('signup', res.status);
              if (res.status === 202) {
                signupIds.push(res.body.signupId);
                break;
              }
              if (res.status !== 503 || !running) break;
              await new Promise((resolve) => setTimeout(resolve, 100));
            }
            break;
          }
          case 1: {
            const res = await call('POST', '/v1/auth/login', { body: { email: tenant.email, password: PASSWORD } });
            note('login', res.status);
            break;
          }
          default: {
            const marker = `c${n}-r${round}`;
            attempted.push({ tenant: tenant.id, marker });
            const res = await call('POST', '/v1/collections/faults/documents', { token: tenant.token, body: { data: { marker } } });
            note('write', res.status);
            if (res.status === 201) acknowledged.push({ tenant: tenant.id, marker });
          }
        }
      }
    };
    const clients = Array.from({ length: CLIENTS }, (_, n) => client(n));

    const probeFailures = () => (worker.output().match(/"job":"probe-tenants"[^\n]*maintenance job failed|tenant health probes failed/g) ?? []).length;
    const probeFailuresBefore = probeFailures();
    for (let i = 0; i < RESTARTS; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await postgres.restart();
    }
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    running = false;
    await Promise.all(clients);

    console.info(`postgres-restart: ${JSON.stringify(Object.fromEntries(statuses))}, ${acknowledged.length} acknowledged writes, ${signupIds.length} signups`);
    // Every answer was 2xx, 4xx or 503: never a 500, never a dropped connection.
    const bad = [...statuses].filter(([key]) => {
      const status = Number(key.split(' ')[1]);
      return status === 0 || (status >= 500 && status !== 503);
    });
    expect(bad, `statuses: ${JSON.stringify([...statuses])}\n${api.output().slice(-3000)}`).toEqual([]);
    // The restarts were felt (503s), and work got through around them.
    expect([...statuses].some(([key]) => key.endsWith(' 503'))).toBe(true);
    expect(acknowledged.length).toBeGreaterThan(0);
    expect(signupIds.length).toBeGreaterThan(0);

    // Every accepted signup ends ready, through the outages.
    await waitFor(
      async () => {
        for (const id of signupIds) {
          const res = await call('GET', `/v1/signup/${id}`);
          if (res.body?.status !== 'ready') return undefined;
        }
        return true;
      },
      90_000,
      500,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${worker.output().slice(-3000)}`);
    });

    // Both processes survived: the same PIDs as at the start.
    expect(isAlive(api), api.output().slice(-3000)).toBe(true);
    expect(isAlive(worker), worker.output().slice(-3000)).toBe(true);
    // The worker ran health-probe passes while Postgres was away (they failed), and lived.
    expect(probeFailures()).toBeGreaterThan(probeFailuresBefore);

    // Every acknowledged write is stored exactly once; an unacknowledged one at most once.
    const pool = new pg.Pool({ connectionString: postgres.url('tenantry'), max: 2 });
    pool.on('error', () => undefined);
    const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
    try {
      const counts = new Map<string, number>();
      for (const tenant of tenants) {
        const schema = tenantSchemaName(fromPublicId('ten', tenant.id)!);
        const { rows } = await sql<{ marker: string; n: string }>`select data->>'marker' as marker, count(*) as n from ${sql.id(schema)}.documents where collection = 'faults' group by 1`.execute(db);
        for (const row of rows) counts.set(`${tenant.id} ${row.marker}`, Number(row.n));
      }
      const notOnce = acknowledged.filter((w) => counts.get(`${w.tenant} ${w.marker}`) !== 1);
      expect(notOnce).toEqual([]);
      const doubled = attempted.filter((w) => (counts.get(`${w.tenant} ${w.marker}`) ?? 0) > 1);
      expect(doubled).toEqual([]);
    } finally {
      await db.destroy();
    }

    // And the api serves normally again.
    const health = await call('GET', '/readyz');
    expect(health.status).toBe(200);
  });
});
