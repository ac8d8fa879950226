/**
 * The tenant data plane over HTTP — a document read and a document write — against a bare
 * node:http + pg server doing the same queries, measured in the same run.
 *
 *   pnpm bench:data-plane      (or: npx tsx test/bench/data-plane.ts)
 *
 * Setup (not measured), against a database of its own (`tenantry_bench_dp_<random>`,
 * migrated from scratch, dropped at the end) and a Redis key prefix of its own:
 *   1. BENCH_SCHEMA_TENANTS schema tenants and BENCH_DATABASE_TENANTS database tenants
 *      (plan pro), provisioned through the real saga: POST /v1/tenants with the platform key,
 *      no ownerPassword, 8 at a time, each waited for until `active` — by an api and worker
 *      started in-process for this and closed afterwards.
 *   2. Credentials: a session per tenant for its owner, minted directly in the sessions table
 *      with the api's own token format and hash (newSessionToken: `tnt_s_…`, SHA-256 stored).
 *      Fixture setup only: it spares 1,100 argon2 password hashes and logins, which are not
 *      what is measured (and the owners have no password anyway).
 *   3. BENCH_DOCS_PER_TENANT documents per tenant in collection `notes`, through the api.
 *
 * Measured: GET /v1/collections/notes/documents/{id} (reads) and POST
 * /v1/collections/notes/documents (writes), measured separately, BENCH_REQUESTS each (or for
 * BENCH_SECONDS each), BENCH_CONCURRENCY in flight, every request for a tenant drawn
 * uniformly from all of them — so about one in eleven goes to a database tenant, whose
 * per-tenant pools the api keeps in an LRU of TENANT_POOL_MAX (printed; 100 database
 * tenants against the default 50 means pools are evicted and reopened as the load moves).
 * Two servers take the same load from the same client, one after the other:
 *   api  — the real api (tRPC REST adapter, session auth, tenant lookup, entitlements,
 *          tenant store, usage metering), configured like the tests;
 *   bare — node:http + pg with the same SQL in the same kind of transaction (begin;
 *          set_config('app.tenant_id', …, true) and, for schema tenants, search_path and
 *          SET LOCAL ROLE tenantry_data; the query; commit) on pools of the same sizes
 *          (DB_POOL_SIZE for the shared database; for database tenants a pg.Pool per tenant
 *          as its own role, under the same TENANT_POOL_MAX × TENANT_POOL_SIZE bound: the
 *          server's max_connections could not hold 100 unbounded pools). It looks every
 *          tenant's placement and credentials up once at startup, which the api cannot;
 *          no auth, no tRPC, no entitlements. That gap is what the ratio shows.
 * Both servers run in child processes of their own (test/bench/data-plane-server.ts), one at
 * a time, so neither shares the load generator's event loop; the client is node:http with
 * keep-alive sockets (one per lane). Client, server and Postgres share this machine's cores
 * alike for both. BENCH_ROUNDS rounds, alternating which server goes first, each server
 * session starting with BENCH_WARMUP requests not counted; the figures pool the rounds. The
 * same pseudo-random tenant/document sequence is used for both.
 *
 * Metering's cost (target: ≤ 5% throughput, ≤ 1 ms added p95) is measured side by side
 * instead: the api and the same api with USAGE_METERING=false start together and take load
 * at the same moment, half the lanes each (same request sequence), each with half the pools,
 * for BENCH_METERING_SECONDS per operation, BENCH_METERING_ROUNDS rounds. One after the other,
 * the two differed by 10–20% from round to round on this shared machine, more than the
 * budget; side by side the machine's moods fall on both alike, and a server that spends
 * more CPU per request completes fewer in the same seconds. The added p95 is measured after
 * that, still side by side, at a fixed rate of half what the unmetered api reached (open
 * loop, latency from each request's scheduled time): at saturation a closed loop's p95 is
 * its queue, concurrency ÷ throughput, and would count a 1% throughput loss as a 1% longer
 * wait rather than as what metering adds to a request. After each round the metered
 * api's metrics endpoint gives the flush latency and the rollup cells written per flush.
 *
 * It prints p50/p95/max and requests/s of api and bare for reads and writes, their ratios, and
 * PASS/MISS per target; exits 0 either way, 1 only when something goes wrong. Per server it
 * also prints where the CPU went per request (the server process, Postgres, Redis, the load
 * generator, and the rest; from /proc) and how busy the machine was: the client
 * is closed-loop, so once the cores are saturated mean latency is concurrency ÷ throughput,
 * and the latency and throughput figures are one finding, not two. Whatever
 * happens (an error, Ctrl-C) it stops its servers, drops every tenant database and role
 * it made, its database, and its Redis keys.
 *
 * Env: TEST_DATABASE_URL / TEST_REDIS_URL (as the tests), BENCH_SCHEMA_TENANTS (1000),
 * BENCH_DATABASE_TENANTS (100), BENCH_CONCURRENCY (32), BENCH_REQUESTS (5000 per phase,
 * server and round), BENCH_SECONDS (instead of BENCH_REQUESTS), BENCH_ROUNDS (2), BENCH_METERING_SECONDS (10),
 * BENCH_METERING_ROUNDS (BENCH_ROUNDS), BENCH_METERING_CONTROL (1: both of the pair unmetered, an A/A run that shows
 * the comparison's own noise), BENCH_WARMUP
 * (1000), BENCH_DOCS_PER_TENANT (3), BENCH_PROVISION_CONCURRENCY (8), BENCH_TENANT_POOL_MAX
 * (unset: the api's default), BENCH_SERVER_PROFILE_DIR (a CPU profile of every server session
 * there: `npx tsx test/bench/profile-summary.ts <dir>`), USAGE_FLUSH_INTERVAL_MS (the metered
 * api's, as in production: how metering's cost depends on the flush rate), TEST_LOG_LEVEL.
 */
import path from 'node:path';
import { type ChildProcess, fork } from 'node:child_process';
import { Agent, request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import { UsageMeter, createApiMetrics, parseApiConfig } from '@tenantry/api';
import pino from 'pino';
import pg from 'pg';
import { TENANT_SECRET_KEY, startApi, startWorker } from '../support/apps.js';
import { TEST_PG_URL } from '../support/env.js';
import { request } from '../support/http.js';
import { deleteRedisKeys, redisPrefix } from '../support/redis.js';
import { dropTenantDatabasesOf } from '../support/tenant-databases.js';
import type { ServerReady } from './data-plane-server.js';
import { mintSessions, prng, provisionFleet } from './fleet.js';
import {
  type Summary,
  type Teardown,
  benchDatabase,
  describeDropped,
  header,
  machineCpuMs,
  machineLine,
  median,
  newRunId,
  once,
  pool,
  positiveInt,
  processCpuMs,
  ratio,
  row,
  runBenchmark,
  serviceCpuMs,
  sleep,
  summarise,
  verdict,
} from './support.js';

const SCHEMA_TENANTS = positiveInt('BENCH_SCHEMA_TENANTS', 1_000);
const DATABASE_TENANTS = positiveInt('BENCH_DATABASE_TENANTS', 100);
const CONCURRENCY = positiveInt('BENCH_CONCURRENCY', 32);
const REQUESTS = positiveInt('BENCH_REQUESTS', 5_000);
const SECONDS = process.env.BENCH_SECONDS ? positiveInt('BENCH_SECONDS', 1) : undefined;
const ROUNDS = positiveInt('BENCH_ROUNDS', 2);
const WARMUP = positiveInt('BENCH_WARMUP', 1_000);
const DOCS_PER_TENANT = positiveInt('BENCH_DOCS_PER_TENANT', 3);
const PROVISION_CONCURRENCY = positiveInt('BENCH_PROVISION_CONCURRENCY', 8);
const TENANT_POOL_MAX = process.env.BENCH_TENANT_POOL_MAX ? String(positiveInt('BENCH_TENANT_POOL_MAX', 50)) : undefined;
const COLLECTION = 'notes';
const POLL_MS = 10;
const PROVISION_TIMEOUT_MS = 120_000;

/** Issue 16: the api within reach of the bare handler, measured in the same run. */
const TARGET_P95_RATIO = 1.4;
const SEED_TARGET_P95_MS = 100;
const TARGET_THROUGHPUT_SHARE = 0.75;
/** Metering's budget: throughput lost, and p95 added, against the same api unmetered. */
const METERING_MAX_THROUGHPUT_LOSS = 0.05;
const METERING_MAX_ADDED_P95_MS = 1;

type Kind = 'api' | 'unmetered' | 'bare';
/** Measured one after the other, against each other: the api and its floor. */
type Sequential = 'api' | 'bare';
const SEQUENTIAL: readonly Sequential[] = ['api', 'bare'];
/** The side-by-side metering comparison: seconds per operation and round, and rounds. */
const METERING_SECONDS = positiveInt('BENCH_METERING_SECONDS', 10);
const METERING_ROUNDS = positiveInt('BENCH_METERING_ROUNDS', ROUNDS);
/** A/A control: both of the pair unmetered, so the figures show the comparison's own noise. */
const METERING_CONTROL = process.env.BENCH_METERING_CONTROL === '1';
/** Metering's added latency is measured at this share of the unmetered api's saturated throughput. */
const METERING_LATENCY_LOAD = 0.5;
type Op = 'read' | 'write';

interface BenchTenant {
  /** Raw uuid. */
  id: string;
  isolation: 'schema' | 'database';
  token: string;
  docs: string[];
}

// ---------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------

interface Reply {
  status: number;
  body: string;
}

function send(agent: Agent, port: number, method: string, path: string, tenant: BenchTenant, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    // The same headers to both servers: the api reads the bearer, bare the tenant id.
    const headers: Record<string, string | number> = { authorization: `Bearer ${tenant.token}`, 'x-tenant-id': tenant.id };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const req = httpRequest({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

// ---------------------------------------------------------------------------------------
// Where the CPU went (the /proc readers are in support.ts)
// ---------------------------------------------------------------------------------------

interface CpuSnapshot {
  client: number;
  server: number;
  services: { postgres: number; redis: number };
  machine: { busy: number; total: number };
}

function cpuSnapshot(serverPid: number): CpuSnapshot | undefined {
  try {
    const usage = process.cpuUsage();
    return { client: (usage.user + usage.system) / 1000, server: processCpuMs(serverPid), services: serviceCpuMs(), machine: machineCpuMs() };
  } catch {
    return undefined;
  }
}

/**
 * CPU ms spent by the load generator, by the server process, by Postgres and Redis, and by
 * everything else (other processes on this shared machine, backends that exited), and how
 * busy the machine was.
 */
interface CpuUse {
  client: number;
  server: number;
  postgres: number;
  redis: number;
  rest: number;
  busyShare: number;
}

function cpuBetween(a: CpuSnapshot | undefined, b: CpuSnapshot | undefined): CpuUse | undefined {
  if (!a || !b) return undefined;
  const client = b.client - a.client;
  const server = b.server - a.server;
  const postgres = Math.max(0, b.services.postgres - a.services.postgres);
  const redis = Math.max(0, b.services.redis - a.services.redis);
  const busy = b.machine.busy - a.machine.busy;
  return { client, server, postgres, redis, rest: Math.max(0, busy - client - server - postgres - redis), busyShare: busy / (b.machine.total - a.machine.total) };
}

interface PhaseResult {
  latencies: number[];
  /** Per request: was it a database tenant's. */
  database: boolean[];
  wallMs: number;
  errors: number;
  firstErrors: string[];
  /** Tenant-database connections opened during the phase (pg_stat_database.sessions). */
  tenantConnections: number;
  /** Most backends seen at once (sampled) on the control-plane database / the tenant databases. */
  peakBackends: { controlPlane: number; tenantDatabases: number };
  cpu: CpuUse | undefined;
}

interface Monitor {
  sessions(): Promise<number>;
  /** CPU ms so far of the backends serving api usage flushes (the meter's own connections) to this run's database. */
  flushBackendCpuMs(): Promise<number>;
  backends(): Promise<{ controlPlane: number; tenantDatabases: number }>;
}

async function runPhase(
  agent: Agent,
  server: { port: number; pid: number },
  tenants: BenchTenant[],
  op: Op | 'mixed',
  count: number,
  seed: number,
  monitor?: Monitor,
  seconds?: number,
  lanes = CONCURRENCY,
): Promise<PhaseResult> {
  const random = prng(seed);
  const latencies: number[] = [];
  const database: boolean[] = [];
  const firstErrors: string[] = [];
  let errors = 0;
  let issued = 0;
  const deadline = seconds ? performance.now() + seconds * 1000 : Infinity;
  const more = () => (seconds ? performance.now() < deadline : issued < count);

  const peak = { controlPlane: 0, tenantDatabases: 0 };
  let sampling = true;
  const sampler = monitor
    ? (async () => {
        while (sampling) {
          // A failed sample (the monitor connection closed by an interrupted run) ends sampling, not the run.
          const b = await monitor.backends().catch(() => undefined);
          if (!b) break;
          peak.controlPlane = Math.max(peak.controlPlane, b.controlPlane);
          peak.tenantDatabases = Math.max(peak.tenantDatabases, b.tenantDatabases);
          await sleep(250);
        }
      })()
    : undefined;
  const sessionsBefore = monitor ? await monitor.sessions() : 0;

  const { port } = server;
  const cpuBefore = cpuSnapshot(server.pid);
  const started = performance.now();
  const clients = Array.from({ length: lanes }, async () => {
    while (more()) {
      issued += 1;
      const tenant = tenants[Math.floor(random() * tenants.length)]!;
      const doc = tenant.docs[Math.floor(random() * tenant.docs.length)]!;
      const kind = op === 'mixed' ? (random() < 0.5 ? 'read' : 'write') : op;
      const t0 = performance.now();
      let reply: Reply;
      try {
        reply =
          kind === 'read'
            ? await send(agent, port, 'GET', `/v1/collections/${COLLECTION}/documents/${doc}`, tenant)
            : await send(agent, port, 'POST', `/v1/collections/${COLLECTION}/documents`, tenant, JSON.stringify({ data: { title: `note ${issued}`, n: issued } }));
      } catch (err) {
        reply = { status: 0, body: (err as Error).message };
      }
      latencies.push(performance.now() - t0);
      database.push(tenant.isolation === 'database');
      if (reply.status !== (kind === 'read' ? 200 : 201)) {
        errors += 1;
        if (firstErrors.length < 3) firstErrors.push(`${reply.status} ${reply.body.slice(0, 200)}`);
      }
    }
  });
  await Promise.all(clients);
  const wallMs = performance.now() - started;
  const cpu = cpuBetween(cpuBefore, cpuSnapshot(server.pid));
  sampling = false;
  await sampler;
  // Backends report their session counts with their stats, at most about once a second.
  let tenantConnections = 0;
  if (monitor) {
    await sleep(1_100);
    tenantConnections = (await monitor.sessions()) - sessionsBefore;
  }
  return { latencies, database, wallMs, errors, firstErrors, tenantConnections, peakBackends: peak, cpu };
}

/**
 * Open loop: requests sent at a fixed rate, whatever the answers do, for `seconds`; each
 * latency runs from the request's scheduled time (a request sent late because the client
 * was behind counts its wait), so a slow server cannot hide its delay by slowing the load.
 * This is what latency at a given load means; a closed loop at saturation measures queueing.
 */
async function runOpenLoop(agent: Agent, port: number, tenants: BenchTenant[], op: Op, rate: number, seconds: number, seed: number): Promise<{ latencies: number[]; errors: number; firstErrors: string[] }> {
  const random = prng(seed);
  const latencies: number[] = [];
  const firstErrors: string[] = [];
  let errors = 0;
  const total = Math.max(1, Math.round(rate * seconds));
  const started = performance.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const scheduled = started + (i * 1000) / rate;
    const wait = scheduled - performance.now();
    if (wait > 1) await sleep(wait);
    const tenant = tenants[Math.floor(random() * tenants.length)]!;
    const doc = tenant.docs[Math.floor(random() * tenant.docs.length)]!;
    const reply =
      op === 'read'
        ? send(agent, port, 'GET', `/v1/collections/${COLLECTION}/documents/${doc}`, tenant)
        : send(agent, port, 'POST', `/v1/collections/${COLLECTION}/documents`, tenant, JSON.stringify({ data: { title: `note ${i}`, n: i } }));
    inFlight.push(
      reply.then(
        (r) => {
          latencies.push(performance.now() - scheduled);
          if (r.status !== (op === 'read' ? 200 : 201)) {
            errors += 1;
            if (firstErrors.length < 3) firstErrors.push(`${r.status} ${r.body.slice(0, 200)}`);
          }
        },
        (err: unknown) => {
          errors += 1;
          if (firstErrors.length < 3) firstErrors.push((err as Error).message);
        },
      ),
    );
  }
  await Promise.all(inFlight);
  return { latencies, errors, firstErrors };
}

const meterOptions = (databaseUrl: string) => ({
  databaseUrl,
  flushIntervalMs: 3_600_000,
  flushTimeoutMs: 10_000,
  logger: pino({ level: 'silent' }),
  metrics: createApiMetrics(),
});

/**
 * What metering costs the api process, measured alone in this one (the side-by-side run
 * cannot resolve a cost this small), in µs of CPU:
 * - `recordUs`: per request, the two UsageMeter.record calls every metered call makes
 *   (apiRequests with its route dimensions, egressBytes) on this run's tenants;
 * - `flushUs`: per flush of `cells` rollup cells, the api's own side of it (the snapshot,
 *   building the statement, pg's encoding and the answer), against this run's database.
 */
async function meteringCpuUs(databaseUrl: string, tenants: BenchTenant[], cells: number): Promise<{ recordUs: number; flushUs: number }> {
  const cpuUs = () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  };
  const meter = new UsageMeter(meterOptions(databaseUrl));
  const fill = (n: number) => {
    for (let i = 0; i < n; i++) {
      const tenant = tenants[Math.floor(i / 2) % tenants.length]!;
      if (i % 2 === 0) meter.record(tenant.id, 'apiRequests', 1, { route: '/v1/collections/{collection}/documents/{id}', method: 'GET', statusClass: '2xx' });
      else meter.record(tenant.id, 'egressBytes', 180);
    }
  };
  try {
    const calls = 200_000;
    const record: number[] = [];
    for (let round = 0; round < 5; round++) {
      const started = cpuUs();
      fill(2 * calls);
      record.push((cpuUs() - started) / calls);
    }
    await meter.flush(); // the connection opens here, not in a measured flush
    const flush: number[] = [];
    for (let round = 0; round < 10; round++) {
      fill(cells);
      const started = cpuUs();
      await meter.flush();
      flush.push(cpuUs() - started);
    }
    return { recordUs: median(record), flushUs: median(flush) };
  } finally {
    await meter.close(5_000);
  }
}

// ---------------------------------------------------------------------------------------
// The servers
// ---------------------------------------------------------------------------------------

interface RunningServer {
  ready: ServerReady;
  child: ChildProcess;
  stop(): Promise<void>;
}

const PROFILE_DIR = process.env.BENCH_SERVER_PROFILE_DIR;
const SERVER_SCRIPT = fileURLToPath(new URL('./data-plane-server.ts', import.meta.url));
/** Where `--import tsx` resolves (the repository root). */
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

function startServer(kind: Kind, env: Record<string, string>, mode: Kind = kind): Promise<RunningServer> {
  // V8 CPU profiles of each server session, for test/bench/profile-summary.ts: a directory
  // per session, since Node writes one per thread (tsx's module loader runs in one of its own).
  const profile = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${path.join(PROFILE_DIR, `${kind}-${Date.now()}`)}`] : [];
  const child = fork(SERVER_SCRIPT, [mode], {
    execArgv: ['--import', 'tsx', ...profile],
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${kind} server not ready after 60 s`)), 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${kind} server exited (${code}) before it was ready`));
    });
    child.on('message', (message) => {
      if (!(message as ServerReady).ready) return;
      clearTimeout(timer);
      resolve({
        ready: message as ServerReady,
        child,
        async stop() {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.send('close');
          const timeout = setTimeout(() => child.kill('SIGKILL'), 15_000);
          await exited;
          clearTimeout(timeout);
        },
      });
    });
  });
}

const openLoopTotals = () => ({ latencies: [] as number[], errors: 0, firstErrors: [] as string[], rates: [] as number[] });

const rateOf = (phase: PhaseResult) => phase.latencies.length / (phase.wallMs / 1000);

/** Half a pool bound, at least one: each api of the side-by-side pair takes half the load. */
const half = (n: number) => String(Math.max(1, Math.ceil(n / 2)));

/** The server runs with the pools it is reported to run with (its own effective config). */
function assertPools(server: RunningServer, expected: { dbPoolSize: number; tenantPoolMax: number; tenantPoolSize: number }): void {
  const { dbPoolSize, tenantPoolMax, tenantPoolSize } = server.ready;
  if (dbPoolSize !== expected.dbPoolSize || tenantPoolMax !== expected.tenantPoolMax || tenantPoolSize !== expected.tenantPoolSize) {
    throw new Error(`the api runs with other pool sizes than printed: ${JSON.stringify(server.ready)}, expected ${JSON.stringify(expected)}`);
  }
}

interface FlushStats {
  count: number;
  seconds: number;
  rows: number;
  failures: number;
  /** The upper bound of the histogram bucket holding the 95th percentile flush. */
  p95UpperMs: number;
}

/** The usage-flush figures of an api's metrics endpoint (its whole session, warm-up included). */
async function flushStats(metricsUrl: string): Promise<FlushStats> {
  const text = await (await fetch(metricsUrl)).text();
  const value = (name: string) => Number(/^(\S+) (\S+)$/m.exec(text.split('\n').filter((l) => l.startsWith(`${name} `)).join('\n'))?.[2] ?? 0);
  const buckets = [...text.matchAll(/^tenantry_usage_flush_duration_seconds_bucket\{le="([^"]+)"\} (\S+)$/gm)].map((m) => ({ le: Number(m[1]), n: Number(m[2]) }));
  const count = value('tenantry_usage_flush_duration_seconds_count');
  const p95 = buckets.find((b) => b.n >= 0.95 * count);
  return {
    count,
    seconds: value('tenantry_usage_flush_duration_seconds_sum'),
    rows: value('tenantry_usage_flush_rows_sum'),
    failures: value('tenantry_usage_flush_failures_total'),
    p95UpperMs: p95 && Number.isFinite(p95.le) ? p95.le * 1000 : Number.NaN,
  };
}

// ---------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------

async function main(teardown: Teardown): Promise<void> {
  const runId = newRunId();
  const bench = benchDatabase('dp', runId);
  const prefix = redisPrefix();
  teardown.add('redis keys', () => deleteRedisKeys(prefix));
  teardown.add('bench database', () => bench.drop());

  const setupStarted = performance.now();
  const db = await bench.create({ maxConnections: 4 });
  teardown.add('tenant databases and roles', async () => {
    const dropped = await dropTenantDatabasesOf(bench.name);
    if (dropped.length > 0) console.log(`cleanup: dropped the tenant ${describeDropped(dropped)}`);
  });
  const env = { DATABASE_URL: bench.url, REDIS_PREFIX: prefix };
  // What the api child will run with (it reports its own config too, checked below).
  const apiConfig = parseApiConfig({ ...env, TENANT_SECRET_KEY, ...(TENANT_POOL_MAX ? { TENANT_POOL_MAX } : {}) });

  console.log(`data-plane benchmark   (run ${runId})`);
  console.log(`  ${machineLine()}`);
  console.log(
    `  database ${bench.name}, redis prefix ${prefix}; ${SCHEMA_TENANTS} schema + ${DATABASE_TENANTS} database tenants, ` +
      `${DOCS_PER_TENANT} documents each`,
  );
  console.log(
    `  api pools: DB_POOL_SIZE ${apiConfig.DB_POOL_SIZE}, TENANT_POOL_MAX ${apiConfig.TENANT_POOL_MAX}${TENANT_POOL_MAX ? ' (BENCH_TENANT_POOL_MAX)' : ' (default)'} ` +
      `× TENANT_POOL_SIZE ${apiConfig.TENANT_POOL_SIZE} for ${DATABASE_TENANTS} database tenants; bare uses the same bounds`,
  );

  // 1–3: provision, sessions, seed — with an in-process api and worker, closed afterwards.
  let tenants: BenchTenant[];
  {
    const api = await startApi(env);
    const closeApi = once(() => api.close());
    teardown.add('setup api', closeApi);
    const worker = await startWorker({ ...env, WORKER_CONCURRENCY: String(PROVISION_CONCURRENCY), HEALTH_PROBE_INTERVAL_MS: '3600000' });
    const closeWorker = once(() => worker.close());
    teardown.add('setup worker', closeWorker);
    const provisionStarted = performance.now();
    const made = await provisionFleet(api.baseUrl, runId, { schema: SCHEMA_TENANTS, database: DATABASE_TENANTS }, { concurrency: PROVISION_CONCURRENCY, timeoutMs: PROVISION_TIMEOUT_MS, label: 'dp' });
    const provisionMs = performance.now() - provisionStarted;
    await closeWorker();
    tenants = (await mintSessions(db, made)).map((t) => ({ id: t.id, isolation: t.isolation as 'schema' | 'database', token: t.token, docs: [] }));
    const seedStarted = performance.now();
    const seedLatencies: number[] = [];
    await pool(tenants.length * DOCS_PER_TENANT, CONCURRENCY, async (i) => {
      const tenant = tenants[i % tenants.length]!;
      const res = await request(api.baseUrl, 'POST', `/v1/collections/${COLLECTION}/documents`, {
        token: tenant.token,
        body: { data: { title: `seed ${Math.floor(i / tenants.length)}`, n: i } },
      });
      if (res.status !== 201) throw new Error(`seeding tenant ${tenant.id}: ${res.status} ${JSON.stringify(res.body)}`);
      seedLatencies.push(res.ms);
      tenant.docs.push(res.body.id);
    });
    const seedMs = performance.now() - seedStarted;
    await closeApi();
    const seed = summarise(seedLatencies);
    console.log(
      `  setup ${((performance.now() - setupStarted) / 1000).toFixed(1)} s: provisioned ${made.length} tenants in ${(provisionMs / 1000).toFixed(1)} s ` +
        `(${(made.length / (provisionMs / 1000)).toFixed(1)}/s at ${PROVISION_CONCURRENCY}); seeded ${seedLatencies.length} documents in ${(seedMs / 1000).toFixed(1)} s ` +
        `(in-process api, p50 ${seed.p50.toFixed(1)} p95 ${seed.p95.toFixed(1)} ms)`,
    );
  }

  // The monitor: backends and sessions of this run's databases only (others may be busy on this server).
  const tenantDatabases = (
    await db.selectFrom('tenants').select('database_name').where('isolation', '=', 'database').where('database_name', 'is not', null).execute()
  ).map((r) => r.database_name!);
  const admin = new pg.Client({ connectionString: TEST_PG_URL, application_name: 'tenantry-bench-monitor' });
  await admin.connect();
  teardown.add('monitor connection', () => admin.end());
  const monitor: Monitor = {
    async sessions() {
      const { rows } = await admin.query<{ n: string }>('select coalesce(sum(sessions), 0)::text as n from pg_stat_database where datname = any($1)', [tenantDatabases]);
      return Number(rows[0]!.n);
    },
    async flushBackendCpuMs() {
      const { rows } = await admin.query<{ pid: number }>(`select pid from pg_stat_activity where datname = $1 and application_name = 'tenantry-api-usage'`, [bench.name]);
      return rows.reduce((sum, r) => sum + processCpuMs(r.pid), 0);
    },
    async backends() {
      const { rows } = await admin.query<{ cp: string; td: string }>(
        `select count(*) filter (where datname = $1)::text as cp, count(*) filter (where datname = any($2))::text as td
         from pg_stat_activity where backend_type = 'client backend' and application_name <> 'tenantry-bench-monitor'`,
        [bench.name, tenantDatabases],
      );
      return { controlPlane: Number(rows[0]!.cp), tenantDatabases: Number(rows[0]!.td) };
    },
  };

  const bareEnv = {
    ...env,
    DB_POOL_SIZE: String(apiConfig.DB_POOL_SIZE),
    TENANT_POOL_MAX: String(apiConfig.TENANT_POOL_MAX),
    TENANT_POOL_SIZE: String(apiConfig.TENANT_POOL_SIZE),
  };
  const apiEnv = { ...env, ...(TENANT_POOL_MAX ? { TENANT_POOL_MAX } : {}) };

  const results: Record<Sequential, Record<Op, PhaseResult[]>> = { api: { read: [], write: [] }, bare: { read: [], write: [] } };
  const perRound: string[] = [];
  const perPhase = SECONDS ? `${SECONDS} s` : `${REQUESTS} requests`;
  console.log(
    `  measured: reads and writes separately, ${perPhase} each per server and round, concurrency ${CONCURRENCY}, ` +
      `${ROUNDS} rounds (alternating order), ${WARMUP} warm-up requests per server start`,
  );

  for (let round = 0; round < ROUNDS; round++) {
    const order = SEQUENTIAL.map((_, i) => SEQUENTIAL[(i + round) % SEQUENTIAL.length]!);
    const line: string[] = [];
    for (const kind of order) {
      const server = await startServer(kind, kind === 'bare' ? bareEnv : apiEnv);
      teardown.add(`${kind} server`, () => server.stop());
      const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
      try {
        const target = { port: server.ready.port, pid: server.child.pid! };
        if (kind !== 'bare') assertPools(server, { dbPoolSize: apiConfig.DB_POOL_SIZE, tenantPoolMax: apiConfig.TENANT_POOL_MAX, tenantPoolSize: apiConfig.TENANT_POOL_SIZE });
        // Warm-up, not counted; its errors are.
        const warm = await runPhase(agent, target, tenants, 'mixed', WARMUP, 7 + round);
        if (warm.errors > 0) throw new Error(`${kind} warm-up: ${warm.errors} errors, e.g. ${warm.firstErrors.join(' | ')}`);
        for (const op of ['read', 'write'] as const) {
          // Same seed for both servers within a round: the same tenants and documents in the same order.
          const result = await runPhase(agent, target, tenants, op, REQUESTS, 1_000 * (round + 1) + (op === 'read' ? 1 : 2), monitor, SECONDS);
          results[kind][op].push(result);
          line.push(`${kind} ${op} ${rateOf(result).toFixed(0)}/s`);
        }
      } finally {
        agent.destroy();
        await server.stop();
      }
    }
    perRound.push(`  round ${round + 1}: ${line.join(', ')}`);
  }

  // Metering, side by side: the metered and the unmetered api started together and loaded at
  // the same moment, each by half the lanes with the same request sequence, each with half
  // the pools. Taken one after the other (as api and bare are), the two differed by ±10–20%
  // between rounds on this shared machine (other processes, CPU frequency, a server's
  // JIT and pools warming differently), which buried a cost of a few percent. Side by side,
  // whatever the machine does it does to both, and a server that needs more CPU per request
  // completes fewer of them in the same seconds: the throughput difference is metering's.
  const pairEnv = {
    ...env,
    DB_POOL_SIZE: half(apiConfig.DB_POOL_SIZE),
    TENANT_POOL_MAX: half(apiConfig.TENANT_POOL_MAX),
    TENANT_POOL_SIZE: half(apiConfig.TENANT_POOL_SIZE),
  };
  const pairLanes = Math.max(1, Math.floor(CONCURRENCY / 2));
  const metering: Record<'api' | 'unmetered', Record<Op, PhaseResult[]>> = { api: { read: [], write: [] }, unmetered: { read: [], write: [] } };
  const meteringLatency = {
    api: { read: openLoopTotals(), write: openLoopTotals() },
    unmetered: { read: openLoopTotals(), write: openLoopTotals() },
  };
  const flushes: FlushStats[] = [];
  const flushCpu = { postgresMs: 0, requests: 0 };
  /** Each round's paired figures: throughput lost (a share) and p95 added at the open loop's load (ms). */
  const perRoundMetering = { read: { loss: [] as number[], addedP95: [] as number[] }, write: { loss: [] as number[], addedP95: [] as number[] } };
  const perPair: string[] = [];
  console.log(
    `  metering: the api with and without it side by side, ${METERING_ROUNDS} rounds of ${METERING_SECONDS} s per operation, ${pairLanes} lanes each, ` +
      `pools DB_POOL_SIZE ${pairEnv.DB_POOL_SIZE}, TENANT_POOL_MAX ${pairEnv.TENANT_POOL_MAX} × TENANT_POOL_SIZE ${pairEnv.TENANT_POOL_SIZE} each` +
      (METERING_CONTROL ? '; BENCH_METERING_CONTROL=1: both unmetered, the figures below are the noise of the comparison' : ''),
  );
  for (let round = 0; round < METERING_ROUNDS; round++) {
    // Which of the two starts, warms and is first served alternates by round.
    const kinds = round % 2 === 0 ? (['api', 'unmetered'] as const) : (['unmetered', 'api'] as const);
    const servers = await Promise.all(kinds.map((kind) => startServer(kind, pairEnv, METERING_CONTROL ? 'unmetered' : kind)));
    // FIFO: at the open loop's lower rate every socket keeps being used; LIFO would leave some
    // idle past the server's keep-alive timeout (5 s), and a request sent on one as the
    // server closes it fails with "socket hang up".
    const pair = kinds.map((kind, i) => ({ kind, server: servers[i]!, agent: new Agent({ keepAlive: true, maxSockets: pairLanes, scheduling: 'fifo' }) }));
    for (const p of pair) teardown.add(`${p.kind} server`, () => p.server.stop());
    try {
      for (const p of pair) {
        assertPools(p.server, { dbPoolSize: Number(pairEnv.DB_POOL_SIZE), tenantPoolMax: Number(pairEnv.TENANT_POOL_MAX), tenantPoolSize: Number(pairEnv.TENANT_POOL_SIZE) });
      }
      const both = (op: Op | 'mixed', count: number, seed: number, seconds?: number) =>
        Promise.all(pair.map((p) => runPhase(p.agent, { port: p.server.ready.port, pid: p.server.child.pid! }, tenants, op, count, seed, undefined, seconds, pairLanes)));
      /** The pair's results (in `pair` order) by who gave them. */
      const byKind = <T>(results: T[]) => ({ metered: results[pair.findIndex((p) => p.kind === 'api')]!, unmetered: results[pair.findIndex((p) => p.kind === 'unmetered')]! });
      let meteredRequests = 0;
      const warm = await both('mixed', WARMUP, 7 + round);
      meteredRequests += WARMUP;
      warm.forEach((w, i) => {
        if (w.errors > 0) throw new Error(`${pair[i]!.kind} warm-up: ${w.errors} errors, e.g. ${w.firstErrors.join(' | ')}`);
      });
      const line: string[] = [];
      for (const op of ['read', 'write'] as const) {
        const phase = await both(op, 0, 5_000 * (round + 1) + (op === 'read' ? 1 : 2), METERING_SECONDS);
        pair.forEach((p, i) => metering[p.kind][op].push(phase[i]!));
        const saturated = byKind(phase);
        meteredRequests += saturated.metered.latencies.length;
        const loss = 1 - rateOf(saturated.metered) / rateOf(saturated.unmetered);
        // Latency at a given load: both at the same fixed rate, a share of what the unmetered
        // one just managed at saturation, so the p95 measures the request, not the queue.
        const rate = METERING_LATENCY_LOAD * rateOf(saturated.unmetered);
        const open = await Promise.all(pair.map((p) => runOpenLoop(p.agent, p.server.ready.port, tenants, op, rate, METERING_SECONDS, 9_000 * (round + 1) + (op === 'read' ? 1 : 2))));
        const atLoad = byKind(open);
        const addedP95 = summarise(atLoad.metered.latencies).p95 - summarise(atLoad.unmetered.latencies).p95;
        perRoundMetering[op].loss.push(loss);
        perRoundMetering[op].addedP95.push(addedP95);
        pair.forEach((p, i) => {
          const o = open[i]!;
          meteringLatency[p.kind][op].latencies.push(...o.latencies);
          meteringLatency[p.kind][op].errors += o.errors;
          meteringLatency[p.kind][op].firstErrors.push(...o.firstErrors);
          meteringLatency[p.kind][op].rates.push(rate);
        });
        meteredRequests += atLoad.metered.latencies.length;
        line.push(
          `${op} ${rateOf(saturated.metered).toFixed(0)} vs ${rateOf(saturated.unmetered).toFixed(0)}/s (${(100 * loss).toFixed(1)}% lost, ` +
            `p95 at ${METERING_LATENCY_LOAD * 100}% load ${addedP95.toFixed(2)} ms added)`,
        );
      }
      perPair.push(`  round ${round + 1}: metered vs unmetered ${line.join(', ')}`);
      const metered = pair.find((p) => p.kind === 'api')!;
      if (metered.server.ready.metricsUrl) flushes.push(await flushStats(metered.server.ready.metricsUrl));
      // What the flushes cost Postgres: the CPU of the backends on the meter's own connection
      // (application_name tenantry-api-usage), over every request this api session served.
      flushCpu.postgresMs += await monitor.flushBackendCpuMs();
      flushCpu.requests += meteredRequests;
    } finally {
      for (const p of pair) p.agent.destroy();
      await Promise.all(pair.map((p) => p.server.stop()));
    }
  }

  // ---------------------------------------------------------------------------------------
  // Report
  // ---------------------------------------------------------------------------------------
  interface Pooled {
    all: Summary;
    schema: Summary;
    database: Summary;
    rate: number;
    errors: number;
    firstErrors: string[];
    tenantConnections: number;
    peak: { controlPlane: number; tenantDatabases: number };
    /** CPU ms per request: load generator, server process, everything else; machine busy share. */
    cpu: CpuUse | undefined;
  }
  const pooled = (phases: PhaseResult[]): Pooled => {
    const all = phases.flatMap((p) => p.latencies);
    const isDb = phases.flatMap((p) => p.database);
    return {
      all: summarise(all),
      schema: summarise(all.filter((_, i) => !isDb[i])),
      database: summarise(all.filter((_, i) => isDb[i])),
      rate: all.length / (phases.reduce((a, p) => a + p.wallMs, 0) / 1000),
      errors: phases.reduce((a, p) => a + p.errors, 0),
      firstErrors: phases.flatMap((p) => p.firstErrors).slice(0, 3),
      tenantConnections: phases.reduce((a, p) => a + p.tenantConnections, 0),
      peak: {
        controlPlane: Math.max(...phases.map((p) => p.peakBackends.controlPlane)),
        tenantDatabases: Math.max(...phases.map((p) => p.peakBackends.tenantDatabases)),
      },
      cpu: phases.every((p) => p.cpu)
        ? {
            client: phases.reduce((a, p) => a + p.cpu!.client, 0) / all.length,
            server: phases.reduce((a, p) => a + p.cpu!.server, 0) / all.length,
            postgres: phases.reduce((a, p) => a + p.cpu!.postgres, 0) / all.length,
            redis: phases.reduce((a, p) => a + p.cpu!.redis, 0) / all.length,
            rest: phases.reduce((a, p) => a + p.cpu!.rest, 0) / all.length,
            busyShare: phases.reduce((a, p) => a + p.cpu!.busyShare * p.wallMs, 0) / phases.reduce((a, p) => a + p.wallMs, 0),
          }
        : undefined,
    };
  };
  const figures = {
    read: { api: pooled(results.api.read), bare: pooled(results.bare.read) },
    write: { api: pooled(results.api.write), bare: pooled(results.bare.write) },
  };
  const meteringFigures = {
    read: { metered: pooled(metering.api.read), unmetered: pooled(metering.unmetered.read) },
    write: { metered: pooled(metering.api.write), unmetered: pooled(metering.unmetered.write) },
  };
  const title: Record<Op, string> = {
    read: `Reads: GET /v1/collections/${COLLECTION}/documents/{id}`,
    write: `Writes: POST /v1/collections/${COLLECTION}/documents`,
  };
  for (const op of ['read', 'write'] as const) {
    const { api, bare } = figures[op];
    console.log(header(`${title[op]}   (n=${api.all.n} api, ${bare.all.n} bare; concurrency ${CONCURRENCY})`));
    for (const [label, f] of [
      ['api', api],
      ['bare node:http + pg', bare],
    ] as const) {
      console.log(row(label, f.all, `${f.rate.toFixed(0)} req/s${f.errors ? `, ${f.errors} errors` : ''}`));
      console.log(row('  schema tenants', f.schema));
      console.log(row('  database tenants', f.database, `${f.tenantConnections} tenant connections opened, peak backends ${f.peak.controlPlane} + ${f.peak.tenantDatabases}`));
      if (f.cpu) {
        console.log(
          `    cpu per request: server ${f.cpu.server.toFixed(2)} ms, Postgres ${f.cpu.postgres.toFixed(2)} ms, Redis ${f.cpu.redis.toFixed(2)} ms, ` +
            `load generator ${f.cpu.client.toFixed(2)} ms, rest ${f.cpu.rest.toFixed(2)} ms; machine ${(100 * f.cpu.busyShare).toFixed(0)}% busy`,
        );
      }
    }
    console.log(
      `  api / bare:  p50 ${ratio(api.all.p50, bare.all.p50)}   p95 ${ratio(api.all.p95, bare.all.p95)}   max ${ratio(api.all.max, bare.all.max)}   ` +
        `throughput ${((100 * api.rate) / bare.rate).toFixed(0)}% of bare`,
    );
    for (const e of [...api.firstErrors.map((m) => `api: ${m}`), ...bare.firstErrors.map((m) => `bare: ${m}`)]) console.log(`  error: ${e}`);
  }

  console.log(header(`Metering: the api with and without usage metering, side by side (${pairLanes} lanes each, ${METERING_ROUNDS} × ${METERING_SECONDS} s per operation)`));
  const latencyFigures = {
    read: { metered: summarise(meteringLatency.api.read.latencies), unmetered: summarise(meteringLatency.unmetered.read.latencies) },
    write: { metered: summarise(meteringLatency.api.write.latencies), unmetered: summarise(meteringLatency.unmetered.write.latencies) },
  };
  for (const op of ['read', 'write'] as const) {
    const { metered, unmetered } = meteringFigures[op];
    console.log(`  ${title[op]}, saturated (closed loop)`);
    for (const [label, f] of [
      ['  metered', metered],
      ['  unmetered', unmetered],
    ] as const) {
      // Only the server's CPU is its own here: the load generator and the machine serve both.
      const cpu = f.cpu ? `, server cpu ${f.cpu.server.toFixed(2)} ms per request` : '';
      console.log(row(label, f.all, `${f.rate.toFixed(0)} req/s${f.errors ? `, ${f.errors} errors` : ''}${cpu}`));
    }
    const rates = meteringLatency.api[op].rates;
    console.log(`  ${title[op]}, at ${METERING_LATENCY_LOAD * 100}% of that load (open loop, ${rates.map((r) => r.toFixed(0)).join('/')} req/s each)`);
    for (const [label, kind] of [
      ['  metered', 'api'],
      ['  unmetered', 'unmetered'],
    ] as const) {
      const t = meteringLatency[kind][op];
      console.log(row(label, latencyFigures[op][kind === 'api' ? 'metered' : 'unmetered'], t.errors ? `${t.errors} errors` : ''));
    }
    const lm = latencyFigures[op].metered;
    const lu = latencyFigures[op].unmetered;
    console.log(
      `  metering:    throughput ${((100 * metered.rate) / unmetered.rate).toFixed(1)}% of the same api unmetered; ` +
        `p95 at ${METERING_LATENCY_LOAD * 100}% load ${ratio(lm.p95, lu.p95)} (${(lm.p95 - lu.p95).toFixed(2)} ms added), saturated ${(metered.all.p95 - unmetered.all.p95).toFixed(2)} ms`,
    );
    const errs = [
      ...metered.firstErrors.map((m) => `metered: ${m}`),
      ...unmetered.firstErrors.map((m) => `unmetered: ${m}`),
      ...meteringLatency.api[op].firstErrors.map((m) => `metered, open loop: ${m}`),
      ...meteringLatency.unmetered[op].firstErrors.map((m) => `unmetered, open loop: ${m}`),
    ];
    for (const e of errs.slice(0, 6)) console.log(`  error: ${e}`);
  }
  if (flushes.length > 0) {
    const n = flushes.reduce((a, f) => a + f.count, 0);
    const seconds = flushes.reduce((a, f) => a + f.seconds, 0);
    const cells = flushes.reduce((a, f) => a + f.rows, 0);
    console.log(`  usage flushes of the metered api: ${n} over its sessions, ${SCHEMA_TENANTS + DATABASE_TENANTS} tenants drawn uniformly`);
    console.log(
      `  flush latency mean ${((1000 * seconds) / Math.max(1, n)).toFixed(1)} ms, p95 ≤ ${Math.max(...flushes.map((f) => f.p95UpperMs)).toFixed(0)} ms (histogram bucket); ` +
        `rollup cells written per flush mean ${(cells / Math.max(1, n)).toFixed(0)}; failures ${flushes.reduce((a, f) => a + f.failures, 0)}`,
    );
    // Per request: the api's record calls, and its and Postgres's share of the flushes.
    const requestsPerFlush = flushCpu.requests / Math.max(1, n);
    const api = await meteringCpuUs(bench.url, tenants, Math.round(cells / Math.max(1, n)));
    const flushPostgresUs = (1000 * flushCpu.postgresMs) / Math.max(1, flushCpu.requests);
    const flushApiUs = api.flushUs / requestsPerFlush;
    const total = api.recordUs + flushApiUs + flushPostgresUs;
    // Against the api's own CPU per request only (Postgres's is not separable side by side): an upper bound of the share.
    const share = (op: Op) => {
      const cpu = meteringFigures[op].metered.cpu;
      return cpu ? `${((100 * total) / (1000 * cpu.server)).toFixed(1)}% of a ${op}'s ${(1000 * cpu.server).toFixed(0)} µs of api CPU` : `(no CPU figures for ${op}s)`;
    };
    console.log(
      `  CPU accounting per metered request: record ${api.recordUs.toFixed(2)} µs + flush ${flushApiUs.toFixed(2)} µs in the api ` +
        `(${(api.flushUs / 1000).toFixed(2)} ms per flush of ${Math.round(cells / Math.max(1, n))} cells, ${requestsPerFlush.toFixed(0)} requests per flush) ` +
        `+ flush ${flushPostgresUs.toFixed(2)} µs in Postgres = ${total.toFixed(1)} µs: ${share('read')}, ${share('write')}`,
    );
  }
  console.log('\nThroughput per round (req/s)');
  for (const l of perRound) console.log(l);
  for (const l of perPair) console.log(l);
  console.log('  (peak backends = most connections seen at once on the control-plane database + on the tenant databases, sampled every 250 ms)');

  console.log('\nTargets');
  for (const op of ['read', 'write'] as const) {
    const { api, bare } = figures[op];
    const p95Ratio = api.all.p95 / bare.all.p95;
    console.log(`  ${verdict(p95Ratio <= TARGET_P95_RATIO)}  api ${op} p95 ≤ ${TARGET_P95_RATIO}× bare          (p95 ${api.all.p95.toFixed(1)} ms; bare ${bare.all.p95.toFixed(1)} ms: ${p95Ratio.toFixed(2)}×)`);
    console.log(
      `  ${verdict(api.rate >= TARGET_THROUGHPUT_SHARE * bare.rate)}  api ${op} throughput ≥ ${TARGET_THROUGHPUT_SHARE * 100}% of bare   ` +
        `(${api.rate.toFixed(0)} vs ${bare.rate.toFixed(0)} req/s: ${((100 * api.rate) / bare.rate).toFixed(0)}%)`,
    );
    console.log(`  ${verdict(api.all.p95 < SEED_TARGET_P95_MS)}  api ${op} p95 < ${SEED_TARGET_P95_MS} ms (seed target)  (p95 ${api.all.p95.toFixed(1)} ms)`);
  }
  // Metering's verdicts take the median of the rounds' paired figures: a round that outside
  // load (or one server's unlucky start) hit hard moves a pooled figure, not the median.
  for (const op of ['read', 'write'] as const) {
    const loss = median(perRoundMetering[op].loss);
    const added = median(perRoundMetering[op].addedP95);
    console.log(
      `  ${verdict(loss <= METERING_MAX_THROUGHPUT_LOSS)}  metering costs ≤ ${METERING_MAX_THROUGHPUT_LOSS * 100}% of ${op} throughput  ` +
        `(median of ${METERING_ROUNDS} rounds ${(100 * loss).toFixed(1)}%; pooled ${(100 * (1 - meteringFigures[op].metered.rate / meteringFigures[op].unmetered.rate)).toFixed(1)}%)`,
    );
    console.log(
      `  ${verdict(added <= METERING_MAX_ADDED_P95_MS)}  metering adds ≤ ${METERING_MAX_ADDED_P95_MS} ms to ${op} p95         ` +
        `(median of ${METERING_ROUNDS} rounds ${added.toFixed(2)} ms at ${METERING_LATENCY_LOAD * 100}% load; pooled ${(latencyFigures[op].metered.p95 - latencyFigures[op].unmetered.p95).toFixed(2)} ms)`,
    );
  }
  const errors = (['read', 'write'] as const).reduce(
    (sum, op) => sum + figures[op].api.errors + figures[op].bare.errors + meteringFigures[op].metered.errors + meteringFigures[op].unmetered.errors + meteringLatency.api[op].errors + meteringLatency.unmetered[op].errors,
    0,
  );
  console.log(`  ${verdict(errors === 0)}  no failed requests                (${errors})`);
}

runBenchmark(main);
