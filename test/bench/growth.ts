/**
 * How the control plane's costs grow with the number of tenants (issue 16 §2): tenant
 * list/search, provisioning, the usage flush and the health pass at 1,000, 10,000 and
 * 50,000 tenants, printed as a table with the growth factor per 10×.
 *
 *   pnpm bench:growth      (or: npx tsx test/bench/growth.ts)
 *
 * One database of its own (`tenantry_bench_growth_<random>`, dropped at the end), grown in
 * steps: to reach each size it inserts synthetic tenants in bulk (real provisioning of
 * 50,000 would take hours): schema tenants whose rows are real but whose schema_name all
 * point at the one real schema of an anchor tenant provisioned through the saga, so the
 * health pass probes a real store for every one of them. Statuses and plans are spread
 * like a real fleet (3 in 5 active); each new tenant also gets 6 past hours of apiRequests
 * rollups, so the flush writes into a table of realistic size. Then ANALYZE, and at each size:
 *
 *   list/search — GET /v1/tenants through an in-process api (HTTP round trip) and the
 *     api's listTenants() on the database directly (the floor), BENCH_SAMPLES sequential
 *     calls per shape: first page, a substring search that hits, one that matches nothing,
 *     a plan + status filter;
 *   provisioning — BENCH_PROVISION_SAMPLES schema tenants one after another, POST
 *     /v1/tenants until GET says `active` (test/bench/fleet.ts provisionFleet);
 *   usage flush — applyCounterFlush (what every api instance runs each second) of 1,000
 *     cells for 1,000 tenants drawn from all of them, 5 times (median), and once of one cell
 *     for every tenant (a fleet where every tenant called within the second);
 *   health pass — the worker's probeTenants(): every active tenant probed and recorded.
 *
 * The in-process worker runs with its schedules pushed out (health probes, usage sampling)
 * so that only the measured passes run. Prints the table and the growth factor per 10×
 * (1× flat, 10× linear; a per-tenant pass is linear by nature, so its cost per tenant is
 * printed too), then EXPLAIN ANALYZE of the searches at the largest size. Exits 0 either way.
 *
 * Env: BENCH_GROWTH_SIZES (1000,10000,50000), BENCH_SAMPLES (30), BENCH_PROVISION_SAMPLES (8),
 * TEST_DATABASE_URL / TEST_REDIS_URL.
 */
import { randomUUID } from 'node:crypto';
import { applyCounterFlush } from '@tenantry/db';
import { sql } from 'kysely';
import { listTenants } from '../../apps/api/src/services/tenants.js';
import { PLATFORM_KEY, startApi, startWorker } from '../support/apps.js';
import { request } from '../support/http.js';
import { deleteRedisKeys, redisPrefix } from '../support/redis.js';
import { dropTenantDatabasesOf } from '../support/tenant-databases.js';
import { provisionFleet } from './fleet.js';
import { type Teardown, ascendingIntsKnob, benchDatabase, machineLine, median, newRunId, positiveInt, runBenchmark, summarise } from './support.js';

const SIZES = ascendingIntsKnob('BENCH_GROWTH_SIZES', [1_000, 10_000, 50_000], 10);
const SAMPLES = positiveInt('BENCH_SAMPLES', 30);
const PROVISION_SAMPLES = positiveInt('BENCH_PROVISION_SAMPLES', 8);
const FLUSH_CELLS = 1_000;
const HISTORY_HOURS = 6;
const ROUTE = 'GET /v1/collections/{collection}/documents/{id}';

async function timeEach(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    await fn(i);
    out.push(performance.now() - started);
  }
  return out;
}

interface Measure {
  label: string;
  /** The figure at each size, in ms. */
  values: number[];
  /** A per-tenant pass: print its cost per tenant too. */
  perTenant?: boolean;
}

runBenchmark(async (teardown: Teardown) => {
  const runId = newRunId();
  const bench = benchDatabase('growth', runId);
  const prefix = redisPrefix();
  teardown.add('redis keys', () => deleteRedisKeys(prefix));
  teardown.add('bench database', () => bench.drop());
  const db = await bench.create({ maxConnections: 4 });
  teardown.add('tenant databases and roles', () => dropTenantDatabasesOf(bench.name));
  const env = { DATABASE_URL: bench.url, REDIS_PREFIX: prefix };
  const api = await startApi(env);
  teardown.add('api', () => api.close());
  const worker = await startWorker({ ...env, HEALTH_PROBE_INTERVAL_MS: '86400000', USAGE_SAMPLE_INTERVAL_MS: '86400000' });
  teardown.add('worker', () => worker.close());

  console.log(`growth benchmark   (run ${runId})`);
  console.log(`  ${machineLine()}`);
  console.log(`  sizes ${SIZES.join(', ')}; ${SAMPLES} samples per list shape, ${PROVISION_SAMPLES} provisionings, flush of ${FLUSH_CELLS} cells ×5 and of one cell per tenant`);

  const [anchor] = await provisionFleet(api.baseUrl, runId, { schema: 1 }, { concurrency: 1, label: 'anchor' });
  const { schema_name: anchorSchema } = await db.selectFrom('tenants').select('schema_name').where('id', '=', anchor!.id).executeTakeFirstOrThrow();

  const measures: Record<string, Measure> = {};
  const put = (key: string, label: string, value: number, perTenant = false) => {
    (measures[key] ??= { label, values: [], perTenant }).values.push(value);
  };
  let synthetic = 0;
  let provisioned = 1;
  const flushInstance = randomUUID();
  let flushSeq = 0;
  const thisHour = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000);

  for (const size of SIZES) {
    const target = size - provisioned;
    if (target > synthetic) {
      const grew = performance.now();
      const from = synthetic + 1;
      await sql`
        insert into tenants (id, slug, name, status, plan, isolation, schema_name)
        select gen_random_uuid(), 'g-' || i,
               (array['Acme','Globex','Initech','Umbrella','Hooli','Stark','Wayne','Tyrell'])[1 + i % 8]
                 || ' ' || (array['Labs','Systems','Foods','Cloud','Health','Media'])[1 + i % 6] || ' ' || i,
               (array['active','active','active','suspended','pending_deletion'])[1 + i % 5],
               (array['trial','free','pro','enterprise'])[1 + i % 4], 'schema', ${anchorSchema}
        from generate_series(${from}::int, ${target}::int) as i`.execute(db);
      await sql`
        insert into usage_hourly (tenant_id, meter, hour, route, method, status_class, count)
        select t.id, 'apiRequests', ${thisHour}::timestamptz - make_interval(hours => h), ${ROUTE}, 'GET', '2xx', 1 + h
        from tenants t cross join generate_series(1, ${HISTORY_HOURS}::int) as h
        where t.slug like 'g-%' and substr(t.slug, 3)::int between ${from}::int and ${target}::int`.execute(db);
      await sql`analyze tenants`.execute(db);
      await sql`analyze usage_hourly`.execute(db);
      synthetic = target;
      console.log(`  grew to ${size} tenants in ${((performance.now() - grew) / 1000).toFixed(1)} s`);
    }
    const { n } = await db.selectFrom('tenants').select(sql<string>`count(*)`.as('n')).executeTakeFirstOrThrow();
    const { active } = await db.selectFrom('tenants').select(sql<string>`count(*) filter (where status = 'active' and not is_default)`.as('active')).executeTakeFirstOrThrow();

    // List and search.
    type Input = Parameters<typeof listTenants>[1];
    const shapes: Array<{ key: string; label: string; query: string; input: Input }> = [
      { key: 'first', label: 'list: first page (20)', query: 'limit=20', input: { limit: 20 } },
      { key: 'hit', label: 'search "hooli foods"', query: 'limit=20&search=hooli%20foods', input: { limit: 20, search: 'hooli foods' } },
      { key: 'miss', label: 'search "no such tenant"', query: 'limit=20&search=no%20such%20tenant', input: { limit: 20, search: 'no such tenant' } },
      { key: 'filter', label: 'plan=enterprise&status=suspended', query: 'limit=20&plan=enterprise&status=suspended', input: { limit: 20, plan: 'enterprise', status: 'suspended' } },
    ];
    for (const shape of shapes) {
      const check = await request(api.baseUrl, 'GET', `/v1/tenants?${shape.query}`, { token: PLATFORM_KEY });
      if (check.status !== 200) throw new Error(`/v1/tenants?${shape.query} answered ${check.status}`);
      put(`${shape.key}-http`, `${shape.label}, HTTP p95`, summarise(await timeEach(SAMPLES, () => request(api.baseUrl, 'GET', `/v1/tenants?${shape.query}`, { token: PLATFORM_KEY }))).p95);
      put(`${shape.key}-db`, `${shape.label}, query p95`, summarise(await timeEach(SAMPLES, () => listTenants(db, shape.input))).p95);
    }

    // Provisioning, one after another.
    const provisionMs = await timeEach(PROVISION_SAMPLES, (i) => provisionFleet(api.baseUrl, runId, { schema: 1 }, { concurrency: 1, label: `g${size}-${i}` }));
    provisioned += PROVISION_SAMPLES;
    const p = summarise(provisionMs);
    put('prov-p50', 'provisioning (schema), p50', p.p50);
    put('prov-p95', 'provisioning (schema), p95', p.p95);

    // Usage flush: a fixed batch, then one cell for every tenant.
    const ids = (await db.selectFrom('tenants').select('id').where('is_default', '=', false).execute()).map((r) => r.id);
    const cell = (tenantId: string) => ({ tenantId, meter: 'apiRequests' as const, hour: thisHour, route: ROUTE, method: 'GET', statusClass: '2xx', amount: 1 });
    const batch = await timeEach(5, (round) =>
      applyCounterFlush(db, {
        instanceId: flushInstance,
        seq: ++flushSeq,
        flushedUpTo: new Date(),
        deltas: Array.from({ length: Math.min(FLUSH_CELLS, ids.length) }, (_, i) => cell(ids[(i * 7919 + round * 104_729) % ids.length]!)).filter(
          (d, i, all) => all.findIndex((o) => o.tenantId === d.tenantId) === i,
        ),
      }),
    );
    put('flush-batch', `usage flush, ${FLUSH_CELLS} cells (median)`, median(batch));
    const [flushAll] = await timeEach(1, () => applyCounterFlush(db, { instanceId: flushInstance, seq: ++flushSeq, flushedUpTo: new Date(), deltas: ids.map(cell) }));
    put('flush-all', 'usage flush, 1 cell per tenant', flushAll!, true);

    // Health pass.
    let probed = 0;
    let failed = 0;
    const [health] = await timeEach(1, async () => ({ probed, failed } = await worker.probeTenants()));
    if (failed > 0) console.log(`  health pass at ${size}: ${failed} of ${probed} probes failed`);
    put('health', 'health pass (every active tenant)', health!, true);
    console.log(`  at ${n} tenants (${active} active): measured; health pass probed ${probed} in ${(health! / 1000).toFixed(1)} s`);
  }

  // ---- The table
  const w = 12;
  console.log(`\nCost by number of tenants (ms)`);
  const growthHeads = SIZES.slice(1).map((s, i) => `×/10× ${SIZES[i]! >= 1000 ? `${SIZES[i]! / 1000}k` : SIZES[i]}→${s >= 1000 ? `${s / 1000}k` : s}`);
  console.log(`  ${''.padEnd(44)}${SIZES.map((s) => String(s).padStart(w)).join('')}${growthHeads.map((h) => h.padStart(18)).join('')}`);
  const factor = (a: number, b: number, sa: number, sb: number) => Math.pow(b / a, 1 / Math.log10(sb / sa));
  for (const m of Object.values(measures)) {
    const cells = m.values.map((v) => (v >= 100 ? v.toFixed(0) : v.toFixed(2)).padStart(w)).join('');
    const growth = m.values.slice(1).map((v, i) => `${factor(m.values[i]!, v, SIZES[i]!, SIZES[i + 1]!).toFixed(2)}×`.padStart(18)).join('');
    console.log(`  ${m.label.padEnd(44)}${cells}${growth}`);
    if (m.perTenant) {
      const per = m.values.map((v, i) => `${((1000 * v) / SIZES[i]!).toFixed(1)} µs`.padStart(w)).join('');
      const perGrowth = m.values.slice(1).map((v, i) => `${factor(m.values[i]! / SIZES[i]!, v / SIZES[i + 1]!, SIZES[i]!, SIZES[i + 1]!).toFixed(2)}×`.padStart(18)).join('');
      console.log(`  ${'  per tenant'.padEnd(44)}${per}${perGrowth}`);
    }
  }
  console.log('  (growth per 10×: 1× is flat, 10× linear; from the two sizes either side, as (b/a)^(1/log10(size ratio)))');

  // ---- Where the searches go at the largest size.
  for (const term of ['hooli foods', 'no such tenant']) {
    const pattern = `%${term}%`;
    const plan = await sql<{ 'QUERY PLAN': string }>`
      explain analyze select * from tenants where lower(name) like ${pattern} or slug like ${pattern} order by seq limit 21`.execute(db);
    console.log(`\nplan at ${SIZES.at(-1)} tenants, search "${term}":\n  ${plan.rows.map((r) => r['QUERY PLAN']).join('\n  ')}`);
  }
  console.log(`\n(${machineLine()})`);
});
