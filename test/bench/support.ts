/**
 * What the benchmarks under test/bench share: env knobs, a bounded-concurrency runner,
 * nearest-rank percentiles and the table they print them in, a private database per run
 * (`tenantry_bench_…`, migrated from scratch, dropped at the end), and a teardown list
 * that runs whatever happened before it.
 *
 * Benchmarks are scripts, not tests: they print figures next to a baseline measured in the
 * same run, PASS/MISS per target, and exit 0 either way (1 only when something breaks) —
 * except those whose targets are pass conditions (bench:scale), which exit 2 on a FAIL.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { type Db, type DbOptions, createDb, ensureDatabase, migrateToLatest } from '@tenantry/db';
import { withAdmin } from '../support/admin.js';
import { databaseUrl } from '../support/env.js';

// ---------------------------------------------------------------------------------------
// Knobs and small utilities
// ---------------------------------------------------------------------------------------

/** An env knob that must be a positive integer; `fallback` when unset or empty. */
export function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

/** An env knob that must be an integer ≥ 0 (0 turns a part of a run off). */
export function countKnob(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be an integer ≥ 0, got ${JSON.stringify(raw)}`);
  return n;
}

/** An env knob that is a comma-separated list of ascending integers ≥ `min` (sizes of a fleet). */
export function ascendingIntsKnob(name: string, fallback: readonly number[], min = 1): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return [...fallback];
  const values = raw.split(',').map((s) => Number(s.trim()));
  if (values.some((n, i) => !Number.isInteger(n) || n < min || (i > 0 && n <= values[i - 1]!))) {
    throw new Error(`${name} must be ascending integers ≥ ${min}, comma-separated; got ${JSON.stringify(raw)}`);
  }
  return values;
}

/** A short random id naming one run's database, keys and tenants. */
export const newRunId = () => randomBytes(5).toString('hex');

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Wall-clock ms with sub-ms precision, comparable with Postgres timestamps on this host. */
export const epochMs = () => performance.timeOrigin + performance.now();

/** `fn` at its first call only; later calls get the same promise (a close used by both the run and its teardown). */
export function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let result: Promise<T> | undefined;
  return () => (result ??= fn());
}

/** Run `task(i)` for i in [0, count) with at most `concurrency` in flight. */
export async function pool<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  const lanes = Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  });
  await Promise.all(lanes);
  return results;
}

/** Node version, thread pool, cpus and load average: the context every figure needs. */
export function machineLine(): string {
  return (
    `node ${process.version}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}, ` +
    `cpus ${availableParallelism()}, load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`
  );
}

// ---------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------

export interface Summary {
  n: number;
  p50: number;
  p95: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of an ascending array (NaN when empty). */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

export const median = (values: readonly number[]) => percentile([...values].sort((a, b) => a - b), 50);

/** Nearest-rank p50/p95, max and mean. */
export function summarise(values: readonly number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    max: sorted[sorted.length - 1] ?? NaN,
    mean: sorted.reduce((a, b) => a + b, 0) / (sorted.length || 1),
  };
}

// ---------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------

const LABEL_WIDTH = 34;

/** A figure right-aligned in 8 columns, one decimal; `—` when there is none. */
export const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '—').padStart(8);

/** A title line, then the column heads of `row`. */
export function header(title: string, unit = 'ms'): string {
  return `\n${title}\n  ${''.padEnd(LABEL_WIDTH)}${'p50'.padStart(8)}${'p95'.padStart(8)}${'max'.padStart(8)}${'mean'.padStart(8)}   (${unit})`;
}

/** One summary under `header`, with anything else (a rate, a ratio) after it. */
export function row(label: string, s: Summary, extra = ''): string {
  return `  ${label.padEnd(LABEL_WIDTH)}${ms(s.p50)}${ms(s.p95)}${ms(s.max)}${ms(s.mean)}${extra ? `   ${extra}` : ''}`;
}

/** `a / b` as `1.23×`; `—` when it is not a number. */
export const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : '—');

export const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');

/** Event-loop delay while `fn` runs (for benches where api, worker and client share this one loop). */
export async function withLoopDelay<T>(fn: () => Promise<T>): Promise<{ result: T; loop: IntervalHistogram }> {
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  try {
    return { result: await fn(), loop };
  } finally {
    loop.disable();
  }
}

export function loopLine(loop: IntervalHistogram): string {
  const f = (ns: number) => `${(ns / 1e6).toFixed(1)}`;
  return `  event-loop delay (this process): p50 ${f(loop.percentile(50))}  p99 ${f(loop.percentile(99))}  max ${f(loop.max)} ms`;
}

// ---------------------------------------------------------------------------------------
// Where the CPU went (Linux /proc; a bench leaves its CPU figures out where these throw)
// ---------------------------------------------------------------------------------------

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU time (user + system, all threads) of a process so far, in ms. */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/** The machine's busy and total CPU time so far (all cores), in ms. */
export function machineCpuMs(): { busy: number; total: number } {
  const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const n = ticks.map(Number);
  const total = n.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = n[3]! + n[4]!;
  return { busy: ((total - idle) * 1000) / CLOCK_TICKS, total: (total * 1000) / CLOCK_TICKS };
}

/**
 * CPU ms so far of every live Postgres and Redis process (backends come and go: one that
 * exits between two snapshots takes its CPU with it, and that CPU lands in `rest`).
 */
export function serviceCpuMs(): { postgres: number; redis: number } {
  const sums = { postgres: 0, redis: 0 };
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const kind = comm === 'postgres' ? 'postgres' : comm.startsWith('redis-server') ? 'redis' : undefined;
      if (!kind) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      sums[kind] += ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
    } catch {
      // gone meanwhile
    }
  }
  return sums;
}

// ---------------------------------------------------------------------------------------
// Resources of a run
// ---------------------------------------------------------------------------------------

export async function dropDatabase(name: string): Promise<void> {
  await withAdmin((admin) => admin.query(`drop database if exists ${admin.escapeIdentifier(name)} with (force)`));
}

export interface BenchDatabase {
  /** `tenantry_bench_<label>_<random>` (or without the label). */
  readonly name: string;
  readonly url: string;
  /** Create and migrate it; the control-plane connection pool of the bench. */
  create(options?: DbOptions): Promise<Db>;
  /** Close the pool and drop the database; safe when it was never (or half) created. */
  drop(): Promise<void>;
}

/**
 * A private control-plane database for one run. Nothing exists until `create`; `drop`
 * belongs in a finally (or a Teardown) from before `create` is called, so a run that fails
 * while migrating leaves nothing behind.
 */
export function benchDatabase(label?: string, id = newRunId()): BenchDatabase {
  const name = label ? `tenantry_bench_${label}_${id}` : `tenantry_bench_${id}`;
  const url = databaseUrl(name);
  let db: Db | undefined;
  return {
    name,
    url,
    async create(options = {}) {
      await ensureDatabase(url);
      db = createDb(url, { applicationName: 'tenantry-bench', ...options });
      await migrateToLatest(db);
      return db;
    },
    async drop() {
      const open = db;
      db = undefined;
      try {
        await open?.destroy();
      } finally {
        await dropDatabase(name);
      }
    },
  };
}

/**
 * Cleanup steps, run last-added first, every one of them whatever the others do; errors
 * are printed, not thrown, so the benchmark's own outcome is what decides the exit code.
 * `run` is one run however often it is called (the end of main and a signal may both ask).
 */
export class Teardown {
  private readonly steps: Array<{ label: string; fn: () => unknown }> = [];
  private running: Promise<void> | undefined;

  add(label: string, fn: () => unknown): void {
    this.steps.push({ label, fn });
  }

  run(): Promise<void> {
    this.running ??= this.drain();
    return this.running;
  }

  private async drain(): Promise<void> {
    while (this.steps.length > 0) {
      const { label, fn } = this.steps.pop()!;
      try {
        await fn();
      } catch (err) {
        console.error(`cleanup (${label}):`, err instanceof Error ? err.message : err);
      }
    }
  }
}

/**
 * Run a benchmark's `main` and end the process: exit 0 when it ran (whatever the figures),
 * 1 when it broke, 2 when `main` resolves `false` (a pass condition failed). `teardown` runs after `main` either way — and on SIGINT/SIGTERM, and on
 * an error nothing caught — so an interrupted or crashed run still drops what it made.
 */
export function runBenchmark(main: (teardown: Teardown) => Promise<void | boolean>): void {
  const teardown = new Teardown();
  let exiting = false;
  const finish = (code: number) => {
    if (exiting) return;
    exiting = true;
    void teardown.run().finally(() => process.exit(code));
  };
  // `on`, not `once`: a second signal (a wrapper relaying Ctrl-C, say) must not kill the
  // process halfway through its cleanup. Likewise an error thrown by work still in flight
  // while the teardown closes what it uses: printed, and the cleanup carries on.
  const onSignal = (signal: NodeJS.Signals) => {
    if (exiting) return;
    console.error(`\n${signal}: cleaning up`);
    finish(130);
  };
  const onStray = (err: unknown) => {
    console.error(exiting ? 'while cleaning up:' : 'benchmark failed (uncaught):', err instanceof Error ? (err.stack ?? err.message) : err);
    finish(1);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('unhandledRejection', onStray);
  process.on('uncaughtException', onStray);
  main(teardown).then(
    (passed) => finish(passed === false ? 2 : 0),
    (err) => {
      if (!exiting) console.error('benchmark failed:', err instanceof Error ? (err.stack ?? err.message) : err);
      finish(1);
    },
  );
}

/** What dropTenantDatabasesOf dropped, counted: "33 databases and 33 roles". */
export function describeDropped(names: readonly string[]): string {
  const databases = names.filter((n) => n.startsWith('td_')).length;
  return `${databases} databases and ${names.length - databases} roles`;
}
