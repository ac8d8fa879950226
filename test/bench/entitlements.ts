/**
 * Benchmark: the entitlement cache (DatabaseSource).
 *
 * (a) Hot path: DatabaseSource.get() on a cache hit, against in the same run a bare
 *     Map.get (the floor of any in-memory cache) and `await` of a Map.get (the floor of
 *     any promise-returning API). ns/op, median of several rounds after a warm-up.
 * (b) Propagation of a billing change across two instances (separate Redis connections,
 *     same channel): update the billing_states row, invalidate on instance A, poll instance
 *     B's get() until it returns the new value. p50/p95/max over 100 changes.
 *
 * Figures, not a test: `npx -y pnpm@10.34.8 bench:entitlements`.
 */
import { randomUUID } from 'node:crypto';
import { insertProvisioningTenant } from '@tenantry/db';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { type DatabaseSource, PostgresBillingStore, createDatabaseSource } from '../../packages/entitlements/src/index.js';
import { TEST_REDIS_URL } from '../support/env.js';
import { deleteRedisKeys, redisPrefix } from '../support/redis.js';
import { benchDatabase, median, positiveInt, summarise } from './support.js';

const OPS = positiveInt('BENCH_OPS', 2_000_000);
const ROUNDS = positiveInt('BENCH_ROUNDS', 7);
const CHANGES = positiveInt('BENCH_CHANGES', 100);
const TENANTS = 1_000;

/** Short timeouts like the api's connections; the offline queue lets setup subscribe before the socket is up. */
function connect(name: string): Redis {
  const redis = new Redis(TEST_REDIS_URL, {
    connectionName: name,
    enableOfflineQueue: true,
    maxRetriesPerRequest: 1,
    commandTimeout: 1_000,
    connectTimeout: 1_000,
    retryStrategy: (times) => Math.min(times * 100, 1_000),
  });
  redis.on('error', () => undefined);
  return redis;
}

type Loop = (n: number) => Promise<number> | number;

/**
 * ns/op of each loop, run `ops` times per round. Rounds are interleaved (every loop once per
 * round) so that load from elsewhere on the machine hits all of them alike; each loop is
 * warmed up first. Reports the median round, and per round the ratio to the first loop.
 */
async function interleaved(ops: number, loops: Loop[]): Promise<Array<{ median: number; rounds: number[]; ratio: number }>> {
  for (const loop of loops) await loop(Math.min(ops, 500_000));
  const rounds = loops.map(() => [] as number[]);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [i, loop] of loops.entries()) {
      const started = process.hrtime.bigint();
      await loop(ops);
      rounds[i]!.push(Number(process.hrtime.bigint() - started) / ops);
    }
  }
  return rounds.map((rs) => ({ median: median(rs), rounds: rs, ratio: median(rs.map((x, r) => x / rounds[0]![r]!)) }));
}

const bench = benchDatabase('ent');
const prefix = redisPrefix();
const channel = `${prefix}:entitlements:invalidate`;
const connections: Redis[] = [];
const sources: DatabaseSource[] = [];
try {
  const db = await bench.create({ maxConnections: 4, applicationName: 'tenantry-bench-entitlements' });
  const ids: string[] = [];
  for (let i = 0; i < TENANTS; i++) ids.push(randomUUID());
  for (const id of ids) await insertProvisioningTenant(db, { id, name: `Bench ${id.slice(0, 8)}`, plan: 'pro', isolation: 'schema' });
  await db
    .insertInto('billing_states')
    .values(ids.map((id) => ({ tenant_id: id, plan: 'pro', subscription_state: 'active' as const, trial_ends_at: null })))
    .execute();
  await sql`analyze billing_states`.execute(db);

  const store = new PostgresBillingStore(db);
  const make = async (label: string) => {
    const publisher = connect(`bench-${label}`);
    const subscriber = publisher.duplicate({ connectionName: `bench-${label}-sub` });
    subscriber.on('error', () => undefined);
    connections.push(publisher, subscriber);
    // An hour's TTL: no entry expires during the run; what is measured is the hit path and invalidation.
    const source = await createDatabaseSource({ store, redis: { subscriber, publisher }, channel, ttlMs: 3_600_000 });
    sources.push(source);
    return source;
  };
  const a = await make('a');
  const b = await make('b');

  // --- (a) hot path ------------------------------------------------------------------------
  const map = new Map<string, { planVersion: number }>();
  for (const id of ids) {
    map.set(id, { planVersion: 1 });
    await a.get(id);
  }
  const key = ids[TENANTS >> 1]!;
  if ((await a.get(key)).origin !== 'cache') throw new Error('expected a cache hit');

  const [bare, awaited, hit, rotating] = await interleaved(OPS, [
    (n) => {
      let acc = 0;
      for (let i = 0; i < n; i++) acc += map.get(key)!.planVersion;
      return acc;
    },
    async (n) => {
      let acc = 0;
      for (let i = 0; i < n; i++) acc += (await Promise.resolve(map.get(key)!)).planVersion;
      return acc;
    },
    async (n) => {
      let acc = 0;
      for (let i = 0; i < n; i++) acc += (await a.get(key)).planVersion;
      return acc;
    },
    // Many tenants, as an api instance sees them: hits on a cache of 1,000 entries, keys rotating.
    async (n) => {
      let acc = 0;
      for (let i = 0; i < n; i++) acc += (await a.get(ids[i % TENANTS]!)).planVersion;
      return acc;
    },
  ]);

  const row = (label: string, r: { median: number; rounds: number[]; ratio: number }) =>
    console.log(
      `  ${label.padEnd(44)} ${r.median.toFixed(1).padStart(7)} ns/op  ${r.ratio.toFixed(1).padStart(6)}×   (rounds: ${r.rounds.map((x) => x.toFixed(0)).join(', ')})`,
    );
  console.log(`(a) hot path: ${OPS.toLocaleString('en')} ops per round, ${ROUNDS} interleaved rounds after a warm-up, median; node ${process.version}`);
  console.log(`    ratio = median over rounds of (ns/op ÷ bare Map.get ns/op in the same round)\n`);
  row('bare Map.get', bare!);
  row('await Promise.resolve(Map.get)', awaited!);
  row('await DatabaseSource.get (hit, one tenant)', hit!);
  row('await DatabaseSource.get (hit, 1,000 tenants)', rotating!);
  console.log(`\n  DatabaseSource.get vs await Map.get (the floor of any async API): ${(hit!.median / awaited!.median).toFixed(2)}×`);

  // --- (b) propagation ---------------------------------------------------------------------
  const tenant = ids[0]!;
  const fromInvalidate: number[] = [];
  const fromUpdate: number[] = [];
  let polls = 0;
  for (let i = 0; i < CHANGES; i++) {
    const version = i + 2;
    // Both instances hold the old value in cache (the first get of a round may load it).
    await a.get(tenant);
    await b.get(tenant);
    const before = await b.get(tenant);
    if (before.origin !== 'cache' || before.planVersion !== version - 1) throw new Error(`B did not have the old value cached: ${JSON.stringify(before)}`);

    const t0 = performance.now();
    await db.updateTable('billing_states').set({ plan_version: version, updated_at: sql`now()` }).where('tenant_id', '=', tenant).execute();
    const t1 = performance.now();
    if (!(await a.invalidate(tenant))) throw new Error('publish failed');
    // Poll tightly, but yield to I/O between polls (a loop of resolved promises would starve the socket).
    for (;;) {
      polls++;
      if ((await b.get(tenant)).planVersion === version) break;
      await new Promise((resolve) => setImmediate(resolve));
      if (performance.now() - t1 > 5_000) throw new Error(`change ${i} not seen by B within 5 s`);
    }
    const t2 = performance.now();
    fromInvalidate.push(t2 - t1);
    fromUpdate.push(t2 - t0);
  }
  const line = (label: string, ms: number[]) => {
    const s = summarise(ms);
    console.log(`  ${label.padEnd(44)} p50 ${s.p50.toFixed(2).padStart(6)} ms   p95 ${s.p95.toFixed(2).padStart(6)} ms   max ${s.max.toFixed(2).padStart(6)} ms`);
  };
  console.log(`\n(b) propagation of ${CHANGES} billing changes, instance A → instance B (separate Redis connections, one channel)\n`);
  line('invalidate on A → B.get() returns new value', fromInvalidate);
  line('UPDATE + invalidate → B.get() returns new', fromUpdate);
  console.log(`  (${(polls / CHANGES).toFixed(1)} polls of B per change on average; B's first poll after the message reloads from Postgres)`);
} finally {
  for (const s of sources) await s.close();
  for (const c of connections) c.disconnect();
  await bench.drop();
  await deleteRedisKeys(prefix);
}
