import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { PLATFORM_KEY } from '../support/apps.js';
import { REPO_ROOT } from '../support/process.js';
import { useStack } from '../support/stack.js';
import { dropTenantDatabasesOf } from '../support/tenant-databases.js';

/**
 * `pnpm demo` against a live api and worker: tenants across plans and isolation models
 * (cluster is refused by this api, so that one falls back to schema), a spread of
 * statuses, a quota override, document traffic; and a second run changes nothing.
 */
const stack = useStack({ api: { TENANT_CLUSTER_DRIVER: 'kubernetes' } });
afterAll(async () => {
  if (stack.database) await dropTenantDatabasesOf(stack.database.name);
});

const run = (tenants: number) =>
  promisify(execFile)(process.execPath, ['--conditions=@tenantry/source', '--import', 'tsx', 'apps/dashboard/scripts/demo.ts', '--tenants', String(tenants)], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', TENANTRY_URL: stack.api.baseUrl, TENANTRY_PLATFORM_KEY: PLATFORM_KEY },
    timeout: 120_000,
  });

describe('pnpm demo', () => {
  it('seeds tenants across plans, isolation models and statuses, with documents; a second run adds nothing', async () => {
    const first = await run(8);
    expect(first.stdout).toContain('8 of 8 tenants are ready (8 new)');
    expect(first.stdout).toMatch(/cluster isolation is not available here/);
    expect(Number(/(\d+) documents written/.exec(first.stdout)?.[1])).toBeGreaterThan(0);

    const { items } = (await stack.admin('GET', '/v1/tenants?limit=100')).body as { items: Array<{ id: string; slug: string; plan: string; status: string; isolation: string }> };
    const demo = items.filter((t) => !['default'].includes(t.slug));
    expect(demo).toHaveLength(8);
    expect(new Set(demo.map((t) => t.plan))).toEqual(new Set(['trial', 'free', 'pro', 'enterprise']));
    expect(new Set(demo.map((t) => t.isolation))).toEqual(new Set(['schema', 'database']));
    expect(demo.map((t) => t.status).sort()).toEqual(['active', 'active', 'active', 'active', 'active', 'active', 'pending_deletion', 'suspended']);
    const overridden = demo.find((t) => t.slug === 'globex-labs')!;
    expect((await stack.admin('GET', `/v1/tenants/${overridden.id}/billing-state`)).body.limits).toEqual({ members: 26, apiRequestsPerMinute: 1200 });

    const second = await run(8);
    expect(second.stdout).toContain('8 of 8 tenants are ready (0 new)');
    expect(second.stdout).toContain('0 documents written');
    const after = (await stack.admin('GET', '/v1/tenants?limit=100')).body.items as typeof items;
    expect(after.map((t) => [t.slug, t.status])).toEqual(items.map((t) => [t.slug, t.status]));
    expect((await stack.admin('GET', '/v1/tenants?limit=100')).body.items).toHaveLength(items.length);
  }, 180_000);
});
