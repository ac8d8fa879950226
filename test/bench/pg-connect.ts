/**
 * What a new Postgres connection costs next to a reused one: the price of a tenant pool
 * the api evicts and reopens (TENANT_POOL_MAX fewer than the database tenants in use;
 * docs/ops/scaling.md).
 *
 *   pnpm bench:pg-connect      (or: npx tsx test/bench/pg-connect.ts)
 *
 * One tenant-store transaction (begin; set_config('app.tenant_id', …, true); a primary-key
 * read; commit), BENCH_OPS times on one connection kept open, and BENCH_OPS times on a
 * connection opened for it and closed after, with node-postgres as the api uses it,
 * BENCH_ROUNDS rounds alternating which goes first. Per transaction it prints the wall
 * time, this process's CPU, and the whole machine's busy CPU (from /proc/stat: a backend
 * that exits takes its own CPU figures with it, so only the machine-wide count sees what
 * starting and ending one costs), and the ratios of new to reused. Exits 0; 1 only when
 * something goes wrong. Its database (`tenantry_bench_connect_<random>`) is dropped at the
 * end.
 *
 * Env: BENCH_OPS (200), BENCH_ROUNDS (2), TEST_DATABASE_URL.
 */
import pg from 'pg';
import { benchDatabase, machineCpuMs, machineLine, positiveInt, runBenchmark } from './support.js';

const OPS = positiveInt('BENCH_OPS', 200);
const ROUNDS = positiveInt('BENCH_ROUNDS', 2);
const NO_TENANT = '00000000-0000-0000-0000-000000000000';

interface Cost {
  wallMs: number;
  clientCpuMs: number;
  machineBusyMs: number;
}

async function transaction(client: pg.Client): Promise<void> {
  await client.query('begin');
  await client.query(`select set_config('app.tenant_id', $1, true)`, [NO_TENANT]);
  await client.query('select id from tenants where id = $1', [NO_TENANT]);
  await client.query('commit');
}

async function measure(url: string, fresh: boolean): Promise<Cost> {
  const machine = machineCpuMs();
  const cpu = process.cpuUsage();
  const started = performance.now();
  const shared = fresh ? undefined : new pg.Client({ connectionString: url, application_name: 'tenantry-bench-connect' });
  await shared?.connect();
  for (let i = 0; i < OPS; i++) {
    const client = shared ?? new pg.Client({ connectionString: url, application_name: 'tenantry-bench-connect' });
    if (!shared) await client.connect();
    await transaction(client);
    if (!shared) await client.end();
  }
  await shared?.end();
  const wallMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return { wallMs: wallMs / OPS, clientCpuMs: (used.user + used.system) / 1000 / OPS, machineBusyMs: (machineCpuMs().busy - machine.busy) / OPS };
}

runBenchmark(async (teardown) => {
  const bench = benchDatabase('connect');
  teardown.add('database', () => bench.drop());
  await bench.create({ maxConnections: 1 });
  console.log(`pg-connect benchmark: ${OPS} transactions per kind and round, ${ROUNDS} rounds`);
  console.log(`  ${machineLine()}`);

  const totals = { reused: [] as Cost[], fresh: [] as Cost[] };
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? (['reused', 'fresh'] as const) : (['fresh', 'reused'] as const);
    for (const kind of order) totals[kind].push(await measure(bench.url, kind === 'fresh'));
  }
  const mean = (costs: Cost[], key: keyof Cost) => costs.reduce((a, c) => a + c[key], 0) / costs.length;
  console.log('\nper transaction              wall ms   this process cpu ms   machine busy cpu ms');
  for (const kind of ['reused', 'fresh'] as const) {
    const label = kind === 'reused' ? 'on a connection kept open' : 'on a new connection';
    console.log(
      `  ${label.padEnd(26)} ${mean(totals[kind], 'wallMs').toFixed(2).padStart(7)}   ${mean(totals[kind], 'clientCpuMs').toFixed(2).padStart(19)}   ${mean(totals[kind], 'machineBusyMs').toFixed(2).padStart(19)}`,
    );
  }
  const times = (key: keyof Cost) => `${(mean(totals.fresh, key) / mean(totals.reused, key)).toFixed(1)}×`;
  console.log(`  new ÷ kept open:           ${times('wallMs').padStart(7)}   ${times('clientCpuMs').padStart(19)}   ${times('machineBusyMs').padStart(19)}`);
  console.log(
    `  a connection's start and end: about ${(mean(totals.fresh, 'machineBusyMs') - mean(totals.reused, 'machineBusyMs')).toFixed(1)} ms of machine CPU`,
  );
});
