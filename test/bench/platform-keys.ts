/**
 * What holding the stored platform keys in memory saves a platform call: GET
 * /v1/tenants/{slug} with a platform key, against two apis on one database, one as
 * deployed and one with CREDENTIAL_CACHE_TTL_MS=0 (every call queries platform_keys, as
 * every call did before apps/api/src/services/platform-keys.ts held them).
 *
 *   pnpm bench:platform-keys      (or: npx tsx test/bench/platform-keys.ts)
 *
 * Both apis run in this process, beside the client (so the CPU figure is the client's and
 * both apis' together, per request of the api being measured: its difference is the
 * saving). Sequential requests, BENCH_ROUNDS rounds of BENCH_REQUESTS per api, alternating
 * which goes first, the first round not counted (warm-up); the figures pool the rest. It
 * prints p50/p95/mean and CPU per request of each, and the ratios. Exits 0; 1 only when
 * something goes wrong. Its own database (`tenantry_bench_platform_keys_<random>`) and Redis
 * keys are removed at the end.
 *
 * Env: BENCH_ROUNDS (20), BENCH_REQUESTS (300), TEST_DATABASE_URL / TEST_REDIS_URL.
 */
import { sql } from 'kysely';
import { PLATFORM_KEY, type RunningApi, startApi } from '../support/apps.js';
import { request } from '../support/http.js';
import { deleteRedisKeys, redisPrefix } from '../support/redis.js';
import { benchDatabase, header, machineLine, positiveInt, ratio, row, runBenchmark, summarise } from './support.js';

const ROUNDS = positiveInt('BENCH_ROUNDS', 20);
const REQUESTS = positiveInt('BENCH_REQUESTS', 300);

runBenchmark(async (teardown) => {
  const bench = benchDatabase('platform_keys');
  const prefix = redisPrefix();
  teardown.add('database', () => bench.drop());
  teardown.add('redis keys', () => deleteRedisKeys(prefix));
  const db = await bench.create({ maxConnections: 2 });
  await sql`insert into tenants (id, slug, name, status, plan, isolation) values (gen_random_uuid(), 'bench-platform-keys', 'Bench', 'active', 'pro', 'schema')`.execute(db);

  const apis: Record<'held' | 'queried', RunningApi> = {
    held: await startApi({ DATABASE_URL: bench.url, REDIS_PREFIX: prefix, LOG_LEVEL: 'error' }),
    queried: await startApi({ DATABASE_URL: bench.url, REDIS_PREFIX: prefix, LOG_LEVEL: 'error', CREDENTIAL_CACHE_TTL_MS: '0' }),
  };
  for (const api of Object.values(apis)) teardown.add('api', () => api.close());

  console.log(`platform-keys benchmark\n  ${machineLine()}`);
  const latencies = { held: [] as number[], queried: [] as number[] };
  const cpuMs = { held: 0, queried: 0 };
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? (['held', 'queried'] as const) : (['queried', 'held'] as const);
    for (const name of order) {
      const cpu = process.cpuUsage();
      const ms: number[] = [];
      for (let i = 0; i < REQUESTS; i++) {
        const started = performance.now();
        const res = await request(apis[name].baseUrl, 'GET', '/v1/tenants/bench-platform-keys', { token: PLATFORM_KEY });
        if (res.status !== 200) throw new Error(`${name}: ${res.status} ${JSON.stringify(res.body)}`);
        ms.push(performance.now() - started);
      }
      const used = process.cpuUsage(cpu);
      if (round === 0) continue;
      latencies[name].push(...ms);
      cpuMs[name] += (used.user + used.system) / 1000;
    }
  }
  console.log(header(`GET /v1/tenants/{slug} with a platform key, sequential, ${ROUNDS - 1} rounds of ${REQUESTS} per api (one more as warm-up)`));
  const held = summarise(latencies.held);
  const queried = summarise(latencies.queried);
  const cpuPer = (name: 'held' | 'queried') => cpuMs[name] / latencies[name].length;
  console.log(row('  keys held in memory', held, `cpu ${cpuPer('held').toFixed(3)} ms per request (client and both apis)`));
  console.log(row('  keys queried per call', queried, `cpu ${cpuPer('queried').toFixed(3)} ms per request (client and both apis)`));
  console.log(
    `  held / queried:  p50 ${ratio(held.p50, queried.p50)}   p95 ${ratio(held.p95, queried.p95)}   mean ${ratio(held.mean, queried.mean)}   cpu ${ratio(cpuPer('held'), cpuPer('queried'))}`,
  );
});
