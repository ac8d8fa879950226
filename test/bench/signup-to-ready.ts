/**
 * Signup → ready, end to end over HTTP, against the floor measured in the same run.
 *
 *   pnpm bench            (or: npx tsx test/bench/signup-to-ready.ts)
 *
 * Starts a real api and worker in-process against a fresh database of its own
 * (`tenantry_bench_<random>`, migrated from scratch, dropped at the end) and a Redis key
 * prefix of its own, then:
 *
 *   1. warm-up: WARMUP signups, not counted;
 *   2. end to end: SIGNUPS signups, CONCURRENCY in flight; each timed from sending
 *      POST /v1/signup until GET /v1/signup/{id} first answers `ready` (polled every
 *      POLL_MS);
 *   3. floor: the same number of iterations at the same concurrency of the work a signup
 *      cannot avoid, executed directly: the argon2id hash (the api's own hashPassword) and
 *      one transaction with the signups, tenants, schema DDL, users, memberships,
 *      billing_states and audit rows.
 *
 * The machine is shared and noisy, so the targets are judged on the end-to-end figures
 * and on their ratio to the floor of the same run. It prints figures and PASS/MISS per
 * target and exits 0 either way; it exits 1 only when something goes wrong.
 *
 * Env: TEST_DATABASE_URL / TEST_REDIS_URL (as the tests), BENCH_SIGNUPS, BENCH_WARMUP,
 * BENCH_CONCURRENCY, TEST_LOG_LEVEL.
 */
import { randomUUID } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { type Db, appendAudit, provisionTenantSchema } from '@tenantry/db';
import { TRIAL_DAYS, TRIAL_PLAN, fromPublicId, slugify, tenantSchemaName } from '@tenantry/domain';
import { sql } from 'kysely';
import { hashPassword } from '../../apps/api/src/services/passwords.js';
import { startApi, startWorker } from '../support/apps.js';
import { request } from '../support/http.js';
import { deleteRedisKeys, redisPrefix } from '../support/redis.js';
import {
  type Teardown,
  benchDatabase,
  epochMs,
  header,
  loopLine,
  machineLine,
  newRunId,
  pool,
  positiveInt,
  row,
  runBenchmark,
  sleep,
  summarise,
  verdict,
  withLoopDelay,
} from './support.js';

const SIGNUPS = positiveInt('BENCH_SIGNUPS', 200);
const WARMUP = positiveInt('BENCH_WARMUP', 10);
const CONCURRENCY = positiveInt('BENCH_CONCURRENCY', 10);
const POLL_MS = 5;
/** A signup not ready after this long is an error, not a slow sample. */
const SIGNUP_TIMEOUT_MS = 60_000;
const PASSWORD = 'violet-otter-stapler-42';

const TARGET_P95_MS = 250;
const TARGET_RATIO = 5;

// ---------------------------------------------------------------------------------------
// End to end
// ---------------------------------------------------------------------------------------

interface SignupSample {
  email: string;
  signupId: string;
  /** Epoch ms: POST sent, 202 received, first `ready` seen. */
  sentAt: number;
  acceptedAt: number;
  readyAt: number;
  totalMs: number;
  postMs: number;
  polls: number;
}

async function signUpAndWait(baseUrl: string, email: string, orgName: string): Promise<SignupSample> {
  const sentAt = epochMs();
  const started = performance.now();
  const accepted = await request(baseUrl, 'POST', '/v1/signup', { body: { email, password: PASSWORD, orgName } });
  const postMs = performance.now() - started;
  const acceptedAt = epochMs();
  if (accepted.status !== 202) throw new Error(`POST /v1/signup → ${accepted.status} ${JSON.stringify(accepted.body)}`);
  const signupId: string = accepted.body.signupId;
  let polls = 0;
  for (;;) {
    const res = await request(baseUrl, 'GET', `/v1/signup/${signupId}`);
    polls += 1;
    const status = res.body?.status;
    if (status === 'ready') {
      const totalMs = performance.now() - started;
      return { email, signupId, sentAt, acceptedAt, readyAt: epochMs(), totalMs, postMs, polls };
    }
    if (res.status !== 200 || status === 'failed') {
      throw new Error(`signup ${signupId} (${email}): GET → ${res.status} ${JSON.stringify(res.body)}`);
    }
    if (performance.now() - started > SIGNUP_TIMEOUT_MS) throw new Error(`signup ${signupId} not ready after ${SIGNUP_TIMEOUT_MS} ms`);
    await sleep(POLL_MS);
  }
}

/**
 * Where the end-to-end time went, from timestamps the app writes anyway. Postgres's now()
 * is the start of the writing transaction, so: created_at ≈ the intent insert (after the
 * hash), and a step's completed_at ≈ the start of the saga's transaction (all steps of a
 * fresh signup share one).
 */
async function phaseBreakdown(db: Db, samples: SignupSample[]) {
  const ids = samples.map((s) => fromPublicId('sgn', s.signupId)).filter((id): id is string => id !== null);
  const rows = await db
    .selectFrom('signups')
    .innerJoin('provisioning_steps as first', (j) => j.onRef('first.tenant_id', '=', 'signups.tenant_id').on('first.step', '=', 'tenant_row'))
    .select(['signups.id', 'signups.created_at', 'first.completed_at as saga_at'])
    .where('signups.id', 'in', ids)
    .execute();
  const byId = new Map(rows.map((r) => [r.id, r]));
  const phases = { accept: [] as number[], toSaga: [] as number[], toSeen: [] as number[], afterInsert: [] as number[] };
  for (const s of samples) {
    const row = byId.get(fromPublicId('sgn', s.signupId) ?? '');
    if (!row) continue;
    const created = row.created_at.getTime();
    const saga = row.saga_at.getTime();
    phases.accept.push(s.postMs);
    phases.afterInsert.push(s.acceptedAt - created);
    phases.toSaga.push(saga - created);
    phases.toSeen.push(s.readyAt - saga);
  }
  return phases;
}

// ---------------------------------------------------------------------------------------
// Floor
// ---------------------------------------------------------------------------------------

interface FloorSample {
  totalMs: number;
  hashMs: number;
  trxMs: number;
}

/** The unavoidable work of one signup, done directly: hash, then one transaction of rows and DDL. */
async function floorOnce(db: Db, email: string, orgName: string): Promise<FloorSample> {
  const started = performance.now();
  const passwordHash = await hashPassword(PASSWORD);
  const hashed = performance.now();
  await db.transaction().execute(async (trx) => {
    const tenantId = randomUUID();
    const schemaName = tenantSchemaName(tenantId);
    const signup = await trx
      .insertInto('signups')
      .values({ email, org_name: orgName, isolation: 'schema', password_hash: passwordHash, status: 'pending', tenant_id: tenantId })
      .returning('id')
      .executeTakeFirstOrThrow();
    await trx
      .insertInto('tenants')
      .values({
        id: tenantId,
        slug: slugify(orgName),
        name: orgName,
        status: 'active',
        plan: TRIAL_PLAN,
        isolation: 'schema',
        schema_name: schemaName,
      })
      .execute();
    await provisionTenantSchema(trx, schemaName);
    const user = await trx.insertInto('users').values({ email, password_hash: passwordHash }).returning('id').executeTakeFirstOrThrow();
    await trx.insertInto('memberships').values({ user_id: user.id, tenant_id: tenantId, role: 'owner' }).execute();
    await trx
      .insertInto('billing_states')
      .values({
        tenant_id: tenantId,
        plan: TRIAL_PLAN,
        subscription_state: 'trial',
        trial_ends_at: sql<Date>`now() + make_interval(days => ${TRIAL_DAYS})`,
      })
      .execute();
    await appendAudit(trx, {
      actor: 'system:worker',
      action: 'tenant.provisioned',
      tenantId,
      data: { signupId: signup.id, isolation: 'schema', plan: TRIAL_PLAN },
    });
  });
  const done = performance.now();
  return { totalMs: done - started, hashMs: hashed - started, trxMs: done - hashed };
}

// ---------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------

async function main(teardown: Teardown): Promise<void> {
  const runId = newRunId();
  const bench = benchDatabase(undefined, runId);
  const prefix = redisPrefix();
  // Last added, first run: worker and api stop before their database is dropped.
  teardown.add('redis keys', () => deleteRedisKeys(prefix));
  teardown.add('bench database', () => bench.drop());

  const setupStarted = performance.now();
  const db = await bench.create({ maxConnections: CONCURRENCY });

  const env = { DATABASE_URL: bench.url, REDIS_PREFIX: prefix };
  const api = await startApi({ ...env, SIGNUP_RATE_LIMIT_PER_HOUR: '100000' });
  teardown.add('api', () => api.close());
  const worker = await startWorker({ ...env, WORKER_CONCURRENCY: String(CONCURRENCY) });
  teardown.add('worker', () => worker.close());
  const baseUrl = api.baseUrl;
  const setupMs = performance.now() - setupStarted;

  console.log(`signup → ready benchmark   (run ${runId})`);
  console.log(`  ${machineLine()}`);
  console.log(`  database ${bench.name}, redis prefix ${prefix}, setup ${setupMs.toFixed(0)} ms`);
  console.log(`  ${SIGNUPS} signups at concurrency ${CONCURRENCY} (+${WARMUP} warm-up), polling every ${POLL_MS} ms; worker concurrency ${CONCURRENCY}`);

  const email = (phase: string, i: number) => `bench-${runId}-${phase}${i}@example.com`;
  const org = (phase: string, i: number) => `Bench ${runId} ${phase} ${i}`;

  // Warm-up: JIT, connection pools, BullMQ scripts, the argon2 binding.
  await pool(WARMUP, CONCURRENCY, (i) => signUpAndWait(baseUrl, email('w', i), org('w', i)));

  // For reference: one hash at a time, nothing else running. CPUs / this bounds throughput.
  const single: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await hashPassword(PASSWORD);
    single.push(performance.now() - t);
  }

  // End to end.
  const e2eStarted = performance.now();
  const { result: samples, loop: e2eLoop } = await withLoopDelay(() =>
    pool(SIGNUPS, CONCURRENCY, (i) => signUpAndWait(baseUrl, email('e', i), org('e', i))),
  );
  const e2eWallMs = performance.now() - e2eStarted;

  const phases = await phaseBreakdown(db, samples);

  // Floor: same process, same database, same concurrency. A short warm-up of its own.
  await pool(Math.min(WARMUP, CONCURRENCY), CONCURRENCY, (i) => floorOnce(db, email('fw', i), org('fw', i)));
  const floorStarted = performance.now();
  const { result: floor, loop: floorLoop } = await withLoopDelay(() =>
    pool(SIGNUPS, CONCURRENCY, (i) => floorOnce(db, email('f', i), org('f', i))),
  );
  const floorWallMs = performance.now() - floorStarted;

  const e2e = summarise(samples.map((s) => s.totalMs));
  const fl = summarise(floor.map((f) => f.totalMs));
  const e2eRate = SIGNUPS / (e2eWallMs / 1000);
  const floorRate = SIGNUPS / (floorWallMs / 1000);

  console.log(header(`End to end: POST /v1/signup → GET reports ready (n=${e2e.n})`));
  console.log(row('signup → ready', e2e, `${e2eRate.toFixed(1)} signups/s`));
  console.log(row('  POST /v1/signup → 202', summarise(phases.accept)));
  console.log(row('  intent row → saga transaction', summarise(phases.toSaga)));
  console.log(row('  saga transaction → client sees ready', summarise(phases.toSeen)));
  console.log(row('  (intent row → 202 received)', summarise(phases.afterInsert)));
  console.log(`  status polls per signup: mean ${(samples.reduce((a, s) => a + s.polls, 0) / samples.length).toFixed(1)}`);
  console.log(loopLine(e2eLoop));

  console.log(header(`Floor: argon2id hash + one transaction (rows + schema DDL), direct (n=${fl.n})`));
  console.log(row('hash + transaction', fl, `${floorRate.toFixed(1)} signups/s`));
  console.log(row('  argon2id hash', summarise(floor.map((f) => f.hashMs))));
  console.log(row('  transaction', summarise(floor.map((f) => f.trxMs))));
  console.log(loopLine(floorLoop));
  const singleHash = summarise(single);
  console.log(
    `  reference: one argon2id hash alone ${singleHash.p50.toFixed(1)} ms (median of 5) → at most ` +
      `~${((availableParallelism() * 1000) / singleHash.p50).toFixed(0)} hashes/s on ${availableParallelism()} cpus`,
  );

  const ratio50 = e2e.p50 / fl.p50;
  const ratio95 = e2e.p95 / fl.p95;
  console.log('\nRatios, end to end / floor (same run)');
  console.log(`  p50 ${ratio50.toFixed(2)}×   p95 ${ratio95.toFixed(2)}×   max ${(e2e.max / fl.max).toFixed(2)}×   throughput ${(floorRate / e2eRate).toFixed(2)}× lower`);

  console.log('\nTargets');
  console.log(`  ${verdict(e2e.p95 < TARGET_P95_MS)}  p95 < ${TARGET_P95_MS} ms            (p95 ${e2e.p95.toFixed(1)} ms)`);
  console.log(`  ${verdict(ratio95 <= TARGET_RATIO)}  p95 ≤ ${TARGET_RATIO}× floor p95      (${ratio95.toFixed(2)}×)`);
}

runBenchmark(main);
