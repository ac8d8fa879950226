import { readdirSync } from 'node:fs';
import path from 'node:path';

/**
 * The areas `pnpm certify` groups the test suite by (issue 16 §4), and the one table that
 * puts every test file in one of them, by path. A file no rule takes, or that two rules
 * take, stops the certification before anything runs: a new test must be placed on purpose.
 */
export const AREAS = [
  'foundation',
  'control plane',
  'entitlements',
  'isolation',
  'metering',
  'files and realtime',
  'invoices',
  'dashboard',
  'moves',
  'faults',
  'security',
] as const;
export type Area = (typeof AREAS)[number];

/** Path (from the repository root) → area. Patterns are anchored; order does not matter. */
export const AREA_RULES: ReadonlyArray<{ area: Area; pattern: RegExp }> = [
  // Config, first run, tools, health and metrics, alert rules, deployment (Kubernetes, Redis Cluster), this certification.
  { area: 'foundation', pattern: /^test\/(config|first-run|tools|observability|alerts|kubernetes|certify|redis-cluster)\.test\.ts$/ },
  { area: 'foundation', pattern: /^packages\/db\/src\/secret-key\.test\.ts$/ },
  // Signup, provisioning, tenants and lifecycle, DNS, audit, the API contract and the SDK.
  { area: 'control plane', pattern: /^test\/(provisioning|tenants-api|lifecycle|dns|dns-provisioning|audit|openapi|api-docs|sdk|sdk-package)\.test\.ts$/ },
  { area: 'control plane', pattern: /^packages\/(domain|jobs)\/src\/.*\.test\.ts$/ },
  { area: 'entitlements', pattern: /^test\/(entitlements-database|billing-state|license-api)\.test\.ts$/ },
  { area: 'entitlements', pattern: /^packages\/entitlements\/src\/.*\.test\.ts$/ },
  // The tenant's storage and context: schemas, backups, the transaction that sets the tenant context (dialect).
  { area: 'isolation', pattern: /^test\/(schema|tenant-backup|dialect)\.test\.ts$/ },
  { area: 'isolation', pattern: /^packages\/db\/src\/isolation\/.*\.test\.ts$/ },
  { area: 'metering', pattern: /^test\/(usage|quotas|enforcement|rate-limit)\.test\.ts$/ },
  { area: 'files and realtime', pattern: /^test\/(files|files-s3|realtime)\.test\.ts$/ },
  { area: 'invoices', pattern: /^test\/(invoices|invoices-close|billing-upgrade|pricing|webhooks|stripe-webhook)\.test\.ts$/ },
  { area: 'invoices', pattern: /^(packages\/invoices\/src|apps\/worker\/src\/webhooks)\/.*\.test\.ts$/ },
  { area: 'dashboard', pattern: /^test\/dashboard\/.*\.test\.ts$/ },
  { area: 'moves', pattern: /^test\/moves\.test\.ts$/ },
  { area: 'faults', pattern: /^test\/faults\/.*\.test\.ts$/ },
  // Isolation between tenants in every model and after every move, credentials, hostile input.
  { area: 'security', pattern: /^test\/security\/.*\.test\.ts$/ },
  { area: 'security', pattern: /^test\/(rls|hostile-input|auth|login-limits|platform-keys|operator-sessions|credential-cache|sdk-browser-safety|signup-validation)\.test\.ts$/ },
  { area: 'security', pattern: /^apps\/api\/src\/http\/client-address\.test\.ts$/ },
];

export class UnmappedTestFileError extends Error {}

/** Area → its files. Throws naming every file that no rule, or more than one area, takes (or that vitest could not select alone). */
export function mapTestFiles(files: readonly string[]): Map<Area, string[]> {
  const byArea = new Map<Area, string[]>(AREAS.map((a) => [a, []]));
  const problems: string[] = [];
  for (const file of [...files].sort()) {
    const areas = [...new Set(AREA_RULES.filter((r) => r.pattern.test(file)).map((r) => r.area))];
    if (areas.length === 0) problems.push(`${file}: in no area`);
    else if (areas.length > 1) problems.push(`${file}: in ${areas.length} areas (${areas.join(', ')})`);
    else byArea.get(areas[0]!)!.push(file);
  }
  // vitest takes file arguments as filters (a path containing one matches it): a file whose
  // path contains another's would run that other file in its area too.
  for (const a of files) for (const b of files) if (a !== b && b.includes(a)) problems.push(`${a}: its path is part of ${b}'s, so it cannot be run alone`);
  if (problems.length > 0) {
    throw new UnmappedTestFileError(`every test file must belong to exactly one area (test/certify/areas.ts, AREA_RULES):\n  ${problems.join('\n  ')}`);
  }
  return byArea;
}

/** The test files vitest runs (vitest.config.ts `include`), repository-relative, sorted. */
export function listTestFiles(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
      if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
      const rel = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(rel);
      else if (entry.name.endsWith('.test.ts')) found.push(rel);
    }
  };
  walk('test');
  for (const top of ['packages', 'apps']) {
    for (const pkg of readdirSync(path.join(root, top), { withFileTypes: true })) {
      if (!pkg.isDirectory()) continue;
      try {
        walk(`${top}/${pkg.name}/src`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }
  return found.sort();
}
