import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { runPromtool } from './support/promtool.js';

/**
 * The Prometheus rules operators load (docs/ops/alerts.yml) and their promtool unit tests
 * (docs/ops/alerts.test.yml). No stack: promtool evaluates the rules against the series the
 * unit tests describe. .ci/run installs promtool (Debian package `prometheus`).
 */

const ALERTS = 'docs/ops/alerts.yml';
const ALERT_TESTS = 'docs/ops/alerts.test.yml';
const RUNBOOK = 'docs/ops/runbook.md';

/** The sections docs/ops/runbook.md must have: one per `runbook_url` anchor in docs/ops/alerts.yml. */
export const RUNBOOK_ANCHORS = [
  'api-down',
  'api-error-ratio',
  'api-error-budget',
  'entitlements-stale',
  'quota-exceeded',
  'usage-flush-stalled',
  'worker-down',
  'tenant-unreachable',
  'cluster-failover',
  'cluster-replication-lag',
  'provisioning-failures',
  'provisioning-slow',
  'queue-backlog',
  'move-stuck',
  'move-rolled-back',
] as const;

const RUNBOOK_URL = /^docs\/ops\/runbook\.md#([a-z0-9]+(?:-[a-z0-9]+)*)$/;

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; rules: Rule[] }[];
}
interface TestFile {
  rule_files: string[];
  group_eval_order?: string[];
  tests: {
    name?: string;
    alert_rule_test?: { alertname: string; eval_time: string; exp_alerts?: unknown[] | null }[];
    promql_expr_test?: { expr: string }[];
  }[];
}

const ruleFile = parse(readFileSync(new URL(`../${ALERTS}`, import.meta.url), 'utf8')) as RuleFile;
const testFile = parse(readFileSync(new URL(`../${ALERT_TESTS}`, import.meta.url), 'utf8')) as TestFile;
const rules = ruleFile.groups.flatMap((g) => g.rules);
const alerts = rules.filter((r): r is Rule & { alert: string } => !!r.alert);
const records = rules.filter((r): r is Rule & { record: string } => !!r.record);


/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  for (const [, text] of markdown.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const explicit = /\{#([\w-]+)\}$/.exec(text!);
    anchors.add(explicit ? explicit[1]! : slug(text!));
  }
  for (const [, id] of markdown.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(id!);
  return anchors;
}

function anchorOf(alert: Rule): string | undefined {
  return RUNBOOK_URL.exec(alert.annotations?.runbook_url ?? '')?.[1];
}

describe('docs/ops/alerts.yml', () => {
  it('passes `promtool check rules`', async () => {
    const output = await runPromtool(['check', 'rules', ALERTS]);
    expect(output).toMatch(/^\s*SUCCESS: \d+ rules found/m);
    expect(output).not.toContain('FAILED');
  }, 120_000);

  it('passes its unit tests, `promtool test rules`', async () => {
    const output = await runPromtool(['test', 'rules', ALERT_TESTS]);
    expect(output).toMatch(/^\s*SUCCESS\s*$/m);
    expect(output).not.toContain('FAILED');
  }, 120_000);

  it('gives every alert a `for`, a severity (page or ticket), a summary, a description and a runbook link', () => {
    expect(alerts.length).toBeGreaterThan(0);
    for (const alert of alerts) {
      const where = `alert ${alert.alert}`;
      expect(alert.for, where).toMatch(/^(\d+[smhdwy])+$/);
      expect(alert.labels?.severity, where).toMatch(/^(page|ticket)$/);
      expect(alert.annotations?.summary, where).toBeTruthy();
      expect(alert.annotations?.description, where).toBeTruthy();
      expect(alert.annotations?.runbook_url, where).toMatch(RUNBOOK_URL);
    }
    expect(new Set(alerts.map((a) => a.alert)).size, 'alert names are unique').toBe(alerts.length);
  });

  it(`links only runbook sections listed in RUNBOOK_ANCHORS, all of which it uses, and that ${RUNBOOK} has (once it exists)`, () => {
    const used = new Set(alerts.map(anchorOf));
    expect([...used].sort()).toEqual([...RUNBOOK_ANCHORS].sort());
    if (existsSync(new URL(`../${RUNBOOK}`, import.meta.url))) {
      const present = anchorsOf(readFileSync(new URL(`../${RUNBOOK}`, import.meta.url), 'utf8'));
      expect(RUNBOOK_ANCHORS.filter((a) => !present.has(a)), `sections missing from ${RUNBOOK}`).toEqual([]);
    }
  });
});

describe('docs/ops/alerts.test.yml', () => {
  it('tests docs/ops/alerts.yml, recording rules evaluated before the alerts that read them', () => {
    expect(testFile.rule_files).toEqual(['alerts.yml']);
    // Without an order promtool evaluates groups at random and alert values flake.
    expect(testFile.group_eval_order).toEqual(ruleFile.groups.map((g) => g.name));
  });

  it('has a case where each alert fires and one where it must not', () => {
    const cases = testFile.tests.flatMap((t) => t.alert_rule_test ?? []);
    const names = new Set(alerts.map((a) => a.alert));
    expect(cases.filter((c) => !names.has(c.alertname)).map((c) => c.alertname), 'cases for unknown alerts').toEqual([]);
    const missing = alerts.flatMap((a) => {
      const mine = cases.filter((c) => c.alertname === a.alert);
      return [
        ...(mine.some((c) => (c.exp_alerts ?? []).length > 0) ? [] : [`${a.alert}: no firing case`]),
        ...(mine.some((c) => (c.exp_alerts ?? []).length === 0) ? [] : [`${a.alert}: no not-firing case`]),
      ];
    });
    expect(missing).toEqual([]);
  });

  it('covers every recording rule, by a promql_expr_test or through an alert it feeds', () => {
    const uses = (expr: string, record: string) => new RegExp(`(^|[^\\w:])${record.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}($|[^\\w:])`).test(expr);
    const tested = testFile.tests.flatMap((t) => t.promql_expr_test ?? []).map((t) => t.expr);
    const covered = new Set<string>();
    let frontier = [...tested, ...alerts.map((a) => a.expr)];
    while (frontier.length > 0) {
      const found = records.filter((r) => !covered.has(r.record) && frontier.some((expr) => uses(expr, r.record)));
      for (const r of found) covered.add(r.record);
      frontier = found.map((r) => r.expr);
    }
    expect(records.map((r) => r.record).filter((name) => !covered.has(name))).toEqual([]);
  });
});
