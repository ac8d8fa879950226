/**
 * Provisioning end to end, per isolation driver, against its raw floor measured in the same run.
 *
 *   pnpm bench:provisioning      (or: npx tsx test/bench/provisioning.ts)
 *
 * Starts a real api and a real worker, each in a process of its own as deployed
 * (test/support/process.ts), against a database of its own (`tenantry_bench_prov_<random>`,
 * migrated from scratch, dropped at the end) and a Redis key prefix of its own. Then, for
 * each driver in BENCH_DRIVERS:
 *
 *   end to end: POST /v1/tenants with the platform key (plan `pro` for schema and database,
 *     `enterprise` for cluster), timed until GET /v1/tenants/{id} first reports `active`
 *     (polled every POLL_MS). No ownerPassword is sent, so no argon2 hash is in the path: the
 *     owner user is created without a password, and what is measured is provisioning.
 *   floor: what the storage step cannot avoid, executed directly:
 *     schema   — one transaction: the tenant row, provisionTenantSchema (the DDL the saga's
 *                storage step runs: schema, documents table, index, RLS, grants), the owner
 *                user and membership, billing state, activation and the audit row;
 *     database — what TenantDatabaseProvisioner runs, with pg on an open admin connection:
 *                CREATE ROLE … LOGIN PASSWORD '<SCRAM verifier>' (its ensureRole), CREATE
 *                DATABASE … TEMPLATE tenantry_tenant_template, REVOKE/GRANT CONNECT, and in
 *                the new database (a fresh connection: there is no other way in) the grants on
 *                documents;
 *     cluster  — initdb + pg_ctl start -w with the local driver's flags, binaries (its
 *                postgresBinDir: the newest installed major) and the same server settings
 *                (TENANT_CLUSTER_SETTINGS below); stop and rm afterwards, not timed.
 *                The end to end path also makes database `tenant`, its table and role inside
 *                the new instance, and runs the saga transaction: not in this floor.
 *
 * Schema and database: a warm-up, then all end-to-end samples at the driver's concurrency,
 * then all floor samples at the same concurrency. Cluster: sequential, end to end and floor
 * interleaved one by one (alternating which goes first), since with a handful of slow
 * samples that spreads the machine's noise over both alike.
 *
 * The worker runs with WORKER_CONCURRENCY = the largest concurrency, and with its health
 * probes pushed out to an hour (HEALTH_PROBE_INTERVAL_MS): a probe pass over the tenants just
 * made is background work, not provisioning, and would only add noise.
 *
 * The machine is shared and noisy, so the targets are judged on the end-to-end p95: an
 * absolute one per driver, and for schema and database tenants a ratio to the floor's p95 of
 * the same run (at most 3× and 2.5×). It prints figures and PASS/MISS per target and exits 0
 * either way; 1 only when something goes wrong. Whatever happens (an error, Ctrl-C) it stops
 * and removes every cluster instance, drops every tenant database and role it made (the
 * saga's and the floor's), its database, and its Redis keys.
 *
 * Env: TEST_DATABASE_URL / TEST_REDIS_URL (as the tests), BENCH_DRIVERS (comma-separated,
 * default schema,database,cluster), BENCH_SCHEMA_TENANTS (100), BENCH_SCHEMA_CONCURRENCY (4),
 * BENCH_DATABASE_TENANTS (30), BENCH_DATABASE_CONCURRENCY (2), BENCH_CLUSTER_TENANTS (5,
 * sequential), BENCH_WARMUP (10; cluster: 1), TEST_LOG_LEVEL.
 */
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { chown, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type Db,
  TENANT_TEMPLATE_DATABASE,
  appendAudit,
  ensureRole,
  freePort,
  generateRolePassword,
  initdbArgs,
  insertProvisioningTenant,
  pgCtlStartArgs,
  postgresBinDir,
  provisionTenantSchema,
} from '@tenantry/db';
import { type Isolation, tenantDatabaseName, tenantRoleName, tenantSchemaName } from '@tenantry/domain';
import { sql } from 'kysely';
import pg from 'pg';
import { PLATFORM_KEY } from '../support/apps.js';
import { TEST_PG_URL, databaseUrl } from '../support/env.js';
import { request } from '../support/http.js';
import { startApiProcess, startWorkerProcess, stopChild } from '../support/process.js';
import { deleteRedisKeys, redisPrefix } from '../support/redis.js';
import { destroyClusterRoot, makeClusterRoot } from '../support/tenant-clusters.js';
import { dropTenantDatabasesOf } from '../support/tenant-databases.js';
import {
  type Summary,
  type Teardown,
  benchDatabase,
  describeDropped,
  header,
  machineLine,
  newRunId,
  pool,
  positiveInt,
  ratio,
  row,
  runBenchmark,
  sleep,
  summarise,
  verdict,
} from './support.js';

const DRIVERS = parseDrivers(process.env.BENCH_DRIVERS);
const SCHEMA_TENANTS = positiveInt('BENCH_SCHEMA_TENANTS', 100);
const SCHEMA_CONCURRENCY = positiveInt('BENCH_SCHEMA_CONCURRENCY', 4);
const DATABASE_TENANTS = positiveInt('BENCH_DATABASE_TENANTS', 30);
const DATABASE_CONCURRENCY = positiveInt('BENCH_DATABASE_CONCURRENCY', 2);
const CLUSTER_TENANTS = positiveInt('BENCH_CLUSTER_TENANTS', 5);
const WARMUP = positiveInt('BENCH_WARMUP', 10);
const CLUSTER_WARMUP = 1;
const POLL_MS = 5;
/** The local driver's server settings in the cluster isolation suite; the floor uses the same. */
const CLUSTER_SETTINGS = ['shared_buffers=8MB', 'max_connections=20'];

const TARGET_P95_MS: Record<Isolation, number> = { schema: 250, database: 1_000, cluster: 15_000 };
/**
 * The scale issue's targets: end-to-end p95 at most this many times the floor's p95 of the
 * same run (none for cluster tenants, whose floor is a whole instance's start).
 */
const TARGET_FLOOR_RATIO: Partial<Record<Isolation, number>> = { schema: 3, database: 2.5 };
/** A tenant not active after this long is an error, not a slow sample. */
const TIMEOUT_MS: Record<Isolation, number> = { schema: 60_000, database: 60_000, cluster: 180_000 };
const PLAN: Record<Isolation, string> = { schema: 'pro', database: 'pro', cluster: 'enterprise' };

function parseDrivers(raw: string | undefined): Isolation[] {
  const all: Isolation[] = ['schema', 'database', 'cluster'];
  if (!raw) return all;
  const picked = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const d of picked) if (!all.includes(d as Isolation)) throw new Error(`BENCH_DRIVERS: unknown driver ${JSON.stringify(d)} (schema, database, cluster)`);
  return all.filter((d) => picked.includes(d));
}

// ---------------------------------------------------------------------------------------
// End to end
// ---------------------------------------------------------------------------------------

interface E2eSample {
  totalMs: number;
  /** POST /v1/tenants → 202. */
  postMs: number;
  polls: number;
}

async function createAndWait(baseUrl: string, isolation: Isolation, label: string): Promise<E2eSample> {
  const started = performance.now();
  const accepted = await request(baseUrl, 'POST', '/v1/tenants', {
    token: PLATFORM_KEY,
    body: { name: `Bench ${label}`, ownerEmail: `${label}@example.com`, plan: PLAN[isolation], isolation },
  });
  const postMs = performance.now() - started;
  if (accepted.status !== 202) throw new Error(`POST /v1/tenants (${isolation}) → ${accepted.status} ${JSON.stringify(accepted.body)}`);
  const tenantId: string = accepted.body.tenantId;
  let polls = 0;
  for (;;) {
    const res = await request(baseUrl, 'GET', `/v1/tenants/${tenantId}`, { token: PLATFORM_KEY });
    polls += 1;
    if (res.status === 200 && res.body.status === 'active') return { totalMs: performance.now() - started, postMs, polls };
    if (res.status !== 200 || res.body.status !== 'provisioning') throw new Error(`tenant ${tenantId} (${isolation}): GET → ${res.status} ${JSON.stringify(res.body)}`);
    if (performance.now() - started > TIMEOUT_MS[isolation]) throw new Error(`tenant ${tenantId} (${isolation}) not active after ${TIMEOUT_MS[isolation]} ms`);
    await sleep(POLL_MS);
  }
}

// ---------------------------------------------------------------------------------------
// Floors
// ---------------------------------------------------------------------------------------

interface FloorSample {
  totalMs: number;
  /** Named sub-timings, in order. */
  parts: Array<[string, number]>;
}

/** The saga's transaction for a schema tenant, minus its bookkeeping (signup and step rows). */
async function schemaFloorOnce(db: Db, label: string): Promise<FloorSample> {
  const started = performance.now();
  await db.transaction().execute(async (trx) => {
    const tenantId = randomUUID();
    await insertProvisioningTenant(trx, { id: tenantId, name: `Bench ${label}`, plan: 'pro', isolation: 'schema' });
    await provisionTenantSchema(trx, tenantSchemaName(tenantId));
    await trx
      .with('owner', (qb) => qb.insertInto('users').values({ email: `${label}@example.com`, password_hash: null }).returning('id'))
      .insertInto('memberships')
      .columns(['user_id', 'tenant_id', 'role'])
      .expression((eb) => eb.selectFrom('owner').select(['owner.id', sql<string>`${tenantId}::uuid`.as('tenant_id'), sql.lit('owner').as('role')]))
      .execute();
    await trx.insertInto('billing_states').values({ tenant_id: tenantId, plan: 'pro', subscription_state: 'active', trial_ends_at: null }).execute();
    await trx.updateTable('tenants').set({ status: 'active', updated_at: sql`now()` }).where('id', '=', tenantId).execute();
    await appendAudit(trx, { actor: 'system:worker', action: 'tenant.provisioned', tenantId, data: { isolation: 'schema', plan: 'pro' } });
  });
  return { totalMs: performance.now() - started, parts: [] };
}

/** Retries of CREATE DATABASE because the template was in use (someone connected to it). */
let templateBusyRetries = 0;

/** CREATE DATABASE from the template, retrying every 100 ms while someone is connected to it (as the provisioner does). */
async function createFromTemplate(client: pg.ClientBase, database: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await client.query(`create database ${client.escapeIdentifier(database)} template ${client.escapeIdentifier(TENANT_TEMPLATE_DATABASE)}`);
      return;
    } catch (err) {
      templateBusyRetries += (err as { code?: string }).code === '55006' ? 1 : 0;
      if ((err as { code?: string }).code !== '55006' || attempt >= 100) throw err;
      await sleep(100);
    }
  }
}

/** The floor's tenant databases and roles, recorded before they are made, for the teardown. */
const floorDatabases: Array<{ database: string; role: string }> = [];

async function databaseFloorOnce(admin: pg.Pool): Promise<FloorSample> {
  const id = randomUUID();
  const database = tenantDatabaseName(id);
  const role = tenantRoleName(id);
  floorDatabases.push({ database, role });
  const password = generateRolePassword();
  const client = await admin.connect();
  try {
    const t0 = performance.now();
    // ensureRole is typed for a Client; a pooled client is one (query and escaping are all it uses).
    await ensureRole(client as unknown as pg.Client, role, password);
    const t1 = performance.now();
    await createFromTemplate(client, database);
    const t2 = performance.now();
    const db = client.escapeIdentifier(database);
    await client.query(`revoke all on database ${db} from public; grant connect on database ${db} to ${client.escapeIdentifier(role)}`);
    const t3 = performance.now();
    const inside = new pg.Client({ connectionString: databaseUrl(database), application_name: 'tenantry-bench-floor' });
    await inside.connect();
    try {
      const r = inside.escapeIdentifier(role);
      await inside.query(`grant usage on schema public to ${r}; grant select, insert, update, delete on documents to ${r}`);
    } finally {
      await inside.end();
    }
    const t4 = performance.now();
    return {
      totalMs: t4 - t0,
      parts: [
        ['create role (SCRAM verifier)', t1 - t0],
        ['create database … template', t2 - t1],
        ['revoke/grant connect', t3 - t2],
        ['connect + grants inside', t4 - t3],
      ],
    };
  } finally {
    client.release();
  }
}

interface Run {
  code: number;
  out: string;
}

/** initdb/pg_ctl of the version the driver picks for a new instance (postgresBinDir), as the postgres OS user when we are root (both refuse root). */
async function pgBinary(binary: 'initdb' | 'pg_ctl', args: string[]): Promise<Run> {
  const binDir = await postgresBinDir(undefined);
  const bin = binDir ? path.join(binDir, binary) : binary;
  const [file, argv] = process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  return new Promise((resolve) => {
    execFile(file, argv, { cwd: '/', timeout: 120_000, env: { ...process.env, LC_ALL: 'C.UTF-8' } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}`.trim() });
    });
  });
}

/** uid/gid of the postgres OS user when we are root (the instances run as it), else none. */
async function postgresOwner(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) =>
    new Promise<number>((resolve, reject) => execFile('id', [flag, 'postgres'], (err, out) => (err ? reject(err) : resolve(Number(String(out).trim())))));
  return { uid: await id('-u'), gid: await id('-g') };
}

async function clusterFloorOnce(root: string, owner: { uid: number; gid: number } | undefined): Promise<FloorSample> {
  // Named like the driver's directories, so destroyClusterRoot stops it whatever happens.
  const dir = path.join(root, `tc_${randomUUID().replaceAll('-', '')}`);
  const pwfile = `${dir}.pw`;
  await writeFile(pwfile, randomBytes(24).toString('base64url'), { mode: 0o600 });
  if (owner) await chown(pwfile, owner.uid, owner.gid);
  const port = await freePort();
  try {
    const t0 = performance.now();
    // The driver's own arguments (the floor is what it runs, without the bookkeeping).
    const init = await pgBinary('initdb', initdbArgs(dir, pwfile));
    if (init.code !== 0) throw new Error(`initdb failed: ${init.out.slice(-500)}`);
    const t1 = performance.now();
    const started = await pgBinary('pg_ctl', pgCtlStartArgs(dir, port, CLUSTER_SETTINGS));
    if (started.code !== 0) throw new Error(`pg_ctl start failed: ${started.out.slice(-500)}`);
    const t2 = performance.now();
    return { totalMs: t2 - t0, parts: [['initdb', t1 - t0], ['pg_ctl start -w', t2 - t1]] };
  } finally {
    // Not timed: stop it and remove it now, so that at most one floor instance exists at a time.
    await pgBinary('pg_ctl', ['stop', '-D', dir, '-m', 'fast', '-w']);
    if ((await pgBinary('pg_ctl', ['status', '-D', dir])).code === 0) throw new Error(`the floor instance in ${dir} did not stop`);
    await rm(dir, { recursive: true, force: true });
    await rm(pwfile, { force: true });
  }
}

// ---------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------

interface DriverResult {
  isolation: Isolation;
  e2e: E2eSample[];
  floor: FloorSample[];
  /** Wall time of the end-to-end and floor phases (schema/database; cluster: sum of samples). */
  e2eWallMs: number;
  floorWallMs: number;
  concurrency: number;
}

const FLOOR_LABEL: Record<Isolation, string> = {
  schema: 'one transaction: rows + schema DDL',
  database: 'role + database from template + grants',
  cluster: 'initdb + pg_ctl start -w',
};

function report(r: DriverResult): { e2e: Summary; floor: Summary } {
  const e2e = summarise(r.e2e.map((s) => s.totalMs));
  const floor = summarise(r.floor.map((s) => s.totalMs));
  const rate = (n: number, wallMs: number) => `${(n / (wallMs / 1000)).toFixed(1)} tenants/s`;
  console.log(header(`${r.isolation}: ${r.e2e.length} tenants, concurrency ${r.concurrency} — end to end (POST → active seen) and floor (${FLOOR_LABEL[r.isolation]})`));
  console.log(row('end to end', e2e, rate(r.e2e.length, r.e2eWallMs)));
  console.log(row('  POST /v1/tenants → 202', summarise(r.e2e.map((s) => s.postMs))));
  console.log(row('  202 → active seen', summarise(r.e2e.map((s) => s.totalMs - s.postMs))));
  console.log(row('floor', floor, rate(r.floor.length, r.floorWallMs)));
  const names = r.floor[0]?.parts.map(([name]) => name) ?? [];
  for (const [i, name] of names.entries()) console.log(row(`  ${name}`, summarise(r.floor.map((s) => s.parts[i]![1]))));
  if (r.isolation === 'database') console.log(`  template in use (55006), retried after 100 ms: ${templateBusyRetries} times in the measured floor`);
  console.log(`  end to end / floor:  p50 ${ratio(e2e.p50, floor.p50)}   p95 ${ratio(e2e.p95, floor.p95)}   max ${ratio(e2e.max, floor.max)}`);
  console.log(`  status polls per tenant: mean ${(r.e2e.reduce((a, s) => a + s.polls, 0) / (r.e2e.length || 1)).toFixed(1)}`);
  return { e2e, floor };
}

// ---------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------

async function main(teardown: Teardown): Promise<void> {
  const runId = newRunId();
  const bench = benchDatabase('prov', runId);
  const prefix = redisPrefix();
  const clusterRoot = DRIVERS.includes('cluster') ? makeClusterRoot() : undefined;
  const concurrency = Math.max(DRIVERS.includes('schema') ? SCHEMA_CONCURRENCY : 1, DRIVERS.includes('database') ? DATABASE_CONCURRENCY : 1);

  // Last added, first run.
  teardown.add('redis keys', () => deleteRedisKeys(prefix));
  teardown.add('bench database', () => bench.drop());
  teardown.add('floor databases and roles', async () => {
    const admin = new pg.Client({ connectionString: TEST_PG_URL });
    await admin.connect();
    try {
      for (const { database, role } of floorDatabases) {
        await admin.query(`drop database if exists ${admin.escapeIdentifier(database)} with (force)`);
        await admin.query(`drop role if exists ${admin.escapeIdentifier(role)}`);
      }
      if (floorDatabases.length > 0) console.log(`cleanup: dropped the floor's ${floorDatabases.length} databases and ${floorDatabases.length} roles`);
    } finally {
      await admin.end();
    }
  });
  if (clusterRoot) {
    teardown.add('cluster instances', () => {
      destroyClusterRoot(clusterRoot);
      console.log(`cleanup: stopped the cluster instances under ${clusterRoot} and removed it`);
    });
  }

  const setupStarted = performance.now();
  const db = await bench.create({ maxConnections: concurrency });
  // The saga's tenant databases and roles, named by the tenant ids recorded in the bench database.
  teardown.add('tenant databases and roles', async () => {
    const dropped = await dropTenantDatabasesOf(bench.name);
    if (dropped.length > 0) console.log(`cleanup: dropped the saga's tenant ${describeDropped(dropped)}`);
  });
  // The api and the worker each in a process of its own, as they are deployed. In this
  // process they would share one event loop with each other and with the load generator,
  // so every await of a saga would queue behind the api's requests and the other sagas'
  // work, while the floor runs alone.
  const dataDir = mkdtempSync(path.join(tmpdir(), 'tenantry-bench-prov-'));
  teardown.add('data directory', () => rmSync(dataDir, { recursive: true, force: true }));
  const env = { DATABASE_URL: bench.url, REDIS_PREFIX: prefix, TENANTRY_DATA_DIR: dataDir };
  const api = await startApiProcess(env);
  teardown.add('api', () => stopChild(api.child, 'SIGTERM'));
  const worker = await startWorkerProcess({
    ...env,
    WORKER_CONCURRENCY: String(concurrency),
    HEALTH_PROBE_INTERVAL_MS: '3600000',
    ...(clusterRoot ? { TENANT_CLUSTER_DATA_DIR: clusterRoot, TENANT_CLUSTER_SETTINGS: CLUSTER_SETTINGS.join(' ') } : {}),
  });
  teardown.add('worker', () => stopChild(worker, 'SIGTERM'));
  const setupMs = performance.now() - setupStarted;

  console.log(`provisioning benchmark   (run ${runId})`);
  console.log(`  ${machineLine()}`);
  console.log(`  database ${bench.name}, redis prefix ${prefix}, setup ${setupMs.toFixed(0)} ms; worker concurrency ${concurrency}, polling every ${POLL_MS} ms`);
  console.log(
    `  drivers ${DRIVERS.join(', ')}: schema ${SCHEMA_TENANTS} @ ${SCHEMA_CONCURRENCY}, database ${DATABASE_TENANTS} @ ${DATABASE_CONCURRENCY}, ` +
      `cluster ${CLUSTER_TENANTS} sequential (${CLUSTER_SETTINGS.join(' ')}); warm-up ${WARMUP} (cluster ${CLUSTER_WARMUP}), not counted`,
  );

  const label = (isolation: Isolation, phase: string, i: number) => `bench-${runId}-${isolation}-${phase}${i}`;
  const results: DriverResult[] = [];

  for (const isolation of DRIVERS) {
    if (isolation === 'cluster') {
      const root = clusterRoot!;
      const owner = await postgresOwner();
      // The worker chowns the root at its first instance; the floor may come first.
      if (owner) await chown(root, owner.uid, owner.gid);
      for (let i = 0; i < CLUSTER_WARMUP; i++) {
        await createAndWait(api.baseUrl, 'cluster', label('cluster', 'w', i));
        await clusterFloorOnce(root, owner);
      }
      const e2e: E2eSample[] = [];
      const floor: FloorSample[] = [];
      for (let i = 0; i < CLUSTER_TENANTS; i++) {
        const one = () => createAndWait(api.baseUrl, 'cluster', label('cluster', 'e', i)).then((s) => e2e.push(s));
        const other = () => clusterFloorOnce(root, owner).then((s) => floor.push(s));
        if (i % 2 === 0) {
          await one();
          await other();
        } else {
          await other();
          await one();
        }
      }
      const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
      results.push({ isolation, e2e, floor, e2eWallMs: sum(e2e.map((s) => s.totalMs)), floorWallMs: sum(floor.map((s) => s.totalMs)), concurrency: 1 });
      continue;
    }

    const count = isolation === 'schema' ? SCHEMA_TENANTS : DATABASE_TENANTS;
    const lanes = isolation === 'schema' ? SCHEMA_CONCURRENCY : DATABASE_CONCURRENCY;
    // Warm-up (JIT, pools, BullMQ scripts; for database, the worker's one-off template preparation).
    await pool(WARMUP, lanes, (i) => createAndWait(api.baseUrl, isolation, label(isolation, 'w', i)));

    const e2eStarted = performance.now();
    const e2e = await pool(count, lanes, (i) => createAndWait(api.baseUrl, isolation, label(isolation, 'e', i)));
    const e2eWallMs = performance.now() - e2eStarted;

    let floor: FloorSample[];
    let floorWallMs: number;
    if (isolation === 'schema') {
      await pool(WARMUP, lanes, (i) => schemaFloorOnce(db, label(isolation, 'fw', i)));
      const started = performance.now();
      floor = await pool(count, lanes, (i) => schemaFloorOnce(db, label(isolation, 'f', i)));
      floorWallMs = performance.now() - started;
    } else {
      const admin = new pg.Pool({ connectionString: TEST_PG_URL, max: lanes, application_name: 'tenantry-bench-floor' });
      try {
        await pool(WARMUP, lanes, () => databaseFloorOnce(admin));
        templateBusyRetries = 0;
        const started = performance.now();
        floor = await pool(count, lanes, () => databaseFloorOnce(admin));
        floorWallMs = performance.now() - started;
      } finally {
        await admin.end();
      }
    }
    results.push({ isolation, e2e, floor, e2eWallMs, floorWallMs, concurrency: lanes });
  }

  const summaries = results.map((r) => ({ isolation: r.isolation, ...report(r) }));

  console.log('\nTargets (end-to-end p95; the floor of the same run alongside)');
  for (const s of summaries) {
    const target = TARGET_P95_MS[s.isolation];
    const shown = target >= 1_000 ? `${target / 1_000} s` : `${target} ms`;
    console.log(
      `  ${verdict(s.e2e.p95 < target)}  ${`${s.isolation} p95 < ${shown}`.padEnd(26)}(p95 ${s.e2e.p95.toFixed(1)} ms; floor p95 ${s.floor.p95.toFixed(1)} ms, ${ratio(s.e2e.p95, s.floor.p95)})`,
    );
    const maxRatio = TARGET_FLOOR_RATIO[s.isolation];
    if (maxRatio !== undefined) {
      console.log(
        `  ${verdict(s.e2e.p95 <= maxRatio * s.floor.p95)}  ${`${s.isolation} p95 ≤ ${maxRatio}× floor p95`.padEnd(30)}(${ratio(s.e2e.p95, s.floor.p95)})`,
      );
    }
  }
}

runBenchmark(main);
