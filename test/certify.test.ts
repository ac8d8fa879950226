import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AREAS, listTestFiles, mapTestFiles } from './certify/areas.js';
import { defaultCommands } from './certify/commands.js';
import { DEFINITION_OF_DONE } from './certify/packet.js';
import type { CertCommand, CommandResult } from './certify/runner.js';
import { decide } from './certify/verdict.js';
import { REPO_ROOT } from './support/process.js';

/**
 * `pnpm certify`, the generator of the certification packet, run on a small fixture of fake
 * commands (one passing, one failing, one timing out, one printing nothing, one cut short,
 * one benchmark missing a target) instead of the real ~15-minute validation.
 */
const node = process.execPath;
const FIXTURE: CertCommand[] = [
  { id: 'fixture:pass', title: 'passes', kind: 'typecheck', argv: [node, '-e', "console.log('Tasks:    4 successful, 4 total')"], timeoutMs: 20_000, completes: 'Tasks:\\s+\\d+ successful' },
  { id: 'fixture:fail', title: 'fails', kind: 'tests', area: 'security', argv: [node, '-e', "console.log('Tests  1 failed | 2 passed (3)'); process.exit(1)"], timeoutMs: 20_000 },
  { id: 'fixture:timeout', title: 'never ends', kind: 'bench', argv: [node, '-e', "console.log('PASS  so far'); setInterval(() => {}, 1000)"], timeoutMs: 1_500, completes: '\\b(PASS|MISS)\\b' },
  { id: 'fixture:empty', title: 'prints nothing', kind: 'openapi-lint', argv: [node, '-e', ''], timeoutMs: 20_000 },
  { id: 'fixture:truncated', title: 'stops before its summary', kind: 'promtool', argv: [node, '-e', "console.log('Checking docs/ops/alerts.yml')"], timeoutMs: 20_000, completes: 'SUCCESS|FAILED' },
  { id: 'fixture:miss', title: 'a benchmark that misses', kind: 'bench', argv: [node, '-e', "console.log('  PASS  p95 < 100 ms'); console.log('  MISS  throughput ≥ 75% of bare (61%)')"], timeoutMs: 20_000, completes: '\\b(PASS|MISS)\\b', keyLines: '\\b(PASS|MISS)\\b' },
];

let dir: string;
let run: { code: number; stdout: string; stderr: string };
let packet: string;

/** The commands table's row for a command id, split into its cells. */
function row(id: string): string[] {
  const line = packet.split('\n').find((l) => l.startsWith('| ') && l.slice(2, -2).split(' | ')[1] === id);
  expect(line, id).toBeDefined();
  return line!.slice(2, -2).split(' | ').map((c) => c.trim());
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'tenantry-certify-'));
  const fixture = path.join(dir, 'fixture.json');
  writeFileSync(fixture, JSON.stringify(FIXTURE));
  run = await new Promise((resolve) => {
    execFile(node, ['--import', 'tsx', 'test/certify/certify.ts', '--commands', fixture, '--out', dir, '--date', '2026-12-01'], { cwd: REPO_ROOT, timeout: 90_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr }),
    );
  });
  expect(run.stderr).toBe('');
  packet = readFileSync(path.join(dir, '2026-12-01.md'), 'utf8');
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('pnpm certify on a fixture', () => {
  it('records every command with its exit code, duration and result', () => {
    // Cells: # | id | command | exit code | duration | result | key figures | log
    const pass = row('fixture:pass');
    expect(pass[3]).toBe('0');
    expect(pass[5]).toBe('passed');
    expect(pass[6]).toBe('packages: 4/4 clean');
    const fail = row('fixture:fail');
    expect(fail[3]).toBe('1');
    expect(fail[5]).toMatch(/^\*\*failed\*\* \(exit code: exited 1\)$/);
    for (const id of FIXTURE.map((c) => c.id)) expect(row(id)[4]).toMatch(/^\d+(\.\d)? (ms|s)$/);
    // Its log holds what it printed, under the command line.
    const log = readFileSync(path.join(REPO_ROOT, row('fixture:fail')[7]!), 'utf8');
    expect(log).toContain('Tests  1 failed | 2 passed (3)');
  });

  it('counts a timed-out, an empty and a truncated command as failed, whatever their exit code', () => {
    const timeout = row('fixture:timeout');
    expect(timeout[3]).toBe('signal SIGTERM');
    expect(timeout[5]).toMatch(/^\*\*failed\*\* \(timed out: no exit within 1.5 s/);
    expect(Number.parseFloat(timeout[4]!)).toBeGreaterThanOrEqual(1.5);
    const empty = row('fixture:empty');
    expect(empty[3]).toBe('0');
    expect(empty[5]).toMatch(/^\*\*failed\*\* \(empty output/);
    const truncated = row('fixture:truncated');
    expect(truncated[3]).toBe('0');
    expect(truncated[5]).toMatch(/^\*\*failed\*\* \(truncated output: its closing line/);
    expect(packet).toContain('Commands: 6, passed 2, failed 4');
  });

  it('lists the benchmark targets missed', () => {
    expect(row('fixture:miss')[5]).toBe('passed, 1 target(s) missed');
    expect(packet).toContain('- **fixture:miss** (targets as printed): 1 met, 1 missed\n  - `PASS p95 < 100 ms`\n  - `MISS throughput ≥ 75% of bare (61%)`');
    expect(packet).toMatch(/- \*\*performance\*\* — .* \*\*Applies\.\*\*\n(  - .*\n)*  - fixture:miss: MISS throughput ≥ 75% of bare \(61%\)\n/);
  });

  it('has the Definition-of-Done table, the risk register and the rollback runbook', () => {
    expect(packet).toContain('## Definition of Done');
    // None of the real evidence ran on a fixture: no row claims a pass. A file of the security
    // area (whose fixture run failed without a per-file report) counts as failed; others did not run.
    const dodRows = packet.split('## Definition of Done')[1]!.split('## Risk register')[0]!.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| source'));
    expect(dodRows).toHaveLength(DEFINITION_OF_DONE.length);
    for (const r of dodRows) expect(r).toMatch(/\| \*\*(not run|fail)\*\* \|$/);
    expect(dodRows.find((r) => r.includes('Data plane ≥ 75%'))).toMatch(/`bench:data-plane`: not run \| \*\*not run\*\* \|$/);
    expect(dodRows.find((r) => r.includes('Credential cache'))).toMatch(/`test\/credential-cache.test.ts`: fail \(fixture:fail: exit code\) \| \*\*fail\*\* \|$/);
    expect(packet).toMatch(/## Risk register\n\n\| risk \| status \| note \|/);
    expect(packet).toMatch(/\| Redis is one endpoint: Redis Cluster is not supported \| open \|/);
    expect(packet).toContain('## Rollback runbook');
    expect(packet).toContain('Command list: **');
  });

  it('decides NO_GO, waitlist (a security run failed), and prints the verdict line last', () => {
    expect(run.code).toBe(1);
    expect(packet).toMatch(/- \*\*security\*\* — .* \*\*Applies\.\*\*\n {2}- fixture:fail: exit code/);
    expect(packet.trimEnd().split('\n').at(-1)).toBe('VERDICT: NO_GO (hosted posture: waitlist)');
    expect(run.stdout.trimEnd().split('\n').at(-1)).toBe('VERDICT: NO_GO (hosted posture: waitlist)');
  });
});

describe('the verdict rules', () => {
  const result = (over: Partial<CommandResult> & Pick<CommandResult, 'id' | 'kind'>): CommandResult => ({
    title: over.id,
    shown: over.id,
    exitCode: 0,
    signal: null,
    durationMs: 1,
    passed: true,
    figures: {},
    misses: [],
    keyLines: [],
    files: {},
    logFile: '/dev/null',
    ...over,
  });
  const clean = () => [
    result({ id: 'typecheck', kind: 'typecheck' }),
    ...AREAS.map((area) => result({ id: `tests:${area}`, kind: 'tests', area })),
    result({ id: 'audit:verify', kind: 'audit' }),
    result({ id: 'promtool:rules', kind: 'promtool' }),
    result({ id: 'openapi:spectral', kind: 'openapi-lint' }),
    result({ id: 'bench:data-plane', kind: 'bench' }),
  ];
  const allPass = [{ requirement: 'r', result: 'pass' as const }];
  const replace = (list: CommandResult[], id: string, over: Partial<CommandResult>) => list.map((r) => (r.id === id ? { ...r, ...over } : r));

  it('everything passing: GO, ga', () => {
    expect(decide(clean(), allPass)).toMatchObject({ verdict: 'GO', posture: 'ga', applied: [] });
  });

  it('a benchmark target missed, or the linters or promtool failing: GO_WITH_CONDITIONS, private_beta', () => {
    expect(decide(replace(clean(), 'bench:data-plane', { misses: ['MISS throughput'] }), allPass)).toMatchObject({ verdict: 'GO_WITH_CONDITIONS', posture: 'private_beta' });
    expect(decide(replace(clean(), 'bench:data-plane', { passed: false, failure: 'timed out' }), allPass)).toMatchObject({ verdict: 'GO_WITH_CONDITIONS', posture: 'private_beta' });
    expect(decide(replace(clean(), 'promtool:rules', { passed: false, failure: 'exit code' }), allPass)).toMatchObject({ verdict: 'GO_WITH_CONDITIONS', posture: 'private_beta' });
    expect(decide(replace(clean(), 'openapi:spectral', { passed: false, failure: 'empty output' }), allPass)).toMatchObject({ verdict: 'GO_WITH_CONDITIONS', posture: 'private_beta' });
  });

  it("bench:scale: a latency condition failed is GO_WITH_CONDITIONS; a 5xx, a signup not ready or inexact usage is NO_GO", () => {
    const withScale = [...clean(), result({ id: 'bench:scale', kind: 'bench' })];
    const latency = 'FAIL tenant API p95 < 100 ms (p95 183.0 ms over 10798 calls)';
    expect(decide(replace(withScale, 'bench:scale', { passed: false, failure: 'exit code', misses: [latency] }), allPass)).toMatchObject({
      verdict: 'GO_WITH_CONDITIONS',
      posture: 'private_beta',
    });
    for (const line of ['FAIL zero 5xx (244)', 'FAIL every signup ready (150 of 152)', "FAIL usage == generator's counts, exactly (1028/1103 tenants exact; 93 calls unanswered)"]) {
      const d = decide(replace(withScale, 'bench:scale', { passed: false, failure: 'exit code', misses: [latency, line] }), allPass);
      expect(d, line).toMatchObject({ verdict: 'NO_GO', posture: 'waitlist' });
      expect(d.applied.map((a) => a.rule.id)).toEqual(['correctness-under-load', 'performance']);
    }
  });

  it('a security run that timed out, printed nothing or was cut short is NO_GO, waitlist, like a failing one', () => {
    for (const failure of ['exit code', 'timed out', 'empty output', 'truncated output'] as const) {
      const d = decide(replace(clean(), 'tests:security', { passed: false, failure }), allPass);
      expect(d, failure).toMatchObject({ verdict: 'NO_GO', posture: 'waitlist' });
      expect(d.applied.map((a) => a.rule.id)).toEqual(['security']);
    }
  });

  it('the worst rule wins, and every rule that applies is listed', () => {
    let results = replace(clean(), 'tests:metering', { passed: false, failure: 'exit code' });
    results = replace(results, 'bench:data-plane', { misses: ['MISS p95'] });
    const d = decide(results, allPass);
    expect(d).toMatchObject({ verdict: 'NO_GO', posture: 'waitlist' });
    expect(d.applied.map((a) => a.rule.id)).toEqual(['tests', 'performance']);
    expect(decide(replace(clean(), 'typecheck', { passed: false, failure: 'exit code' }), allPass).verdict).toBe('NO_GO');
    expect(decide(replace(clean(), 'audit:verify', { passed: false, failure: 'exit code' }), allPass).verdict).toBe('NO_GO');
    // A requirement whose evidence did not run is not certified.
    expect(decide(clean(), [{ requirement: 'r', result: 'not run' }]).verdict).toBe('NO_GO');
  });
});

describe('areas and evidence', () => {
  it('every test file of the suite belongs to exactly one area, and every area has tests', () => {
    const files = listTestFiles(REPO_ROOT);
    expect(files).toContain('test/certify.test.ts');
    expect(files).toContain('packages/invoices/src/engine.test.ts');
    const areas = mapTestFiles(files);
    expect([...areas.values()].flat().sort()).toEqual(files);
    for (const area of AREAS) expect(areas.get(area)!.length, area).toBeGreaterThan(0);
  });

  it('a test file in no area stops the certification, naming the file', () => {
    expect(() => mapTestFiles(['test/config.test.ts', 'test/brand-new.test.ts'])).toThrow(/test\/brand-new\.test\.ts: in no area/);
    // vitest selects files by substring: one whose path is inside another's would run twice.
    expect(() => mapTestFiles(['test/faults/usage.test.ts', 'test/faults/usage.test.ts.test.ts'])).toThrow(/test\/faults\/usage\.test\.ts: its path is part of/);
  });

  it('the Definition of Done names only evidence that exists: real test files and commands of the default run', () => {
    const areas = mapTestFiles(listTestFiles(REPO_ROOT));
    const ids = new Set(defaultCommands(areas).map((c) => c.id));
    for (const row of DEFINITION_OF_DONE) {
      for (const e of row.evidence) {
        if ('file' in e) expect(existsSync(path.join(REPO_ROOT, e.file)), e.file).toBe(true);
        else expect(ids.has(e.command), e.command).toBe(true);
      }
    }
  });
});
