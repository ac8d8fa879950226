/**
 * Moves between isolation models, per direction and tenant size, next to `pg_dump |
 * pg_restore` of the same data in the same run (the floor), and the per-tenant footprint of
 * each model.
 *
 *   pnpm bench:moves      (or: npx tsx test/bench/moves.ts)
 *
 * Starts a real api and worker in-process (test/support/apps.ts) against a database of its
 * own (`tenantry_bench_moves_<random>`, migrated from scratch, dropped at the end), with the
 * worker's default move settings (batches of 5,000 keys, the source kept 2 s after the
 * switch). For each size in BENCH_MOVE_SIZES, one tenant (plan enterprise) is made on
 * schema isolation and seeded with that many documents (written straight into its schema,
 * ~300 bytes of JSON each), then moved schema → database → cluster → schema. For each move:
 *
 *   floor: pg_dump -Fc of the source's tenant data (its schema; its database; its cluster's
 *     database `tenant`) piped into pg_restore --no-owner --no-acl into a fresh, empty
 *     scratch database on the shared server, timed from spawn to both exiting; the scratch
 *     database is dropped after (not timed). Taken just before the move, of the same rows.
 *   move: POST /v1/tenants/{id}/move → GET …/moves/{moveId} polled every POLL_MS until
 *     `done`, while a writer adds numbered documents through the api (one at a time) and
 *     retries what is not acknowledged. Reported: request → switch (the tenant is served by
 *     its target: the move row's switched_at − created_at), target made → switch (copy
 *     passes, cutover and verification: from its `copying` step), request → done (the source
 *     dropped too, after the 2 s grace), the write pause (the move row's write_pause_ms:
 *     writes paused at the api → routing switched, in one clock), and the writer's longest
 *     wait for one acknowledgment overlapping the pause (the pause as a client sees it,
 *     retries included) and over the whole move (the target's creation — CREATE DATABASE's
 *     checkpoint, initdb's sync — slows writes on a shared disk too).
 *
 * Then the footprint of an empty tenant of each model (see docs/isolation-models.md):
 * disk (schema: pg_total_relation_size of its tables; database: pg_database_size; cluster:
 * the bytes of its data directory), server processes and their memory (PSS from
 * /proc/<pid>/smaps_rollup: shared memory split between the processes sharing it), and
 * connections, counted on the server after 20 requests through the api.
 *
 * Prints figures, ratios to the floor, and PASS/MISS for the write pause target (< 2 s at
 * 10,000 documents); exits 0 either way, 1 when something breaks. Whatever happens it drops
 * what it made (tenant databases and roles, cluster instances, scratch databases, its
 * database, its Redis keys).
 *
 * Env: TEST_DATABASE_URL / TEST_REDIS_URL (as the tests), BENCH_MOVE_SIZES (comma-separated,
 * default 1000,10000), BENCH_FOOTPRINT (1; 0 skips it), TEST_LOG_LEVEL.
 */
import { spawn } from 'node:child_process';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { decryptSecret, parseSecretKey, type Tenant } from '@tenantry/db';
import { type Isolation, fromPublicId } from '@tenantry/domain';
import { sql } from 'kysely';
import pg from 'pg';
import { PLATFORM_KEY, TENANT_SECRET_KEY, startApi, startWorker } from '../support/apps.js';
import { TEST_PG_URL, databaseUrl } from '../support/env.js';
import { request } from '../support/http.js';
import { NumberedWriter } from '../support/moves.js';
import { deleteRedisKeys, redisPrefix } from '../support/redis.js';
import { destroyClusterRoot, makeClusterRoot } from '../support/tenant-clusters.js';
import { dropTenantDatabasesOf } from '../support/tenant-databases.js';
import { type Teardown, benchDatabase, describeDropped, dropDatabase, machineLine, newRunId, ratio, runBenchmark, sleep, verdict } from './support.js';

const SIZES = (process.env.BENCH_MOVE_SIZES ?? '1000,10000').split(',').map((s) => {
  const n = Number(s.trim());
  if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_MOVE_SIZES: not a positive integer: ${JSON.stringify(s)}`);
  return n;
});
const FOOTPRINT = process.env.BENCH_FOOTPRINT !== '0';
const POLL_MS = 20;
const CLUSTER_SETTINGS = ['shared_buffers=8MB', 'max_connections=20'];
const HOPS: Array<[Isolation, Isolation]> = [
  ['schema', 'database'],
  ['database', 'cluster'],
  ['cluster', 'schema'],
];
const PAUSE_TARGET_MS = 2_000;
const PAUSE_TARGET_SIZE = 10_000;

interface MoveSample {
  from: Isolation;
  to: Isolation;
  docs: number;
  floorMs: number;
  dumpBytes: number;
  toSwitchMs: number;
  /** The target made → routing switched: copy passes, cutover, verification (what dump|restore compares with). */
  copyToSwitchMs: number;
  toDoneMs: number;
  pauseMs: number;
  longestWriteMs: number;
  /** The longest write whose wait overlapped the pause (paused_at → switched_at). */
  longestPausedWriteMs: number;
  writes: number;
  /** Where the pause went: the freeze (waiting for running writes), the last copy pass (and what it copied), the verification. */
  pauseParts: { freezeMs: number; finalPassMs: number; finalPassRows: number; verifyMs: number };
}

/** A superuser connection (config) to where a tenant row says its data is. */
function storeConnection(row: Tenant, controlPlaneUrl: string): { config: pg.ClientConfig; dumpArgs: string[]; env: Record<string, string> } {
  if (row.isolation === 'schema') {
    return { config: { connectionString: controlPlaneUrl }, dumpArgs: ['-n', row.schema_name!, '-d', controlPlaneUrl], env: {} };
  }
  if (row.isolation === 'database') {
    const url = databaseUrl(row.database_name!);
    return { config: { connectionString: url }, dumpArgs: ['-d', url], env: {} };
  }
  const password = decryptSecret(parseSecretKey(TENANT_SECRET_KEY), row.cluster_admin_password_enc!, row.id);
  return {
    config: { host: '127.0.0.1', port: row.cluster_port!, user: 'postgres', password, database: 'tenant' },
    dumpArgs: ['-h', '127.0.0.1', '-p', String(row.cluster_port), '-U', 'postgres', '-d', 'tenant'],
    env: { PGPASSWORD: password },
  };
}

/** pg_dump -Fc of the tenant's data | pg_restore into a fresh scratch database: the floor. */
async function dumpRestore(row: Tenant, controlPlaneUrl: string, scratch: string): Promise<{ ms: number; bytes: number }> {
  const { dumpArgs, env } = storeConnection(row, controlPlaneUrl);
  await withServerAdmin((admin) => admin.query(`create database ${admin.escapeIdentifier(scratch)}`));
  try {
    const started = performance.now();
    let bytes = 0;
    await new Promise<void>((resolve, reject) => {
      const childEnv = { PATH: process.env.PATH ?? '', ...env };
      const dump = spawn('pg_dump', ['-Fc', '--no-owner', '--no-acl', ...dumpArgs], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
      const restore = spawn('pg_restore', ['--no-owner', '--no-acl', '-d', databaseUrl(scratch)], { env: childEnv, stdio: ['pipe', 'ignore', 'pipe'] });
      let errors = '';
      dump.stderr.on('data', (d) => (errors += d));
      restore.stderr.on('data', (d) => (errors += d));
      dump.stdout.on('data', (d: Buffer) => (bytes += d.length));
      dump.stdout.pipe(restore.stdin);
      let pending = 2;
      const done = (code: number | null, what: string) => {
        if (code !== 0) return reject(new Error(`${what} exited ${code}: ${errors.slice(-500)}`));
        if (--pending === 0) resolve();
      };
      dump.on('exit', (code) => done(code, 'pg_dump'));
      restore.on('exit', (code) => done(code, 'pg_restore'));
    });
    const ms = performance.now() - started;
    // The floor must have restored the same rows.
    const restored = await withServerAdmin(
      async (client) => (await client.query<{ n: number }>('select count(*)::int as n from documents')).rows[0]!.n,
      scratch,
      row.isolation === 'schema' ? row.schema_name! : undefined,
    );
    const source = await countAt(row, controlPlaneUrl);
    if (restored !== source) throw new Error(`pg_restore restored ${restored} rows of ${source}`);
    return { ms, bytes };
  } finally {
    await dropDatabase(scratch);
  }
}

async function withServerAdmin<T>(fn: (client: pg.Client) => Promise<T>, database = 'postgres', searchPath?: string): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl(database), application_name: 'tenantry-bench-moves' });
  await client.connect();
  try {
    if (searchPath) await client.query(`set search_path to ${client.escapeIdentifier(searchPath)}`);
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function countAt(row: Tenant, controlPlaneUrl: string): Promise<number> {
  const client = new pg.Client(storeConnection(row, controlPlaneUrl).config);
  await client.connect();
  try {
    if (row.isolation === 'schema') await client.query(`set search_path to ${client.escapeIdentifier(row.schema_name!)}`);
    return (await client.query<{ n: number }>('select count(*)::int as n from documents')).rows[0]!.n;
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------------------
// Footprint of an empty tenant of each model
// ---------------------------------------------------------------------------------------

interface Footprint {
  isolation: Isolation;
  diskBytes: number;
  processes: number;
  pssBytes: number;
  connections: number;
}

async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += await directoryBytes(full);
    else if (entry.isFile()) total += (await stat(full)).size;
  }
  return total;
}

/** Proportional set size of a process (shared pages divided among their sharers), bytes. */
async function pssOf(pid: number): Promise<number> {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
  const kb = Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0);
  return kb * 1024;
}

/** The postmaster of a data directory and every process it started (ps). */
async function instanceProcesses(dataDir: string): Promise<number[]> {
  const pid = Number((await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  const out = await new Promise<string>((resolve, reject) => {
    const ps = spawn('ps', ['-o', 'pid=', '--ppid', String(pid)]);
    let text = '';
    ps.stdout.on('data', (d) => (text += d));
    ps.on('exit', (code) => (code === 0 || code === 1 ? resolve(text) : reject(new Error(`ps exited ${code}`))));
  });
  return [pid, ...out.split('\n').map((l) => Number(l.trim())).filter((n) => n > 0)];
}

async function footprintOf(row: Tenant, controlPlaneUrl: string): Promise<Footprint> {
  if (row.isolation === 'schema') {
    const { rows } = await withServerAdmin(
      (c) =>
        c.query<{ bytes: string }>(
          `select coalesce(sum(pg_total_relation_size(c.oid)), 0)::text as bytes from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relkind = 'r'`,
          [row.schema_name],
        ),
      new URL(controlPlaneUrl).pathname.slice(1),
    );
    // No process or connection of its own: its requests share the api's control-plane pool.
    return { isolation: 'schema', diskBytes: Number(rows[0]!.bytes), processes: 0, pssBytes: 0, connections: 0 };
  }
  if (row.isolation === 'database') {
    const found = await withServerAdmin((c) =>
      c.query<{ bytes: string; pids: number[] }>(
        `select pg_database_size($1)::text as bytes, array(select pid from pg_stat_activity where datname = $1) as pids`,
        [row.database_name],
      ),
    );
    const pids = found.rows[0]!.pids;
    let pss = 0;
    for (const pid of pids) pss += await pssOf(pid);
    return { isolation: 'database', diskBytes: Number(found.rows[0]!.bytes), processes: pids.length, pssBytes: pss, connections: pids.length };
  }
  const pids = await instanceProcesses(row.cluster_data_dir!);
  let pss = 0;
  for (const pid of pids) pss += await pssOf(pid);
  const client = new pg.Client(storeConnection(row, controlPlaneUrl).config);
  await client.connect();
  let connections: number;
  try {
    // Client backends other than this one (the api's pool), not the background processes.
    connections = (await client.query<{ n: number }>(`select count(*)::int as n from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()`)).rows[0]!.n;
  } finally {
    await client.end();
  }
  return { isolation: 'cluster', diskBytes: await directoryBytes(row.cluster_data_dir!), processes: pids.length, pssBytes: pss, connections };
}

// ---------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------

async function main(teardown: Teardown): Promise<void> {
  const runId = newRunId();
  const bench = benchDatabase('moves', runId);
  const prefix = redisPrefix();
  const clusterRoot = makeClusterRoot();
  const scratch = (i: number) => `tenantry_bench_moves_${runId}_floor${i}`;
  let scratchCount = 0;

  teardown.add('redis keys', () => deleteRedisKeys(prefix));
  teardown.add('bench database', () => bench.drop());
  teardown.add('scratch databases', async () => {
    for (let i = 0; i < scratchCount; i++) await dropDatabase(scratch(i));
  });
  teardown.add('cluster instances', () => destroyClusterRoot(clusterRoot));

  const db = await bench.create({ maxConnections: 4 });
  teardown.add('tenant databases and roles', async () => {
    const dropped = await dropTenantDatabasesOf(bench.name);
    if (dropped.length > 0) console.log(`cleanup: dropped the moves' tenant ${describeDropped(dropped)}`);
  });
  const env = { DATABASE_URL: bench.url, REDIS_PREFIX: prefix };
  const api = await startApi(env);
  teardown.add('api', () => api.close());
  const worker = await startWorker({
    ...env,
    HEALTH_PROBE_INTERVAL_MS: '3600000',
    TENANT_CLUSTER_DATA_DIR: clusterRoot,
    TENANT_CLUSTER_SETTINGS: CLUSTER_SETTINGS.join(' '),
  });
  teardown.add('worker', () => worker.close());

  const admin = <T = any>(method: string, p: string, body?: unknown) => request<T>(api.baseUrl, method, p, { token: PLATFORM_KEY, body });
  const tenantRow = (id: string) => db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

  async function newTenant(isolation: Isolation, label: string): Promise<{ tenantId: string; id: string; token: string }> {
    const email = `${label}-${runId}@example.com`;
    const password = 'violet-otter-stapler-42';
    const created = await admin('POST', '/v1/tenants', { name: `Bench ${label}`, ownerEmail: email, ownerPassword: password, plan: 'enterprise', isolation });
    if (created.status !== 202) throw new Error(`POST /v1/tenants → ${created.status} ${JSON.stringify(created.body)}`);
    const tenantId: string = created.body.tenantId;
    for (let i = 0; ; i++) {
      const res = await admin('GET', `/v1/tenants/${tenantId}`);
      if (res.body.status === 'active') break;
      if (i > 3000) throw new Error(`tenant ${tenantId} not active`);
      await sleep(POLL_MS);
    }
    const login = await request(api.baseUrl, 'POST', '/v1/auth/login', { body: { email, password } });
    return { tenantId, id: fromPublicId('ten', tenantId)!, token: login.body.token };
  }

  async function move(tenant: { tenantId: string; id: string; token: string }, to: Isolation): Promise<Omit<MoveSample, 'floorMs' | 'dumpBytes' | 'docs'>> {
    const from = (await tenantRow(tenant.id)).isolation;
    const writer = new NumberedWriter([api.baseUrl], tenant.token, `bench-${from}-${to}`).start(1);
    await sleep(200);
    const started = performance.now();
    const accepted = await admin('POST', `/v1/tenants/${tenant.tenantId}/move`, { isolation: to });
    if (accepted.status !== 202) throw new Error(`move → ${accepted.status} ${JSON.stringify(accepted.body)}`);
    for (;;) {
      const res = await admin('GET', `/v1/tenants/${tenant.tenantId}/moves/${accepted.body.moveId}`);
      if (res.body.status === 'done') break;
      if (res.body.status === 'rolled_back') throw new Error(`move rolled back: ${res.body.error}`);
      await sleep(POLL_MS);
    }
    const toDoneMs = performance.now() - started;
    await writer.stop();
    const row = await db
      .selectFrom('tenant_moves')
      .select([
        'write_pause_ms',
        sql<number>`extract(epoch from (switched_at - created_at)) * 1000`.as('to_switch_ms'),
        sql<number>`extract(epoch from switched_at) * 1000`.as('switched_ms'),
        sql<number>`extract(epoch from switched_at) * 1000 - write_pause_ms`.as('paused_ms'),
        sql<number>`extract(epoch from (switched_at - (select min(at) from tenant_move_steps s where s.move_id = tenant_moves.id and s.status = 'copying'))) * 1000`.as('copy_to_switch_ms'),
      ])
      .where('tenant_id', '=', tenant.id)
      .orderBy('created_at', 'desc')
      .executeTakeFirstOrThrow();
    const steps = await db
      .selectFrom('tenant_move_steps')
      .innerJoin('tenant_moves', 'tenant_moves.id', 'tenant_move_steps.move_id')
      .select(['tenant_move_steps.status', 'tenant_move_steps.detail'])
      .where('tenant_moves.tenant_id', '=', tenant.id)
      .where('tenant_moves.to_isolation', '=', to)
      .orderBy('tenant_move_steps.id', 'desc')
      .execute();
    const detail = (status: string) => (steps.find((x) => x.status === status)?.detail ?? {}) as Record<string, any>;
    return {
      pauseParts: {
        freezeMs: detail('verifying').freezeMs,
        finalPassMs: detail('verifying').finalPassMs,
        finalPassRows: (detail('verifying').finalPass?.upserted ?? 0) + (detail('verifying').finalPass?.deleted ?? 0),
        verifyMs: detail('switched').verifyMs,
      },
      from,
      to,
      toSwitchMs: Number(row.to_switch_ms),
      copyToSwitchMs: Number(row.copy_to_switch_ms),
      toDoneMs,
      pauseMs: row.write_pause_ms ?? NaN,
      longestWriteMs: writer.longestWaitMs,
      longestPausedWriteMs: Math.max(0, ...writer.spans.filter(([a, b]) => a <= Number(row.switched_ms) && b >= Number(row.paused_ms)).map(([a, b]) => b - a)),
      writes: writer.acked.size,
    };
  }

  console.log(`moves benchmark   (run ${runId})`);
  console.log(`  ${machineLine()}`);
  console.log(`  database ${bench.name}, redis prefix ${prefix}; sizes ${SIZES.join(', ')} documents; hops ${HOPS.map(([f, t]) => `${f} → ${t}`).join(', ')}`);

  const samples: MoveSample[] = [];
  for (const size of SIZES) {
    const tenant = await newTenant('schema', `moves-${size}`);
    const seeded = await tenantRow(tenant.id);
    await sql`insert into ${sql.id(seeded.schema_name!, 'documents')} (tenant_id, collection, data)
      select ${tenant.id}::uuid, 'seed', jsonb_build_object('i', g, 'title', 'document ' || g, 'body', repeat(md5(g::text), 7), 'tags', jsonb_build_array('a', 'b', 'c'))
      from generate_series(1, ${size}) g`.execute(db);
    for (const [from, to] of HOPS) {
      const row = await tenantRow(tenant.id);
      if (row.isolation !== from) throw new Error(`expected the tenant on ${from}, it is on ${row.isolation}`);
      const docs = await countAt(row, bench.url);
      const floor = await dumpRestore(row, bench.url, scratch(scratchCount++));
      const sample = await move(tenant, to);
      samples.push({ ...sample, docs, floorMs: floor.ms, dumpBytes: floor.bytes });
      const s = samples.at(-1)!;
      console.log(
        `  ${`${from} → ${to}`.padEnd(20)} ${String(s.docs).padStart(6)} docs  switch ${s.toSwitchMs.toFixed(0).padStart(6)} ms (copy→switch ${s.copyToSwitchMs.toFixed(0)})  done ${s.toDoneMs.toFixed(0).padStart(6)} ms  ` +
          `pause ${String(s.pauseMs).padStart(5)} ms  longest write ${s.longestPausedWriteMs.toFixed(0).padStart(5)} ms in it (${s.longestWriteMs.toFixed(0)} ms in all)  | dump|restore ${s.floorMs.toFixed(0).padStart(6)} ms (${(s.dumpBytes / 1024).toFixed(0)} KiB)`,
      );
      const p = s.pauseParts;
      console.log(`  ${''.padEnd(20)} pause = freeze ${p.freezeMs} ms + last pass ${p.finalPassMs} ms (${p.finalPassRows} rows) + verification ${p.verifyMs} ms + the switch`);
    }
  }

  console.log('\nPer direction and size (ratios to pg_dump | pg_restore of the same rows, same run)');
  console.log(
    `  ${'direction'.padEnd(20)}${'docs'.padStart(7)}${'switch'.padStart(9)}${'copy→sw'.padStart(9)}${'done'.padStart(9)}${'pause'.padStart(8)}${'dump|rst'.padStart(10)}` +
      `${'switch/floor'.padStart(14)}${'copy/floor'.padStart(12)}${'pause/floor'.padStart(13)}   (ms)`,
  );
  for (const s of samples) {
    console.log(
      `  ${`${s.from} → ${s.to}`.padEnd(20)}${String(s.docs).padStart(7)}${s.toSwitchMs.toFixed(0).padStart(9)}${s.copyToSwitchMs.toFixed(0).padStart(9)}${s.toDoneMs.toFixed(0).padStart(9)}` +
        `${String(s.pauseMs).padStart(8)}${s.floorMs.toFixed(0).padStart(10)}${ratio(s.toSwitchMs, s.floorMs).padStart(14)}${ratio(s.copyToSwitchMs, s.floorMs).padStart(12)}${ratio(s.pauseMs, s.floorMs).padStart(13)}`,
    );
  }
  console.log('  switch: request → routing switched (the tenant served by its target), including making the target (CREATE DATABASE, initdb);');
  console.log('  copy→sw: the target made → switched (copy passes, cutover, verification), what dump|restore into an existing database compares with;');
  console.log('  done: + the source dropped after the 2 s grace.');
  console.log('  pause: writes paused at the api → switch (the move row); the longest single write a client waited during it, and during the whole move, is in the lines above.');

  if (FOOTPRINT) {
    console.log('\nFootprint of an empty tenant (after 20 requests through the api)');
    const footprints: Footprint[] = [];
    for (const isolation of ['schema', 'database', 'cluster'] as const) {
      const tenant = await newTenant(isolation, `footprint-${isolation}`);
      for (let i = 0; i < 20; i++) await request(api.baseUrl, 'GET', '/v1/collections/notes/documents', { token: tenant.token });
      footprints.push(await footprintOf(await tenantRow(tenant.id), bench.url));
    }
    const mib = (b: number) => `${(b / 1024 / 1024).toFixed(2)} MiB`;
    for (const f of footprints) {
      console.log(`  ${f.isolation.padEnd(9)} disk ${mib(f.diskBytes).padStart(11)}   processes ${String(f.processes).padStart(2)}   PSS ${mib(f.pssBytes).padStart(10)}   connections ${f.connections}`);
    }
  }

  console.log('\nTarget');
  const judged = samples.filter((x) => x.docs >= PAUSE_TARGET_SIZE);
  for (const s of judged) {
    console.log(`  ${verdict(s.pauseMs < PAUSE_TARGET_MS)}  write pause < ${PAUSE_TARGET_MS / 1000} s at ${s.docs} documents, ${s.from} → ${s.to} (${s.pauseMs} ms)`);
  }
  // No verdict word here on purpose: a run too small to judge is no evidence either way.
  if (judged.length === 0) console.log(`  not judged: the target applies from ${PAUSE_TARGET_SIZE} documents, and no move this run was that large`);
}

runBenchmark(main);
