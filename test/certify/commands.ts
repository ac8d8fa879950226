import { existsSync } from 'node:fs';
import type { Area } from './areas.js';
import type { CertCommand } from './runner.js';

/**
 * The milestone validation `pnpm certify` runs by default (issue 16 §4), in order: the
 * type-check, the test suite area by area, `audit:verify`, promtool on the alert rules, the
 * OpenAPI linters, and short runs of the benchmarks against their targets.
 */
export const OUTPUT_DIR = 'test/.output/certify';

const MIN = 60_000;
// vitest's default reporter ends with the run's duration; without it the run was cut short.
const VITEST_DONE = '^\\s*Duration\\s+\\d';
// Every benchmark prints PASS or MISS per target (test/bench/support.ts).
const BENCH_DONE = '\\b(PASS|MISS)\\b';

const promtool = () => (existsSync('/usr/bin/promtool') ? '/usr/bin/promtool' : 'promtool');

/**
 * Short benchmark runs: the scripts' own env knobs, turned down so the whole set takes
 * minutes rather than an hour. Same code, same targets, fewer tenants and requests.
 */
const BENCHES: Array<{ script: string; id: string; env: Record<string, string>; target: string; completes?: string; keyLines?: string }> = [
  { script: 'test/bench/signup-to-ready.ts', id: 'bench:signup-to-ready', env: { BENCH_SIGNUPS: '40', BENCH_WARMUP: '5' }, target: 'signup to ready p95 and its ratio to the floor' },
  // Three benchmarks print figures without PASS/MISS: their summary lines are the evidence.
  {
    script: 'test/bench/tenants-list.ts',
    id: 'bench:tenants',
    // At least 4,200: the benchmark pages 41 × 100 deep for its cursor shape.
    env: { BENCH_TENANTS: '5000', BENCH_SAMPLES: '50' },
    target: 'figures only: list and search latency against the database floor',
    completes: 'plan for a substring search',
    keyLines: '^\\S.*\\d+(\\.\\d+)?×\\s*$',
  },
  {
    script: 'test/bench/entitlements.ts',
    id: 'bench:entitlements',
    env: { BENCH_OPS: '200000', BENCH_ROUNDS: '3', BENCH_CHANGES: '20' },
    target: 'figures only: lookup cost against an awaited Map.get, change propagation between instances',
    completes: 'polls of B per change on average',
    keyLines: 'vs await Map.get|→ B.get\\(\\) returns',
  },
  {
    script: 'test/bench/provisioning.ts',
    id: 'bench:provisioning',
    env: { BENCH_SCHEMA_TENANTS: '20', BENCH_DATABASE_TENANTS: '6', BENCH_CLUSTER_TENANTS: '1', BENCH_WARMUP: '3' },
    target: 'schema ≤ 3×, database ≤ 2.5× their DDL floor at p95',
  },
  {
    script: 'test/bench/data-plane.ts',
    id: 'bench:data-plane',
    // api and bare alternated 8 times per operation, 2 s each, after the default warm-up
    // (10,000 requests each: the api measured warm, as it runs in production); metering
    // switched off and on 16 times per operation and load, 2 s each. Verdicts are pooled
    // over the stretches. About 4 minutes.
    env: { BENCH_SCHEMA_TENANTS: '100', BENCH_DATABASE_TENANTS: '10', BENCH_STRETCHES: '8', BENCH_STRETCH_SECONDS: '2', BENCH_METERING_SEGMENTS: '16' },
    target: '≥ 75% of bare throughput, p95 ≤ 1.4× bare, metering on',
  },
  // The target is defined on a 100 MiB file; at 20 MiB a request's fixed costs (auth, the
  // reservation, the commit, starting curl) were two thirds of the upload's time. About 20 s.
  { script: 'test/bench/files.ts', id: 'bench:files', env: { BENCH_FILE_MIB: '100', BENCH_ROUNDS: '3' }, target: 'upload and download of a 100 MiB file ≥ 70% of direct' },
  { script: 'test/bench/realtime.ts', id: 'bench:realtime', env: { BENCH_SUBSCRIBERS: '200', BENCH_EVENTS: '50' }, target: 'change to subscriber p95 < 100 ms' },
  // 10,000 documents: the size the pause target is judged at (a smaller run prints no verdict).
  { script: 'test/bench/moves.ts', id: 'bench:moves', env: { BENCH_MOVE_SIZES: '10000', BENCH_FOOTPRINT: '0' }, target: 'write pause < 2 s at 10,000 documents' },
  {
    script: 'test/bench/scale.ts',
    id: 'bench:scale',
    env: { BENCH_SCHEMA_TENANTS: '100', BENCH_DATABASE_TENANTS: '10', BENCH_CLUSTER_TENANTS: '1', BENCH_SECONDS: '30', BENCH_RATE: '60' },
    target: 'p95 < 100 ms, zero 5xx, signups ready, usage exact, a flood moves others\' p95 ≤ 20%',
    // It prints PASS or FAIL per condition and exits 2 when one fails.
    completes: '\\b(PASS|FAIL)\\b',
    keyLines: '\\b(PASS|FAIL)\\b',
  },
  {
    script: 'test/bench/failover.ts',
    id: 'bench:failover',
    env: { BENCH_WRITES: '50', BENCH_RUNS: '1' },
    target: 'figures only: time from a primary SIGKILL to the first successful write',
    completes: '^\\s*promotion\\s+[\\d.]+ s',
    keyLines: '^\\s*(total|detection|promotion)\\s+[\\d.]+ s',
  },
];

export function defaultCommands(areas: ReadonlyMap<Area, string[]>): CertCommand[] {
  const commands: CertCommand[] = [
    { id: 'typecheck', title: 'Type-check every package', kind: 'typecheck', argv: ['npx', '-y', 'pnpm@10.34.8', 'typecheck'], timeoutMs: 15 * MIN, completes: 'Tasks:\\s+\\d+ successful' },
  ];
  for (const [area, files] of areas) {
    if (files.length === 0) continue;
    const reportFile = `${OUTPUT_DIR}/tests-${area.replace(/\s+/g, '-')}.json`;
    commands.push({
      id: `tests:${area.replace(/\s+/g, '-')}`,
      title: `Tests: ${area} (${files.length} files)`,
      kind: 'tests',
      area,
      // The default reporter explicitly: vitest picks a terse one when it thinks an agent runs it.
      argv: ['npx', 'vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${reportFile}`, ...files],
      timeoutMs: 25 * MIN,
      completes: VITEST_DONE,
      reportFile,
    });
  }
  commands.push(
    // The control plane at this revision, as a deploy leaves it (the migration creates the
    // database if there is none): audit:verify then checks a chain this code wrote to.
    {
      id: 'migrate',
      title: 'Migrate the control plane (DATABASE_URL) to this revision',
      kind: 'audit',
      argv: ['node', '--import', 'tsx', 'packages/db/src/cli/migrate.ts'],
      timeoutMs: 5 * MIN,
      completes: 'applied: |database is up to date',
    },
    { id: 'audit:verify', title: 'Audit chain of the control plane (DATABASE_URL)', kind: 'audit', argv: ['node', '--import', 'tsx', 'packages/db/src/cli/audit-verify.ts'], timeoutMs: 5 * MIN, completes: 'audit chain (intact|BROKEN)' },
    { id: 'promtool:rules', title: 'promtool check rules docs/ops/alerts.yml', kind: 'promtool', argv: [promtool(), 'check', 'rules', 'docs/ops/alerts.yml'], timeoutMs: 2 * MIN, completes: 'SUCCESS|FAILED' },
    { id: 'promtool:tests', title: 'promtool test rules docs/ops/alerts.test.yml', kind: 'promtool', argv: [promtool(), 'test', 'rules', 'docs/ops/alerts.test.yml'], timeoutMs: 2 * MIN, completes: 'SUCCESS|FAILED' },
    {
      id: 'openapi:document',
      title: 'The OpenAPI document, written for the linters',
      kind: 'openapi-lint',
      argv: ['node', '--import', 'tsx', 'test/certify/openapi-json.ts', `${OUTPUT_DIR}/openapi.json`],
      timeoutMs: 2 * MIN,
      completes: '^wrote ',
    },
    {
      id: 'openapi:redocly',
      title: 'Redocly lint (recommended rules)',
      kind: 'openapi-lint',
      argv: ['test/node_modules/.bin/redocly', 'lint', '--config', 'test/openapi/redocly.yaml', `${OUTPUT_DIR}/openapi.json`],
      timeoutMs: 5 * MIN,
      completes: 'validated in \\d+ms',
    },
    {
      id: 'openapi:spectral',
      title: 'Spectral lint (spectral:oas), failing on any finding',
      kind: 'openapi-lint',
      argv: ['test/node_modules/.bin/spectral', 'lint', '--ruleset', 'test/openapi/spectral.yaml', '--fail-severity', 'hint', `${OUTPUT_DIR}/openapi.json`],
      timeoutMs: 5 * MIN,
      completes: "No results with a severity|\\d+ problems?",
    },
  );
  for (const b of BENCHES) {
    commands.push({
      id: b.id,
      title: `Benchmark (short): ${b.script}`,
      kind: 'bench',
      argv: ['npx', 'tsx', b.script],
      env: b.env,
      timeoutMs: 15 * MIN,
      completes: b.completes ?? BENCH_DONE,
      keyLines: b.keyLines ?? '\\b(PASS|MISS)\\b',
      target: b.target,
    });
  }
  return commands;
}
