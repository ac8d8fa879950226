/**
 * Benchmark: GET /v1/tenants at 10,000 tenants.
 *
 * For each query shape (first page, a page deep in the list, substring search, plan filter)
 * it measures the HTTP round trip through the api and, in the same run, the floor: the
 * api's own listTenants() query called directly on the database (no HTTP, auth or JSON).
 * It prints p50/p95 of both and their ratio. Figures, not a test:
 * `npx -y pnpm@10.34.8 bench:tenants`.
 */
import { sql } from 'kysely';
import { listTenants } from '../../apps/api/src/services/tenants.js';
import { PLATFORM_KEY, startApi } from '../support/apps.js';
import { request } from '../support/http.js';
import { deleteRedisKeys, redisPrefix } from '../support/redis.js';
import { benchDatabase, positiveInt, summarise as summary } from './support.js';

const TENANTS = positiveInt('BENCH_TENANTS', 10_000);
const SAMPLES = positiveInt('BENCH_SAMPLES', 200);

async function time(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    await fn();
    out.push(performance.now() - started);
  }
  return out;
}

const bench = benchDatabase('list');
const url = bench.url;
const prefix = redisPrefix();
try {
  const db = await bench.create({ maxConnections: 2 });
  // Realistic-looking names: a word pair and a number, spread over plans and statuses.
  await sql`
    insert into tenants (id, slug, name, status, plan, isolation, schema_name)
    select gen_random_uuid(), 'org-' || i, (array['Acme','Globex','Initech','Umbrella','Hooli','Stark','Wayne','Tyrell'])[1 + i % 8]
             || ' ' || (array['Labs','Systems','Foods','Cloud','Health','Media'])[1 + i % 6] || ' ' || i,
           (array['active','active','active','suspended','pending_deletion'])[1 + i % 5],
           (array['trial','free','pro','enterprise'])[1 + i % 4], 'schema', null
    from generate_series(1, ${TENANTS}) as i`.execute(db);
  await sql`analyze tenants`.execute(db);

  const api = await startApi({ DATABASE_URL: url, REDIS_PREFIX: prefix });
  try {
    const deep = await request(api.baseUrl, 'GET', `/v1/tenants?limit=100`, { token: PLATFORM_KEY });
    let cursor = deep.body.nextCursor as string;
    for (let i = 0; i < 40; i++) cursor = (await request(api.baseUrl, 'GET', `/v1/tenants?limit=100&cursor=${cursor}`, { token: PLATFORM_KEY })).body.nextCursor;

    type Input = Parameters<typeof listTenants>[1];
    const shapes: Array<{ label: string; query: string; input: Input }> = [
      { label: 'first page (limit 20)', query: '', input: { limit: 20 } },
      { label: 'page 42 of 100 (cursor)', query: `&limit=100&cursor=${cursor}`, input: { limit: 100, cursor } },
      { label: 'search "hooli cloud"', query: '&search=hooli%20cloud', input: { limit: 20, search: 'hooli cloud' } },
      { label: 'search "999" (substring)', query: '&search=999', input: { limit: 20, search: '999' } },
      { label: 'search "no such tenant"', query: '&search=no%20such%20tenant', input: { limit: 20, search: 'no such tenant' } },
      { label: 'plan=enterprise&status=suspended', query: '&plan=enterprise&status=suspended', input: { limit: 20, plan: 'enterprise', status: 'suspended' } },
    ];

    console.log(`GET /v1/tenants at ${TENANTS} tenants: ${SAMPLES} sequential requests per shape; floor = listTenants() on the database directly\n`);
    console.log(`${'shape'.padEnd(34)} ${'http p50'.padStart(9)} ${'http p95'.padStart(9)} ${'floor p50'.padStart(10)} ${'floor p95'.padStart(10)} ${'ratio p95'.padStart(10)}`);
    for (const shape of shapes) {
      const path = `/v1/tenants?${shape.query.replace(/^&/, '')}`;
      const check = await request(api.baseUrl, 'GET', path, { token: PLATFORM_KEY });
      if (check.status !== 200) throw new Error(`${path} answered ${check.status}: ${JSON.stringify(check.body)}`);
      const http = summary(await time(SAMPLES, () => request(api.baseUrl, 'GET', path, { token: PLATFORM_KEY })));
      const floor = summary(await time(SAMPLES, () => listTenants(db, shape.input)));
      console.log(
        `${shape.label.padEnd(34)} ${http.p50.toFixed(2).padStart(9)} ${http.p95.toFixed(2).padStart(9)} ${floor.p50.toFixed(2).padStart(10)} ${floor.p95.toFixed(2).padStart(10)} ${(http.p95 / floor.p95).toFixed(1).padStart(9)}×`,
      );
    }
    // Where the search time goes: the plan Postgres picks for a substring that matches nothing.
    const plan = await sql<{ 'QUERY PLAN': string }>`
      explain analyze select * from tenants where lower(name) like '%no such tenant%' or slug like '%no such tenant%' order by seq limit 21`.execute(db);
    console.log(`\nplan for a substring search that matches nothing:\n  ${plan.rows.map((r) => r['QUERY PLAN']).join('\n  ')}`);
  } finally {
    await api.close();
  }
} finally {
  await bench.drop();
  await deleteRedisKeys(prefix);
}
