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
 * /v1/collections/notes/documents (writes), measured separately, BENCH_CONCURRENCY in
 * flight (closed loop), every request for a tenant drawn
 * uniformly from all of them — so about one in eleven goes to a database tenant, whose
 * per-tenant pools the api keeps in an LRU of TENANT_POOL_MAX (printed; fewer pools than
 * database tenants means pools are evicted and reopened as the load moves).
 * Two servers take the same load from the same client (how they alternate: below):
 *   api  — the real api (tRPC REST adapter, session auth, tenant lookup, entitlements,
 *          tenant store, usage metering), configured like the tests;
 *   bare — node:http + pg with the same SQL in the same kind of transaction (begin;
 *          set_config('app.tenant_id', …, true) and, for schema tenants, search_path and
 *          SET LOCAL ROLE tenantry_data; the query; commit) on pools of the same sizes
 *          — as four round trips, where the api (since 2026-12-03) sends BEGIN with the
 *          tenant context and needs three (BENCH_BARE_BEGIN_WITH_CONTEXT=1 gives bare the same) —
 *          (DB_POOL_SIZE for the shared database; for database tenants a pg.Pool per tenant
 *          as its own role, under the same TENANT_POOL_MAX × TENANT_POOL_SIZE bound: the
 *          server's max_connections could not hold 100 unbounded pools). It looks every
 *          tenant's placement and credentials up once at startup, which the api cannot;
 *          no auth, no tRPC, no entitlements. That gap is what the ratio shows.
 * Both servers run in child processes of their own (test/bench/data-plane-server.ts), so
 * neither shares the load generator's event loop; the client is node:http with keep-alive
 * sockets (one per lane). Each server first takes BENCH_WARMUP mixed requests, not counted
 * (the api's JIT takes thousands of requests to settle: its CPU per request over its first
 * 10,000 is about 1.5 times what it is after, and a production api serves millions; the first
 * warm-up's figures are printed as what each does cold). Then, per operation,
 * BENCH_STRETCHES stretches of BENCH_STRETCH_SECONDS, half each:
 *   - when both servers' pools fit the Postgres server's max_connections together (10
 *     database tenants do on a stock 100; 100 do not), both run throughout and the load
 *     alternates between them stretch by stretch in ABBA order (api, bare, bare, api, …),
 *     so that a drift in this shared machine's speed falls on both alike;
 *   - otherwise one server runs at a time, in four sessions in ABBA order, each with its
 *     warm-up and then a quarter of the stretches of reads and of writes.
 * Each server's k-th stretch of an operation draws the same pseudo-random tenants and
 * documents. The verdicts pool the stretches of each server; the pairs (each server's k-th
 * stretch) give the median and middle half printed as the noise of one pair. (Until
 * 2026-12-02 the servers ran one after the other, a round each, after 1,000 warm-up
 * requests: that measured the api mostly cold, and which server went first moved the ratio
 * by 4–11%.)
 *
 * Metering's cost (target: ≤ 5% throughput, ≤ 1 ms added p95) is measured on one api whose
 * metering is switched off and on under continuous load (data-plane-server.ts takes
 * `{ meter }` messages; off is the api's `deps.usage` unset, as with USAGE_METERING=false),
 * every BENCH_METERING_SEGMENT_SECONDS, BENCH_METERING_SEGMENTS stretches per operation, in
 * ABBA order. The same process serves both kinds of stretch (same JIT state, pools, sockets,
 * port) within seconds of each other. Two processes side by side, the earlier method, could
 * not resolve 5%: with both unmetered (A/A) the one labelled metered "lost" 7% pooled, the
 * two positions differing by 4–11% per round. Switching off first flushes what the meter
 * holds while it still counts, so that flush's cost falls in the metered stretch. First
 * saturated (closed loop, BENCH_CONCURRENCY lanes: throughput), then at a fixed rate of half
 * what the unmetered stretches reached (open loop, latency from each request's scheduled
 * time: at saturation a closed loop's p95 is its queue, concurrency ÷ throughput, and would
 * count a 1% throughput loss as a 1% longer wait rather than what metering adds to a
 * request). Verdicts are pooled over the stretches; the pairs' median and middle half show
 * the noise. Afterwards the api's metrics give the flush latency and the rollup cells
 * written per flush, and a CPU account prices the record calls and the flushes.
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
 * BENCH_DATABASE_TENANTS (100), BENCH_CONCURRENCY (32), BENCH_STRETCHES (16 per operation, rounded up to a
 * multiple of 4), BENCH_STRETCH_SECONDS (3), BENCH_METERING_SEGMENTS (24, rounded
 * up to a multiple of 4), BENCH_METERING_SEGMENT_SECONDS (2), BENCH_METERING_LOAD (0.5: the open loop's rate as a share
 * of the unmetered stretches' saturated rate), BENCH_METERING_CONTROL (1: never switched on, an A/A run that shows the
 * comparison's own noise), BENCH_WARMUP
 * (10000 per server), BENCH_DOCS_PER_TENANT (3), BENCH_PROVISION_CONCURRENCY (8), BENCH_TENANT_POOL_MAX
 * (unset: the api's default), BENCH_BARE_BEGIN_WITH_CONTEXT (1: bare sends BEGIN with the tenant context, three round
 * trips per request as the api's dialect does, instead of four; the ratio then leaves out what the api gains by its
 * round trip), BENCH_SERVER_PROFILE_DIR (a CPU profile of every server session
 * there: `npx tsx test/bench/profile-summary.ts <dir>`), USAGE_FLUSH_INTERVAL_MS (the metered
 * api's, as in production: how metering's cost depends on the flush rate), TEST_LOG_LEVEL.
 */
import path from 'node:path';
import { type ChildProcess, fork } from 'node:child_process';
import { Agent, request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import { UsageMeter, createApiMetrics, parseApiConfig } from '@tenantry/api';
import { sql } from 'kysely';
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
/** The api / bare comparison: stretches per operation (a multiple of 4: whole ABBA groups), half each, and their length. */
const STRETCHES = Math.ceil(positiveInt('BENCH_STRETCHES', 16) / 4) * 4;
const STRETCH_SECONDS = positiveInt('BENCH_STRETCH_SECONDS', 3);
const WARMUP = positiveInt('BENCH_WARMUP', 10_000);
const DOCS_PER_TENANT = positiveInt('BENCH_DOCS_PER_TENANT', 3);
const PROVISION_CONCURRENCY = positiveInt('BENCH_PROVISION_CONCURRENCY', 8);
const TENANT_POOL_MAX = process.env.BENCH_TENANT_POOL_MAX ? String(positiveInt('BENCH_TENANT_POOL_MAX', 50)) : undefined;
/** Connections the pools of the two servers must leave free: Postgres's reserved ones, the monitor, each api's change feed and usage meter, slack. */
const CONNECTION_HEADROOM = 16;
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

type Kind = 'api' | 'bare';
/** ABBA: api, bare, bare, api, … — each pair of stretches has one of each. */
const kindIn = (stretch: number): Kind => (['api', 'bare', 'bare', 'api'] as const)[stretch % 4]!;
/** Stretches per operation and load, half metered (a multiple of 4: whole ABBA groups). */
const METERING_SEGMENTS = Math.ceil(positiveInt('BENCH_METERING_SEGMENTS', 24) / 4) * 4;
const METERING_SEGMENT_SECONDS = positiveInt('BENCH_METERING_SEGMENT_SECONDS', 2);
/** A/A control: both of the pair unmetered, so the figures show the comparison's own noise. */
const METERING_CONTROL = process.env.BENCH_METERING_CONTROL === '1';
/** Bare sends BEGIN with the tenant context, as the api's dialect does: the ratio then shows only what the api's code costs. */
const BARE_BEGIN_WITH_CONTEXT = process.env.BENCH_BARE_BEGIN_WITH_CONTEXT === '1';
/** Metering's added latency is measured at this share of the unmetered api's saturated throughput. */
const METERING_LATENCY_LOAD = Number(process.env.BENCH_METERING_LOAD ?? '0.5');
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

// ---------------------------------------------------------------------------------------
// Metering switched off and on under load
// ---------------------------------------------------------------------------------------

/** One stretch of a toggled phase: what the api served while metered, or while not. */
interface Segment {
  metered: boolean;
  startedAt: number;
  endedAt: number;
  /** Closed loop: per request completed in the stretch. Open loop: per request scheduled in it, from its scheduled time. */
  latencies: number[];
  errors: number;
  firstErrors: string[];
  /** CPU ms of the api process over the stretch. */
  serverCpuMs: number;
}

/** ABBA: metered, unmetered, unmetered, metered, … — each pair of stretches has one of each. */
const meteredIn = (segment: number) => [true, false, false, true][segment % 4]!;

/** Switch the metering api's meter (data-plane-server.ts); resolves once it has. */
function setMetering(server: RunningServer, on: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the api did not switch its metering within 30 s')), 30_000);
    const onMessage = (message: unknown) => {
      if (typeof message !== 'object' || message === null || !('metered' in message)) return;
      clearTimeout(timer);
      server.child.off('message', onMessage);
      if ((message as { metered: boolean }).metered !== on) reject(new Error(`the api reports metered=${String((message as { metered: boolean }).metered)}, wanted ${on}`));
      else resolve();
    };
    server.child.on('message', onMessage);
    server.child.send({ meter: on });
  });
}

/** Requests per second over stretches, pooled: all their requests over all their time. */
const pooledRate = (segments: readonly Segment[]) =>
  segments.reduce((a, g) => a + g.latencies.length, 0) / (segments.reduce((a, g) => a + (g.endedAt - g.startedAt), 0) / 1000);

/**
 * Load on one api without a pause, its metering switched every METERING_SEGMENT_SECONDS
 * (meteredIn); a closed loop of `lanes`, or an open loop at `rate` requests/s. Each stretch
 * keeps its own requests (closed: those completed in it, for its throughput; open: those
 * scheduled in it, for their latency) and the api's CPU over it. Under BENCH_METERING_CONTROL
 * the api is switched off for every stretch, metered or not by the schedule: an A/A run.
 */
async function toggledPhase(
  server: RunningServer,
  agent: Agent,
  tenants: BenchTenant[],
  op: Op,
  load: { lanes: number } | { rate: number },
  seed: number,
): Promise<Segment[]> {
  const random = prng(seed);
  const { port } = server.ready;
  const pid = server.child.pid!;
  const segments: Segment[] = [];
  let current: Segment | undefined;
  const begin = (metered: boolean) => {
    current = { metered, startedAt: performance.now(), endedAt: Number.NaN, latencies: [], errors: 0, firstErrors: [], serverCpuMs: processCpuMs(pid) };
    segments.push(current);
  };
  const end = () => {
    current!.endedAt = performance.now();
    current!.serverCpuMs = processCpuMs(pid) - current!.serverCpuMs;
  };
  const record = (segment: Segment, ms: number, ok: boolean, error: string) => {
    segment.latencies.push(ms);
    if (!ok) {
      segment.errors += 1;
      if (segment.firstErrors.length < 3) segment.firstErrors.push(error);
    }
  };
  let issued = 0;
  const request = () => {
    issued += 1;
    const tenant = tenants[Math.floor(random() * tenants.length)]!;
    const doc = tenant.docs[Math.floor(random() * tenant.docs.length)]!;
    return op === 'read'
      ? send(agent, port, 'GET', `/v1/collections/${COLLECTION}/documents/${doc}`, tenant)
      : send(agent, port, 'POST', `/v1/collections/${COLLECTION}/documents`, tenant, JSON.stringify({ data: { title: `note ${issued}`, n: issued } }));
  };
  const expected = op === 'read' ? 200 : 201;

  await setMetering(server, !METERING_CONTROL && meteredIn(0));
  // Two stretches' worth of load first, not counted: the lanes starting, the pools and the
  // JIT taking to this operation. Counted from the first stretch, that ramp fell on the
  // metered side (an A/A run "lost" 7% of reads to it).
  const warming: Segment = { metered: meteredIn(0), startedAt: performance.now(), endedAt: Number.NaN, latencies: [], errors: 0, firstErrors: [], serverCpuMs: 0 };
  current = warming;
  let running = true;
  const inFlight: Promise<void>[] = [];
  if ('lanes' in load) {
    for (let lane = 0; lane < load.lanes; lane++) {
      inFlight.push(
        (async () => {
          while (running) {
            const t0 = performance.now();
            const reply = await request().catch((err: unknown) => ({ status: 0, body: (err as Error).message }));
            if (running) record(current!, performance.now() - t0, reply.status === expected, `${reply.status} ${reply.body.slice(0, 200)}`);
          }
        })(),
      );
    }
  } else {
    const { rate } = load;
    const started = performance.now();
    inFlight.push(
      (async () => {
        for (let i = 0; running; i++) {
          const scheduled = started + (i * 1000) / rate;
          const wait = scheduled - performance.now();
          if (wait > 1) await sleep(wait);
          if (!running) break;
          const segment = current!;
          inFlight.push(
            request().then(
              (r) => record(segment, performance.now() - scheduled, r.status === expected, `${r.status} ${r.body.slice(0, 200)}`),
              (err: unknown) => record(segment, performance.now() - scheduled, false, (err as Error).message),
            ),
          );
        }
      })(),
    );
  }
  await sleep(2 * METERING_SEGMENT_SECONDS * 1000);
  if (warming.errors > 0) throw new Error(`metering ${op} warm-up: ${warming.errors} errors, e.g. ${warming.firstErrors.join(' | ')}`);
  begin(meteredIn(0));
  for (let i = 1; i <= METERING_SEGMENTS; i++) {
    await sleep(current!.startedAt + METERING_SEGMENT_SECONDS * 1000 - performance.now());
    if (i === METERING_SEGMENTS) break;
    const next = meteredIn(i);
    // The switch is made before the stretch ends: switching off flushes, and that belongs to the metered stretch.
    if (!METERING_CONTROL && next !== current!.metered) await setMetering(server, next);
    end();
    begin(next);
  }
  end();
  running = false;
  await Promise.all(inFlight);
  return segments;
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

function startServer(kind: Kind, env: Record<string, string>): Promise<RunningServer> {
  // V8 CPU profiles of each server session, for test/bench/profile-summary.ts: a directory
  // per session, since Node writes one per thread (tsx's module loader runs in one of its own).
  const profile = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${path.join(PROFILE_DIR, `${kind}-${Date.now()}`)}`] : [];
  const child = fork(SERVER_SCRIPT, [kind], {
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

const rateOf = (phase: PhaseResult) => phase.latencies.length / (phase.wallMs / 1000);


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
  /** Flushes that had no cells to write (tenantry_usage_flush_rows bucket le="0"). */
  empty: number;
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
    empty: Number(/^tenantry_usage_flush_rows_bucket\{le="0"\} (\S+)$/m.exec(text)?.[1] ?? 0),
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
  // Both servers running at once (the comparison alternates the load between them) needs
  // room for both servers' pools on the Postgres server: a stock Postgres's 100 connections
  // hold two servers of 10 + 10 × 2 (10 database tenants), not of 10 + 50 × 2 (100 database
  // tenants, where the pools are busy enough to hold their connections). Without the room,
  // one server runs at a time, in alternating sessions (see the header).
  // What the api child will run with (it reports its own config too, checked below).
  const apiConfig = parseApiConfig({ ...env, TENANT_SECRET_KEY, ...(TENANT_POOL_MAX ? { TENANT_POOL_MAX } : {}) });
  const { rows: settings } = await sql<{ max_connections: string }>`show max_connections`.execute(db);
  const maxConnections = Number(settings[0]!.max_connections);
  const perServer = apiConfig.DB_POOL_SIZE + Math.min(apiConfig.TENANT_POOL_MAX, DATABASE_TENANTS) * apiConfig.TENANT_POOL_SIZE;
  const interleaved = 2 * perServer + CONNECTION_HEADROOM <= maxConnections;

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
  console.log(
    `  round trips to Postgres per request: api 3 (BEGIN sent with the tenant context), bare ${BARE_BEGIN_WITH_CONTEXT ? '3, the same (BENCH_BARE_BEGIN_WITH_CONTEXT=1)' : '4 (BEGIN on its own; BENCH_BARE_BEGIN_WITH_CONTEXT=1 gives it the api\'s 3)'}`,
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
    BARE_BEGIN_WITH_CONTEXT: BARE_BEGIN_WITH_CONTEXT ? '1' : '0',
  };
  const apiEnv = { ...env, ...(TENANT_POOL_MAX ? { TENANT_POOL_MAX } : {}) };

  const results: Record<Kind, Record<Op, PhaseResult[]>> = { api: { read: [], write: [] }, bare: { read: [], write: [] } };
  const upTo = `up to ${perServer} connections each, max_connections ${maxConnections}`;
  console.log(
    interleaved
      ? `  measured: reads, then writes, in ${STRETCHES} stretches of ${STRETCH_SECONDS} s per operation, alternating api and bare in ABBA order ` +
          `(concurrency ${CONCURRENCY}); both servers run throughout (${upTo}), each warmed up first with ${WARMUP} requests not counted`
      : `  measured: one server at a time (both at once would not fit: ${upTo}), in 4 sessions (api, bare, bare, api), each warmed up first with ` +
          `${WARMUP} requests not counted, then ${STRETCHES / 4} stretches of ${STRETCH_SECONDS} s of reads and as many of writes (concurrency ${CONCURRENCY})`,
  );

  /** A server, started, with a keep-alive agent of its own. */
  const launch = async (kind: Kind) => {
    const server = await startServer(kind, kind === 'bare' ? bareEnv : apiEnv);
    teardown.add(`${kind} server`, () => server.stop());
    if (kind === 'api') assertPools(server, { dbPoolSize: apiConfig.DB_POOL_SIZE, tenantPoolMax: apiConfig.TENANT_POOL_MAX, tenantPoolSize: apiConfig.TENANT_POOL_SIZE });
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    return {
      kind,
      agent,
      target: { port: server.ready.port, pid: server.child.pid! },
      async stop() {
        agent.destroy();
        await server.stop();
      },
    };
  };
  type Launched = Awaited<ReturnType<typeof launch>>;
  // Warm-up, not counted (its errors are): the api's JIT takes thousands of requests to
  // settle (its CPU per request over the first 10,000 is about 1.5 times what it is after,
  // on this machine), and a production api serves millions. The first warm-up of each is
  // printed as what it does cold, not judged.
  const warmups: Partial<Record<Kind, PhaseResult>> = {};
  const warmUp = async ({ kind, agent, target }: Launched) => {
    const warm = await runPhase(agent, target, tenants, 'mixed', WARMUP, 7);
    if (warm.errors > 0) throw new Error(`${kind} warm-up: ${warm.errors} errors, e.g. ${warm.firstErrors.join(' | ')}`);
    warmups[kind] ??= warm;
  };
  // The k-th stretch of each server for an operation draws the same tenants and documents in the same order.
  const stretch = async ({ kind, agent, target }: Launched, op: Op) => {
    const seed = 1_000 * (results[kind][op].length + 1) + (op === 'read' ? 1 : 2);
    results[kind][op].push(await runPhase(agent, target, tenants, op, Number.POSITIVE_INFINITY, seed, monitor, STRETCH_SECONDS));
  };

  if (interleaved) {
    const servers: Partial<Record<Kind, Launched>> = {};
    try {
      for (const kind of ['api', 'bare'] as const) servers[kind] = await launch(kind);
      for (const kind of ['api', 'bare'] as const) await warmUp(servers[kind]!);
      for (const op of ['read', 'write'] as const) {
        for (let s = 0; s < STRETCHES; s++) await stretch(servers[kindIn(s)]!, op);
      }
    } finally {
      for (const server of Object.values(servers)) await server.stop();
    }
  } else {
    for (let session = 0; session < 4; session++) {
      const server = await launch(kindIn(session));
      try {
        await warmUp(server);
        for (const op of ['read', 'write'] as const) {
          for (let s = 0; s < STRETCHES / 4; s++) await stretch(server, op);
        }
      } finally {
        await server.stop();
      }
    }
  }

  // Metering: one api, its metering switched off and on under continuous load every
  // METERING_SEGMENT_SECONDS (ABBA order, so a drift in the machine's speed falls on both
  // alike). The same process throughout: the same JIT state, pools, sockets and port, and
  // the same moment's machine for each pair of stretches. Switching off first flushes what
  // the meter holds, while it still counts, so that flush's cost falls in the metered stretch.
  const flushes: FlushStats[] = [];
  const flushCpu = { postgresMs: 0, requests: 0 };
  const meteringServer = await startServer('api', apiEnv);
  teardown.add('metering server', () => meteringServer.stop());
  const meteringAgent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY, scheduling: 'fifo' });
  const metering: Record<Op, { saturated: Segment[]; atLoad: Segment[]; rate: number }> = {
    read: { saturated: [], atLoad: [], rate: 0 },
    write: { saturated: [], atLoad: [], rate: 0 },
  };
  let meteredRequests = 0;
  try {
    const target = { port: meteringServer.ready.port, pid: meteringServer.child.pid! };
    console.log(
      `  metering: one api switched between metered and unmetered every ${METERING_SEGMENT_SECONDS} s under load, ` +
        `${METERING_SEGMENTS} stretches per operation saturated (closed loop, ${CONCURRENCY} lanes) and as many at ${METERING_LATENCY_LOAD * 100}% of the unmetered rate (open loop)` +
        (METERING_CONTROL ? '; BENCH_METERING_CONTROL=1: never switched on, the figures below are the noise of the comparison' : ''),
    );
    const warm = await runPhase(meteringAgent, target, tenants, 'mixed', WARMUP, 11);
    if (warm.errors > 0) throw new Error(`metering warm-up: ${warm.errors} errors, e.g. ${warm.firstErrors.join(' | ')}`);
    meteredRequests += WARMUP;
    for (const op of ['read', 'write'] as const) {
      const saturated = await toggledPhase(meteringServer, meteringAgent, tenants, op, { lanes: CONCURRENCY }, 5_000 + (op === 'read' ? 1 : 2));
      const rate = pooledRate(saturated.filter((g) => !g.metered));
      const atLoad = await toggledPhase(meteringServer, meteringAgent, tenants, op, { rate: METERING_LATENCY_LOAD * rate }, 9_000 + (op === 'read' ? 1 : 2));
      metering[op] = { saturated, atLoad, rate };
      for (const g of [...saturated, ...atLoad]) if (g.metered) meteredRequests += g.latencies.length;
    }
    if (meteringServer.ready.metricsUrl) flushes.push(await flushStats(meteringServer.ready.metricsUrl));
    // What the flushes cost Postgres: the CPU of the backends on the meter's own connection
    // (application_name tenantry-api-usage), over every request it counted.
    flushCpu.postgresMs += await monitor.flushBackendCpuMs();
    flushCpu.requests += meteredRequests;
  } finally {
    meteringAgent.destroy();
    await meteringServer.stop();
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
  const quartiles = (values: number[]) => {
    const sorted = [...values].sort((x, y) => x - y);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    return { q1: at(0.25), median: median(values), q3: at(0.75) };
  };
  const figures = {
    read: { api: pooled(results.api.read), bare: pooled(results.bare.read) },
    write: { api: pooled(results.api.write), bare: pooled(results.bare.write) },
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
    // Each pair of stretches (one api, one bare, seconds apart: pair k is each kind's k-th
    // stretch) on its own: the noise of one pair.
    const pairShares = quartiles(Array.from({ length: STRETCHES / 2 }, (_, k) => rateOf(results.api[op][k]!) / rateOf(results.bare[op][k]!)));
    console.log(
      `  api / bare:  p50 ${ratio(api.all.p50, bare.all.p50)}   p95 ${ratio(api.all.p95, bare.all.p95)}   max ${ratio(api.all.max, bare.all.max)}   ` +
        `throughput ${((100 * api.rate) / bare.rate).toFixed(0)}% of bare (pairs: median ${(100 * pairShares.median).toFixed(0)}%, middle half ${(100 * pairShares.q1).toFixed(0)}% to ${(100 * pairShares.q3).toFixed(0)}%)`,
    );
    for (const e of [...api.firstErrors.map((m) => `api: ${m}`), ...bare.firstErrors.map((m) => `bare: ${m}`)]) console.log(`  error: ${e}`);
  }

  // Metering: pooled over the stretches of each kind, and the spread of the pairs (a
  // metered stretch and the unmetered one beside it) as the comparison's own noise.
  const pairsOf = (segments: Segment[]) => Array.from({ length: segments.length / 2 }, (_, k) => [segments[2 * k]!, segments[2 * k + 1]!] as const).map(([x, y]) => (x.metered ? { on: x, off: y } : { on: y, off: x }));
  const segmentRate = (g: Segment) => g.latencies.length / ((g.endedAt - g.startedAt) / 1000);
  const meteringResult = (op: Op) => {
    const { saturated, atLoad } = metering[op];
    const on = saturated.filter((g) => g.metered);
    const off = saturated.filter((g) => !g.metered);
    const loadOn = summarise(atLoad.filter((g) => g.metered).flatMap((g) => g.latencies));
    const loadOff = summarise(atLoad.filter((g) => !g.metered).flatMap((g) => g.latencies));
    const cpuPerRequest = (gs: Segment[]) => gs.reduce((a, g) => a + g.serverCpuMs, 0) / Math.max(1, gs.reduce((a, g) => a + g.latencies.length, 0));
    return {
      on: { all: summarise(on.flatMap((g) => g.latencies)), rate: pooledRate(on), cpu: cpuPerRequest(on) },
      off: { all: summarise(off.flatMap((g) => g.latencies)), rate: pooledRate(off), cpu: cpuPerRequest(off) },
      loadOn,
      loadOff,
      loss: 1 - pooledRate(on) / pooledRate(off),
      addedP95: loadOn.p95 - loadOff.p95,
      pairLoss: quartiles(pairsOf(saturated).map((p) => 1 - segmentRate(p.on) / segmentRate(p.off))),
      pairAddedP95: quartiles(pairsOf(atLoad).map((p) => summarise(p.on.latencies).p95 - summarise(p.off.latencies).p95)),
      errors: [...saturated, ...atLoad].reduce((a, g) => a + g.errors, 0),
      firstErrors: [...saturated, ...atLoad].flatMap((g) => g.firstErrors.map((m) => `${g.metered ? 'metered' : 'unmetered'}: ${m}`)).slice(0, 6),
    };
  };
  const meteringResults = { read: meteringResult('read'), write: meteringResult('write') };
  console.log(
    header(
      `Metering: one api switched between metered and unmetered every ${METERING_SEGMENT_SECONDS} s under load ` +
        `(${METERING_SEGMENTS / 2} stretches of each per operation and load${METERING_CONTROL ? '; A/A control: never metered' : ''})`,
    ),
  );
  for (const op of ['read', 'write'] as const) {
    const r = meteringResults[op];
    console.log(`  ${title[op]}, saturated (closed loop, ${CONCURRENCY} lanes)`);
    console.log(row('  metered', r.on.all, `${r.on.rate.toFixed(0)} req/s, api cpu ${r.on.cpu.toFixed(3)} ms per request`));
    console.log(row('  unmetered', r.off.all, `${r.off.rate.toFixed(0)} req/s, api cpu ${r.off.cpu.toFixed(3)} ms per request`));
    console.log(`  ${title[op]}, at ${METERING_LATENCY_LOAD * 100}% of the unmetered rate (open loop, ${(METERING_LATENCY_LOAD * metering[op].rate).toFixed(0)} req/s)`);
    console.log(row('  metered', r.loadOn));
    console.log(row('  unmetered', r.loadOff));
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    console.log(
      `  metering:    throughput ${pct(1 - r.loss)} of unmetered (pairs: median ${pct(r.pairLoss.median)} lost, middle half ${pct(r.pairLoss.q1)} to ${pct(r.pairLoss.q3)}); ` +
        `p95 at ${METERING_LATENCY_LOAD * 100}% load ${r.addedP95.toFixed(2)} ms added (pairs: median ${r.pairAddedP95.median.toFixed(2)}, middle half ${r.pairAddedP95.q1.toFixed(2)} to ${r.pairAddedP95.q3.toFixed(2)} ms)`,
    );
    for (const e of r.firstErrors) console.log(`  error: ${e}`);
  }
  if (flushes.length > 0) {
    const n = flushes.reduce((a, f) => a + f.count, 0);
    // Flushes with nothing to write (the meter's timer ticking while switched off) are left out of the per-flush figures.
    const written = n - flushes.reduce((a, f) => a + f.empty, 0);
    const seconds = flushes.reduce((a, f) => a + f.seconds, 0);
    const cells = flushes.reduce((a, f) => a + f.rows, 0);
    console.log(`  usage flushes of the metered api: ${written} with cells to write (${n - written} empty ones while unmetered), ${SCHEMA_TENANTS + DATABASE_TENANTS} tenants drawn uniformly`);
    console.log(
      `  flush latency mean ${((1000 * seconds) / Math.max(1, n)).toFixed(1)} ms (empty ones included), p95 ≤ ${Math.max(...flushes.map((f) => f.p95UpperMs)).toFixed(0)} ms (histogram bucket); ` +
        `rollup cells written per flush mean ${(cells / Math.max(1, written)).toFixed(0)}; failures ${flushes.reduce((a, f) => a + f.failures, 0)}`,
    );
    // Per request: the api's record calls, and its and Postgres's share of the flushes.
    const requestsPerFlush = flushCpu.requests / Math.max(1, written);
    const api = await meteringCpuUs(bench.url, tenants, Math.round(cells / Math.max(1, written)));
    const flushPostgresUs = (1000 * flushCpu.postgresMs) / Math.max(1, flushCpu.requests);
    const flushApiUs = api.flushUs / requestsPerFlush;
    const total = api.recordUs + flushApiUs + flushPostgresUs;
    // Against the api's own CPU per request only: an upper bound of the share.
    const share = (op: Op) => {
      const cpu = meteringResults[op].on.cpu;
      return `${((100 * total) / (1000 * cpu)).toFixed(1)}% of a ${op}'s ${(1000 * cpu).toFixed(0)} µs of api CPU`;
    };
    console.log(
      `  CPU accounting per metered request: record ${api.recordUs.toFixed(2)} µs + flush ${flushApiUs.toFixed(2)} µs in the api ` +
        `(${(api.flushUs / 1000).toFixed(2)} ms per flush of ${Math.round(cells / Math.max(1, written))} cells, ${requestsPerFlush.toFixed(0)} requests per flush) ` +
        `+ flush ${flushPostgresUs.toFixed(2)} µs in Postgres = ${total.toFixed(1)} µs: ${share('read')}, ${share('write')}`,
    );
  }
  console.log(`\nThroughput of each pair of stretches (each server's k-th), api / bare (req/s)${interleaved ? ', in the order run' : ''}`);
  for (const op of ['read', 'write'] as const) {
    const pairs = Array.from({ length: STRETCHES / 2 }, (_, k) => `${rateOf(results.api[op][k]!).toFixed(0)}/${rateOf(results.bare[op][k]!).toFixed(0)}`);
    console.log(`  ${op}s: ${pairs.join(', ')}`);
  }
  console.log('  (peak backends = most connections seen at once on the control-plane database + on the tenant databases, sampled every 250 ms)');
  console.log(`\nWarm-up (${WARMUP} mixed reads and writes per server, not counted): what each does cold`);
  for (const kind of ['api', 'bare'] as const) {
    const w = warmups[kind]!;
    console.log(`  ${kind.padEnd(5)} ${rateOf(w).toFixed(0)} req/s${w.cpu ? `, server cpu ${(w.cpu.server / w.latencies.length).toFixed(2)} ms per request` : ''}`);
  }

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
  // Metering's verdicts are pooled over every stretch of each kind (equal time metered and
  // not, interleaved); the pairs' spread above says how far one pair alone can be off.
  for (const op of ['read', 'write'] as const) {
    const r = meteringResults[op];
    console.log(
      `  ${verdict(r.loss <= METERING_MAX_THROUGHPUT_LOSS)}  metering costs ≤ ${METERING_MAX_THROUGHPUT_LOSS * 100}% of ${op} throughput  ` +
        `(${(100 * r.loss).toFixed(1)}% over ${METERING_SEGMENTS / 2} + ${METERING_SEGMENTS / 2} stretches; median of pairs ${(100 * r.pairLoss.median).toFixed(1)}%)`,
    );
    console.log(
      `  ${verdict(r.addedP95 <= METERING_MAX_ADDED_P95_MS)}  metering adds ≤ ${METERING_MAX_ADDED_P95_MS} ms to ${op} p95         ` +
        `(${r.addedP95.toFixed(2)} ms at ${METERING_LATENCY_LOAD * 100}% load; median of pairs ${r.pairAddedP95.median.toFixed(2)} ms)`,
    );
  }
  const errors = (['read', 'write'] as const).reduce((sum, op) => sum + figures[op].api.errors + figures[op].bare.errors + meteringResults[op].errors, 0);
  console.log(`  ${verdict(errors === 0)}  no failed requests                (${errors})`);
}

runBenchmark(main);
