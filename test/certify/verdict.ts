import type { CommandResult } from './runner.js';

/**
 * The verdict, from written rules (issue 16 §4). Each rule that applies names a verdict and
 * a hosted posture; the worst of them wins, and every rule that applied is listed with its
 * unblock path. No rule applies: GO, ga.
 */
export type Verdict = 'GO' | 'GO_WITH_CONDITIONS' | 'NO_GO';
export type Posture = 'ga' | 'private_beta' | 'waitlist';

/** A Definition-of-Done row as evaluated: `not run` when some of its evidence did not run at all. */
export interface DodOutcome {
  requirement: string;
  result: 'pass' | 'fail' | 'not run';
}

export interface Rule {
  id: string;
  /** The rule as the packet states it. */
  text: string;
  verdict: Exclude<Verdict, 'GO'>;
  posture: Exclude<Posture, 'ga'>;
  /** What must be true to lift it. */
  unblock: string;
  /** The evidence that triggers it (empty: the rule does not apply). */
  triggers(results: readonly CommandResult[], dod: readonly DodOutcome[]): string[];
}

const failedRuns = (results: readonly CommandResult[], pick: (r: CommandResult) => boolean) =>
  results.filter((r) => pick(r) && !r.passed).map((r) => `${r.id}: ${r.failure}${r.detail ? ` (${r.detail})` : ''}`);

/** bench:scale's pass conditions about correctness (test/bench/scale.ts), as its FAIL lines name them; its latency ones are performance. */
const SCALE_CORRECTNESS = /^FAIL (zero 5xx|every signup ready|usage ==)/;

export const RULES: readonly Rule[] = [
  {
    id: 'security',
    text: 'Any security test failing — including a security run that timed out, printed nothing or was cut short — is NO_GO, waitlist.',
    verdict: 'NO_GO',
    posture: 'waitlist',
    unblock: 'Fix the failing security tests (tenant isolation, credentials, hostile input) and run `pnpm certify` again; nobody new is admitted meanwhile.',
    triggers: (results) => failedRuns(results, (r) => r.kind === 'tests' && r.area === 'security'),
  },
  {
    id: 'integrity',
    text: 'The type-check, the migration of the control plane or `audit:verify` failing is NO_GO, waitlist: the build, its schema or the audit chain cannot be trusted.',
    verdict: 'NO_GO',
    posture: 'waitlist',
    unblock:
      'Make `pnpm typecheck` clean; make `pnpm migrate` apply on the control plane (its log names the migration); for a broken audit chain, find the entry `pnpm audit:verify` names and treat it as an incident (docs/ops/runbook.md).',
    triggers: (results) => failedRuns(results, (r) => r.kind === 'typecheck' || r.kind === 'audit'),
  },
  {
    id: 'tests',
    text: 'Any other test area failing is NO_GO, waitlist: a requirement is not shown to hold.',
    verdict: 'NO_GO',
    posture: 'waitlist',
    unblock: 'Fix the failing tests of the areas listed (their logs are linked in the commands table) and certify again.',
    triggers: (results) => failedRuns(results, (r) => r.kind === 'tests' && r.area !== 'security'),
  },
  {
    id: 'evidence',
    text: 'A Definition-of-Done row whose evidence did not run is NO_GO, waitlist: the packet certifies nothing it did not run.',
    verdict: 'NO_GO',
    posture: 'waitlist',
    unblock: 'Run the full `pnpm certify` (no command list of your own), so every row has its evidence.',
    triggers: (_results, dod) => dod.filter((d) => d.result === 'not run').map((d) => `not run: ${d.requirement}`),
  },
  {
    id: 'correctness-under-load',
    text: '`bench:scale` failing a correctness condition — any 5xx, a signup that never became ready, usage that differs from the calls made — is NO_GO, waitlist: under load and faults the product breaks or miscounts work, which no capacity limit makes safe.',
    verdict: 'NO_GO',
    posture: 'waitlist',
    unblock: "Find the cause from the run's first unexpected answers (bench:scale prints them per route class), fix it, and certify again.",
    triggers: (results) =>
      results.filter((r) => r.id === 'bench:scale').flatMap((r) => r.misses.filter((m) => SCALE_CORRECTNESS.test(m)).map((m) => `${r.id}: ${m}`)),
  },
  {
    id: 'operations',
    text: 'promtool on the alert rules or the OpenAPI linters failing is GO_WITH_CONDITIONS, private_beta: the product works, but operators or integrators would be misled.',
    verdict: 'GO_WITH_CONDITIONS',
    posture: 'private_beta',
    unblock: 'Make `promtool check rules` / `promtool test rules` and Redocly/Spectral clean, then certify again for ga.',
    triggers: (results) => failedRuns(results, (r) => r.kind === 'promtool' || r.kind === 'openapi-lint'),
  },
  {
    id: 'performance',
    text: 'A benchmark target missed, or a benchmark that did not finish, is GO_WITH_CONDITIONS, private_beta: admit tenants only as far as the measured capacity allows.',
    verdict: 'GO_WITH_CONDITIONS',
    posture: 'private_beta',
    unblock: 'Meet the missed targets (each is listed with its figure) in a full benchmark run on the reference machine, then certify again for ga.',
    triggers: (results) => [
      ...failedRuns(results, (r) => r.kind === 'bench'),
      ...results.filter((r) => r.kind === 'bench' && r.passed).flatMap((r) => r.misses.map((m) => `${r.id}: ${m}`)),
    ],
  },
];

const VERDICT_RANK: Record<Verdict, number> = { GO: 0, GO_WITH_CONDITIONS: 1, NO_GO: 2 };
const POSTURE_RANK: Record<Posture, number> = { ga: 0, private_beta: 1, waitlist: 2 };

export interface Decision {
  verdict: Verdict;
  posture: Posture;
  applied: Array<{ rule: Rule; evidence: string[] }>;
}

export function decide(results: readonly CommandResult[], dod: readonly DodOutcome[]): Decision {
  const applied = RULES.map((rule) => ({ rule, evidence: rule.triggers(results, dod) })).filter((a) => a.evidence.length > 0);
  let verdict: Verdict = 'GO';
  let posture: Posture = 'ga';
  for (const { rule } of applied) {
    if (VERDICT_RANK[rule.verdict] > VERDICT_RANK[verdict]) verdict = rule.verdict;
    if (POSTURE_RANK[rule.posture] > POSTURE_RANK[posture]) posture = rule.posture;
  }
  return { verdict, posture, applied };
}

/** The last line of the packet and of the run. */
export const verdictLine = (d: Decision) => `VERDICT: ${d.verdict} (hosted posture: ${d.posture})`;
