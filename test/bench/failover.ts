/**
 * Replicated cluster tenants: what synchronous replication costs a write, and how long a
 * failover takes.
 *
 *   pnpm bench:failover      (or: npx tsx test/bench/failover.ts)
 *
 * Real api and worker in-process (test/support/apps.ts), a private control-plane database
 * (`tenantry_bench_failover_<random>`, dropped at the end), real postmasters under a fresh
 * /tmp/tenantry-clusters-* directory (stopped and removed at the end).
 *
 * 1. Cost of replication, in the same run: tenant `none` is provisioned by a worker with
 *    TENANT_CLUSTER_REPLICAS=0, tenant `sync` by one with 1 (synchronous, the default).
 *    BENCH_WRITES documents are then written through the api to each, alternating one by
 *    one so the machine's noise falls on both alike; p50/p95 of each POST.
 * 2. Failover time, BENCH_RUNS times (default 5) on tenant `sync`: SIGKILL its primary
 *    postmaster while a writer keeps posting; the time from the kill to the first 201 after
 *    it, split into detection (kill → failover started: TENANT_CLUSTER_FAILOVER_AFTER_MS
 *    plus up to one watch interval) and promotion (failover started → routing switched),
 *    from the failover's recorded timestamps. Each run waits for the rebuilt standby to
 *    stream before the next.
 *
 * Env: TEST_DATABASE_URL / TEST_REDIS_URL, BENCH_WRITES (200), BENCH_RUNS (5), TEST_LOG_LEVEL.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fromPublicId } from '@tenantry/domain';
import { PLATFORM_KEY, startApi, startWorker } from '../support/apps.js';
import { request } from '../support/http.js';
import { deleteRedisKeys, redisPrefix } from '../support/redis.js';
import { destroyClusterRoot, makeClusterRoot } from '../support/tenant-clusters.js';
import { benchDatabase, epochMs, header, machineLine, median, positiveInt, row, runBenchmark, sleep, summarise } from './support.js';

const WRITES = positiveInt('BENCH_WRITES', 200);
const RUNS = positiveInt('BENCH_RUNS', 5);

runBenchmark(async (teardown) => {
  const database = benchDatabase('failover');
  teardown.add('database', () => database.drop());
  const db = await database.create({ maxConnections: 5 });
  const root = makeClusterRoot();
  teardown.add('clusters', () => destroyClusterRoot(root));
  const prefix = redisPrefix();
  teardown.add('redis keys', () => deleteRedisKeys(prefix));
  const env = { DATABASE_URL: database.url, REDIS_PREFIX: prefix };
  const workerEnv = {
    ...env,
    TENANT_CLUSTER_DATA_DIR: root,
    TENANT_CLUSTER_SETTINGS: 'shared_buffers=8MB max_connections=20',
    HEALTH_PROBE_INTERVAL_MS: '3600000',
  };
  const api = await startApi(env);
  teardown.add('api', () => api.close());

  const provision = async (label: string) => {
    const email = `bench-${label}-${Date.now()}@example.com`;
    const password = 'violet-otter-stapler-42';
    const created = await request(api.baseUrl, 'POST', '/v1/tenants', {
      token: PLATFORM_KEY,
      body: { name: `Bench ${label}`, ownerEmail: email, ownerPassword: password, plan: 'enterprise', isolation: 'cluster' },
    });
    const id = fromPublicId('ten', created.body.tenantId)!;
    for (let i = 0; i < 600; i++) {
      if ((await db.selectFrom('tenants').select('status').where('id', '=', id).executeTakeFirst())?.status === 'active') break;
      await sleep(200);
    }
    const login = await request(api.baseUrl, 'POST', '/v1/auth/login', { body: { email, password } });
    return { id, token: login.body.token as string };
  };

  // Tenant `none` by an unreplicated worker, then `sync` by the default one.
  const unreplicated = await startWorker({ ...workerEnv, TENANT_CLUSTER_REPLICAS: '0' });
  const none = await provision('none');
  await unreplicated.close();
  const worker = await startWorker(workerEnv);
  teardown.add('worker', () => worker.close());
  const sync = await provision('sync');

  const post = async (token: string, n: number) => {
    const started = performance.now();
    const res = await request(api.baseUrl, 'POST', '/v1/collections/bench/documents', { token, body: { data: { n } } }).catch(() => ({ status: 0 }));
    return { ok: res.status === 201, ms: performance.now() - started };
  };
  for (let i = 0; i < 20; i++) await Promise.all([post(none.token, -i), post(sync.token, -i)]);
  const latency = { none: [] as number[], sync: [] as number[] };
  for (let i = 0; i < WRITES; i++) {
    for (const [name, tenant] of i % 2 === 0 ? ([['none', none], ['sync', sync]] as const) : ([['sync', sync], ['none', none]] as const)) {
      const r = await post(tenant.token, i);
      if (!r.ok) throw new Error(`a write to ${name} failed`);
      latency[name].push(r.ms);
    }
  }
  console.log(machineLine());
  console.log(`\nWrite latency through the api (POST /v1/collections/bench/documents), ${WRITES} each, alternating:`);
  console.log(header('cluster tenant'));
  console.log(row('no standby', summarise(latency.none)));
  console.log(row('synchronous standby', summarise(latency.sync)));

  const runs: Array<{ total: number; detection: number; promotion: number }> = [];
  for (let run = 0; run < RUNS; run++) {
    const primary = await db.selectFrom('cluster_instances').selectAll().where('tenant_id', '=', sync.id).where('role', '=', 'primary').where('state', '=', 'active').executeTakeFirstOrThrow();
    const before = await db.selectFrom('cluster_failovers').select('id').where('tenant_id', '=', sync.id).execute();
    let n = 0;
    let firstAfter: number | undefined;
    let stop = false;
    const killedAt = epochMs();
    process.kill(Number(readFileSync(path.join(primary.data_dir, 'postmaster.pid'), 'utf8').split('\n')[0]), 'SIGKILL');
    const writer = (async () => {
      while (!stop) {
        const r = await post(sync.token, 100_000 * (run + 1) + n++);
        if (r.ok && firstAfter === undefined) firstAfter = epochMs() - killedAt;
        if (!r.ok) await sleep(50);
      }
    })();
    while (firstAfter === undefined && epochMs() - killedAt < 120_000) await sleep(50);
    stop = true;
    await writer;
    const failover = await db.selectFrom('cluster_failovers').selectAll().where('tenant_id', '=', sync.id).where('id', 'not in', before.length ? before.map((b) => b.id) : ['00000000-0000-0000-0000-000000000000']).executeTakeFirstOrThrow();
    const started = new Date(failover.started_at).getTime();
    const switched = new Date(failover.switched_at!).getTime();
    runs.push({ total: firstAfter ?? NaN, detection: started - killedAt, promotion: switched - started });
    console.log(`run ${run + 1}: first write after ${(firstAfter! / 1000).toFixed(2)} s (detection ${((started - killedAt) / 1000).toFixed(2)} s, promotion ${((switched - started) / 1000).toFixed(2)} s)`);
    // The next run needs a standby again.
    for (let i = 0; i < 600; i++) {
      const standbys = await db.selectFrom('cluster_instances').select('observed_state').where('tenant_id', '=', sync.id).where('role', '=', 'standby').where('state', '=', 'active').execute();
      const done = await db.selectFrom('cluster_failovers').select('step').where('id', '=', failover.id).executeTakeFirstOrThrow();
      if (done.step === 'done' && standbys.some((s) => s.observed_state === 'streaming')) break;
      await sleep(200);
    }
  }
  console.log(`\nFailover (primary SIGKILLed → first successful write), median of ${runs.length}:`);
  console.log(`  total     ${(median(runs.map((r) => r.total)) / 1000).toFixed(2)} s`);
  console.log(`  detection ${(median(runs.map((r) => r.detection)) / 1000).toFixed(2)} s   (TENANT_CLUSTER_FAILOVER_AFTER_MS 10 s + up to one 1 s watch interval)`);
  console.log(`  promotion ${(median(runs.map((r) => r.promotion)) / 1000).toFixed(2)} s   (fence + pg_promote + routing switch)`);
});
