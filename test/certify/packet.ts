import path from 'node:path';
import { AREAS } from './areas.js';
import type { CommandResult } from './runner.js';
import { type Decision, type DodOutcome, RULES, verdictLine } from './verdict.js';

/**
 * The certification packet (docs/certification/<date>.md): generated from the run, never
 * edited by hand. Its Definition-of-Done rows, risks and rollback steps live here, in code,
 * next to the rules that read them.
 */

/** Evidence: a test file (its result from vitest's report) or a command (a benchmark, a check). */
export type Evidence = { file: string } | { command: string };

export interface DodRow {
  /** Where the requirement comes from. */
  source: string;
  requirement: string;
  evidence: Evidence[];
}

export const DEFINITION_OF_DONE: readonly DodRow[] = [
  { source: 'seed', requirement: 'Public signup is validated, rate-limited, and provisions a tenant through the queue, idempotently, to `ready`', evidence: [{ file: 'test/provisioning.test.ts' }, { file: 'test/signup-validation.test.ts' }, { command: 'bench:signup-to-ready' }] },
  { source: 'seed', requirement: 'A tenant never sees another tenant\'s data, in every isolation model', evidence: [{ file: 'test/security/isolation-schema.test.ts' }, { file: 'test/security/isolation-database.test.ts' }, { file: 'test/security/isolation-cluster.test.ts' }, { file: 'test/rls.test.ts' }] },
  { source: 'seed', requirement: 'Platform keys, tenant sessions and API keys: authentication, revocation, login limits', evidence: [{ file: 'test/auth.test.ts' }, { file: 'test/platform-keys.test.ts' }, { file: 'test/login-limits.test.ts' }, { file: 'test/operator-sessions.test.ts' }] },
  { source: 'seed', requirement: 'Entitlements from billing state or a signed license; fail-open with bounded staleness', evidence: [{ file: 'test/entitlements-database.test.ts' }, { file: 'test/billing-state.test.ts' }, { file: 'test/license-api.test.ts' }, { command: 'bench:entitlements' }] },
  { source: 'seed', requirement: 'Tenant lifecycle: suspend, delete, restore, purge after retention, audited', evidence: [{ file: 'test/lifecycle.test.ts' }, { file: 'test/audit.test.ts' }, { command: 'audit:verify' }] },
  { source: 'seed', requirement: 'Every state change is in a tamper-evident audit chain', evidence: [{ file: 'test/audit.test.ts' }, { command: 'audit:verify' }] },
  { source: 'seed', requirement: 'Tenant list and search stay fast at 10,000 tenants', evidence: [{ file: 'test/tenants-api.test.ts' }, { command: 'bench:tenants' }] },
  { source: 'seed', requirement: 'Metrics, alert rules with unit tests, health and readiness', evidence: [{ file: 'test/observability.test.ts' }, { file: 'test/alerts.test.ts' }, { command: 'promtool:rules' }, { command: 'promtool:tests' }] },
  { source: 'seed', requirement: 'The REST API is described by an OpenAPI document that passes the common linters', evidence: [{ file: 'test/openapi.test.ts' }, { file: 'test/api-docs.test.ts' }, { command: 'openapi:redocly' }, { command: 'openapi:spectral' }] },
  { source: 'issue 10', requirement: 'Survives a Postgres restart and a Redis outage; hostile input is a 4xx, never a 500', evidence: [{ file: 'test/faults/postgres-restart.test.ts' }, { file: 'test/faults/redis-down.test.ts' }, { file: 'test/hostile-input.test.ts' }, { file: 'test/first-run.test.ts' }] },
  { source: 'issue 11', requirement: 'Usage counts are exact (a SIGKILL loses at most one flush); quotas and rate limits enforced across instances', evidence: [{ file: 'test/usage.test.ts' }, { file: 'test/faults/usage.test.ts' }, { file: 'test/quotas.test.ts' }, { file: 'test/enforcement.test.ts' }, { file: 'test/rate-limit.test.ts' }] },
  { source: 'issue 12', requirement: 'File storage and realtime streams, metered and held to quota', evidence: [{ file: 'test/files.test.ts' }, { file: 'test/files-s3.test.ts' }, { file: 'test/realtime.test.ts' }, { file: 'test/faults/files-crash.test.ts' }, { command: 'bench:files' }, { command: 'bench:realtime' }] },
  { source: 'issue 13', requirement: 'Gapless immutable invoices (JSON, CSV, PDF), month close, signed webhooks', evidence: [{ file: 'test/invoices.test.ts' }, { file: 'test/invoices-close.test.ts' }, { file: 'test/pricing.test.ts' }, { file: 'test/webhooks.test.ts' }, { file: 'test/stripe-webhook.test.ts' }] },
  { source: 'issue 14', requirement: 'Operator dashboard, tested in a real browser, accessible, fast', evidence: [{ file: 'test/dashboard/dashboard.test.ts' }, { file: 'test/dashboard/speed.test.ts' }, { file: 'test/dashboard/static.test.ts' }] },
  { source: 'issue 15', requirement: 'Online moves between isolation models lose no acknowledged write, even with the worker killed mid-move', evidence: [{ file: 'test/moves.test.ts' }, { file: 'test/faults/move-crash.test.ts' }, { file: 'test/security/moved-to-schema.test.ts' }, { file: 'test/security/moved-to-database.test.ts' }, { file: 'test/security/moved-to-cluster.test.ts' }, { command: 'bench:moves' }] },
  { source: 'issue 17', requirement: 'Cluster tenants: primary and streaming standby, automatic failover, lag in health', evidence: [{ file: 'test/faults/cluster-replicas.test.ts' }, { file: 'test/faults/cluster-failover-crash.test.ts' }, { file: 'test/faults/cluster-crash.test.ts' }, { command: 'bench:failover' }] },
  { source: 'issue 16 §1', requirement: 'Data plane ≥ 75% of bare throughput, p95 ≤ 1.4× bare, with metering on', evidence: [{ command: 'bench:data-plane' }] },
  { source: 'issue 16 §1', requirement: 'Credential cache: revocation, suspension and logout effective on every instance within 1 s', evidence: [{ file: 'test/credential-cache.test.ts' }] },
  { source: 'issue 16 §1', requirement: 'Provisioning within 3× (schema) and 2.5× (database) of its raw DDL floor at p95', evidence: [{ command: 'bench:provisioning' }] },
  { source: 'issue 16 §2', requirement: 'Mixed load on two apis and two workers with restarts and a SIGKILL: p95 < 100 ms, zero 5xx, exact usage, flood isolation', evidence: [{ command: 'bench:scale' }] },
  { source: 'issue 16 §3', requirement: 'Kubernetes manifests valid against the Kubernetes schemas; probes, grace period, secrets by reference', evidence: [{ file: 'test/kubernetes.test.ts' }] },
  { source: 'issue 16 §4', requirement: 'The certification generator itself: exit codes, failed timeouts and empty output, verdict rules', evidence: [{ file: 'test/certify.test.ts' }] },
];

export interface Risk {
  risk: string;
  status: 'open' | 'mitigated' | 'accepted';
  note: string;
}

/** Risks whose status does not depend on this run (the ones that do are added in `risks`). */
const STANDING_RISKS: readonly Risk[] = [
  {
    risk: 'Redis is one endpoint: Redis Cluster is not supported',
    status: 'open',
    note: 'The clients are single-node ioredis clients and REDIS_PREFIX refuses the braces a hash tag needs (docs/ops/scaling.md). Run one Redis primary with a replica and scale it vertically.',
  },
  {
    risk: 'The control-plane Postgres is a single point of failure',
    status: 'accepted',
    note: 'Made highly available outside Tenantry (Patroni or CloudNativePG, docs/ops/scaling.md); the api and worker survive its restart (test/faults/postgres-restart.test.ts).',
  },
  {
    risk: 'An api killed with SIGKILL loses up to one flush interval (1 s) of its usage counts',
    status: 'accepted',
    note: 'Documented bound (docs/usage.md); SIGTERM flushes everything (test/faults/usage.test.ts).',
  },
  {
    risk: 'Cluster tenants on Kubernetes are rendered as CloudNativePG manifests only',
    status: 'open',
    note: 'With TENANT_CLUSTER_DRIVER=kubernetes the api refuses cluster tenants; the replicated local driver needs a host the worker controls.',
  },
  {
    risk: 'Tenant database servers are never rebalanced',
    status: 'open',
    note: 'A new server in TENANT_DB_SERVERS takes new database tenants (least loaded first); existing ones stay where they are. A server with tenants must never leave the list.',
  },
  {
    risk: 'Entitlements fail open: with billing state unreadable, a cached answer is served up to 1 h, then trial defaults',
    status: 'accepted',
    note: 'By design (ENTITLEMENTS_MAX_STALENESS_MS), visible in a metric and a response header; alert EntitlementsStale.',
  },
  {
    risk: 'No container image is built by this repository',
    status: 'open',
    note: 'deploy/kubernetes renders manifests for an image tag; the image (the repository with its dependencies installed, then `pnpm build`: the dashboard and the compiled apps) is built elsewhere.',
  },
];

function resultOfEvidence(e: Evidence, results: readonly CommandResult[], areaOf: ReadonlyMap<string, string>): { shown: string; result: 'pass' | 'fail' | 'not run'; note?: string | undefined } {
  if ('file' in e) {
    const shown = `\`${e.file}\``;
    const run = results.find((r) => r.kind === 'tests' && r.area === areaOf.get(e.file));
    const status = run?.files[e.file];
    if (status) return { shown, result: status === 'failed' ? 'fail' : status === 'passed' ? 'pass' : 'not run', note: status === 'skipped' ? 'skipped' : undefined };
    // Its area ran but reported no result for it: the run failed before the file's (or the file is gone).
    if (run && !run.passed) return { shown, result: 'fail', note: `${run.id}: ${run.failure}` };
    return { shown, result: 'not run' };
  }
  const r = results.find((c) => c.id === e.command);
  if (!r) return { shown: `\`${e.command}\``, result: 'not run' };
  if (!r.passed) return { shown: `\`${e.command}\``, result: 'fail', note: r.failure };
  if (r.misses.length > 0) return { shown: `\`${e.command}\``, result: 'fail', note: `${r.misses.length} target(s) missed` };
  return { shown: `\`${e.command}\``, result: 'pass' };
}

/** Each row with its evidence's results; `areaOf` maps a test file to its area (areas.ts). */
export function evaluateDod(results: readonly CommandResult[], areaOf: ReadonlyMap<string, string>, rows: readonly DodRow[] = DEFINITION_OF_DONE) {
  return rows.map((row) => {
    const evidence = row.evidence.map((e) => resultOfEvidence(e, results, areaOf));
    const result: DodOutcome['result'] = evidence.some((e) => e.result === 'fail') ? 'fail' : evidence.some((e) => e.result === 'not run') ? 'not run' : 'pass';
    return { ...row, evidenceResults: evidence, result };
  });
}

export function risks(results: readonly CommandResult[]): Risk[] {
  const benches = results.filter((r) => r.kind === 'bench');
  const missed = benches.filter((r) => !r.passed || r.misses.length > 0);
  const performance: Risk = {
    risk: 'Performance below the issues\' targets',
    status: benches.length > 0 && missed.length === 0 ? 'mitigated' : 'open',
    note:
      benches.length === 0
        ? 'No benchmark ran in this certification.'
        : missed.length === 0
          ? `Every target of the ${benches.length} short benchmark runs was met.`
          : `Missed or unfinished: ${missed.map((r) => r.id).join(', ')} (see the commands table).`,
  };
  return [performance, ...STANDING_RISKS];
}

const ROLLBACK = `1. **Run the previous image.** \`kubectl -n <namespace> rollout undo deployment/tenantry-api\` and the same for \`deployment/tenantry-worker\` (this also stops a rollout in progress), or render the previous tag and apply it: \`pnpm k8s:render --tag <previous>\`, then \`kubectl apply -f deploy/kubernetes/rendered/<previous>/tenantry.yaml\`. Pods drain on SIGTERM (readiness 503 first, then in-flight requests and jobs finish within the grace period), so the switch drops no acknowledged request.
2. **Migrations.** Each app migrates the control plane forward at boot; nothing here runs a down migration. If the release being rolled back added migrations (packages/db/src/migrations), read them: if the previous release cannot run against the newer schema, restore the control-plane database to a point before the release from its base backup and WAL archive (docs/ops/backup-restore.md covers single tenants only, not the control plane) and accept the loss of writes since then, or fix forward instead.
3. **Queues.** Jobs are idempotent against Postgres and re-enqueued by the reconcilers: no Redis cleanup is needed. Do not flush Redis.
4. **Verify.** \`/readyz\` 200 on every api pod; the alerts of docs/ops/alerts.yml quiet (ApiErrorRatio, QueueBacklogGrowing, WorkerDown); \`pnpm audit:verify\` intact; then \`pnpm certify\` on the rolled-back revision.`;

const fmtDuration = (ms: number) => (ms < 1000 ? `${ms} ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`);
const cell = (s: string) => s.replaceAll('|', '\\|').replaceAll('\n', ' ');
const figuresText = (r: CommandResult) =>
  Object.entries(r.figures)
    .map(([k, v]) => `${k}: ${v}`)
    .join('; ') || '—';

export interface PacketContext {
  date: string;
  startedAt: Date;
  finishedAt: Date;
  machine: string;
  revision: string;
  root: string;
  /** The files of each area, as mapped. */
  areas: Map<string, string[]>;
  /** Set when the command list was not the default one (a fixture). */
  commandSource?: string | undefined;
}

/** The packet's Markdown; its last line is the verdict line. */
export function renderPacket(results: readonly CommandResult[], decision: Decision, dod: ReturnType<typeof evaluateDod>, ctx: PacketContext): string {
  const out: string[] = [];
  const failed = results.filter((r) => !r.passed);
  out.push(`# Certification ${ctx.date}`);
  out.push('');
  out.push(`Generated by \`pnpm certify\` (test/certify/certify.ts). Do not edit: run it again.`);
  out.push('');
  out.push(`- Revision: \`${ctx.revision}\``);
  out.push(`- Machine: ${ctx.machine}`);
  out.push(`- Run: ${ctx.startedAt.toISOString()} → ${ctx.finishedAt.toISOString()} (${fmtDuration(ctx.finishedAt.getTime() - ctx.startedAt.getTime())})`);
  if (ctx.commandSource) out.push(`- Command list: **${ctx.commandSource}** (not the default list: this packet certifies only what it ran)`);
  out.push(`- Commands: ${results.length}, passed ${results.length - failed.length}, failed ${failed.length}`);
  out.push('');
  out.push('A command passes only if it exited 0 within its time limit, printed something, and printed its closing line; a timed-out, empty or truncated command counts as failed whatever its exit code.');
  out.push('');

  out.push('## Commands');
  out.push('');
  out.push('| # | id | command | exit code | duration | result | key figures | log |');
  out.push('|---|---|---|---|---|---|---|---|');
  results.forEach((r, i) => {
    const exit = r.exitCode ?? (r.signal ? `signal ${r.signal}` : '—');
    const result = r.passed ? (r.misses.length > 0 ? `passed, ${r.misses.length} target(s) missed` : 'passed') : `**failed** (${r.failure}${r.detail ? `: ${r.detail}` : ''})`;
    out.push(`| ${i + 1} | ${r.id} | \`${cell(r.shown)}\` | ${exit} | ${fmtDuration(r.durationMs)} | ${cell(result)} | ${cell(figuresText(r))} | ${cell(path.relative(ctx.root, r.logFile))} |`);
  });
  out.push('');

  const testRuns = results.filter((r) => r.kind === 'tests');
  if (testRuns.length > 0) {
    out.push('## Test suite by area');
    out.push('');
    out.push('| area | files | tests | passed | failed | skipped | result |');
    out.push('|---|---|---|---|---|---|---|');
    for (const area of AREAS) {
      const r = testRuns.find((t) => t.area === area);
      const files = ctx.areas.get(area)?.length ?? 0;
      if (!r) {
        out.push(`| ${area} | ${files} | — | — | — | — | not run |`);
        continue;
      }
      const f = r.figures;
      out.push(`| ${area} | ${files} | ${f.tests ?? '—'} | ${f.passed ?? '—'} | ${f.failed ?? '—'} | ${f.skipped ?? '—'} | ${r.passed ? 'passed' : `**failed** (${r.failure})`} |`);
    }
    out.push('');
  }

  const benches = results.filter((r) => r.kind === 'bench');
  if (benches.length > 0) {
    out.push('## Benchmarks (short runs) against their targets');
    out.push('');
    for (const r of benches) {
      out.push(`- **${r.id}** (${r.target ?? 'targets as printed'}): ${!r.passed ? `failed (${r.failure})` : r.figures['targets met'] === undefined ? 'finished; figures below' : `${r.figures['targets met']} met, ${r.misses.length} missed`}`);
      for (const line of r.keyLines) out.push(`  - \`${line.replaceAll('`', "'")}\``);
    }
    out.push('');
    out.push('Short runs use fewer tenants, requests and rounds than the full benchmarks (`pnpm bench:*` with their defaults); a target met here is evidence, not the figure to quote — docs/usage.md and docs/ops/scale-benchmark.md hold the full runs.');
    out.push('');
  }

  out.push('## Definition of Done');
  out.push('');
  out.push('| source | requirement | evidence | result |');
  out.push('|---|---|---|---|');
  for (const row of dod) {
    const evidence = row.evidenceResults.map((e) => `${e.shown}: ${e.result}${e.note ? ` (${e.note})` : ''}`).join('<br>');
    out.push(`| ${row.source} | ${cell(row.requirement)} | ${evidence} | ${row.result === 'pass' ? 'pass' : `**${row.result}**`} |`);
  }
  out.push('');

  out.push('## Risk register');
  out.push('');
  out.push('| risk | status | note |');
  out.push('|---|---|---|');
  for (const r of risks(results)) out.push(`| ${cell(r.risk)} | ${r.status} | ${cell(r.note)} |`);
  out.push('');

  out.push('## Rollback runbook');
  out.push('');
  out.push(ROLLBACK);
  out.push('');

  out.push('## Verdict rules');
  out.push('');
  out.push('The worst verdict and posture of the rules that apply win; none applies: GO, ga.');
  out.push('');
  for (const rule of RULES) {
    const applied = decision.applied.find((a) => a.rule.id === rule.id);
    out.push(`- **${rule.id}** — ${rule.text} ${applied ? '**Applies.**' : 'Does not apply.'}`);
    if (applied) {
      for (const e of applied.evidence) out.push(`  - ${e}`);
      out.push(`  - Unblock: ${rule.unblock}`);
    }
  }
  out.push('');
  out.push(verdictLine(decision));
  return `${out.join('\n')}\n`;
}
