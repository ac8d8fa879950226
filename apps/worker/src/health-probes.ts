import { type Db, type TenantStore, probeTenantStore, recordProbe } from '@tenantry/db';

const PAGE = 500;

/**
 * Probe every active tenant's store once, at most `concurrency` at a time, and record each
 * outcome. Walks tenants in pages so a large fleet never loads at once. Returns counts.
 */
export async function probeActiveTenants(
  db: Db,
  store: TenantStore,
  concurrency: number,
  onFailure: () => void,
  options: { restartCluster?: ((tenantId: string) => Promise<boolean>) | undefined } = {},
): Promise<{ probed: number; failed: number }> {
  let probed = 0;
  let failed = 0;
  let after = '0';
  for (;;) {
    const page = await db
      .selectFrom('tenants')
      .select(['id', 'isolation', 'schema_name', 'seq'])
      .where('status', '=', 'active')
      .where('is_default', '=', false)
      .where('seq', '>', after)
      .orderBy('seq')
      .limit(PAGE)
      .execute();
    if (page.length === 0) break;
    after = page.at(-1)!.seq;
    let next = 0;
    const lane = async () => {
      while (next < page.length) {
        const tenant = page[next++]!;
        const ref = { id: tenant.id, isolation: tenant.isolation, schemaName: tenant.schema_name };
        let probe = await probeTenantStore(store, ref);
        // A cluster tenant's own instance may simply be down: start it and probe again.
        if (!probe.ok && tenant.isolation === 'cluster' && options.restartCluster) {
          const restarted = await options.restartCluster(tenant.id).catch(() => false);
          if (restarted) probe = await probeTenantStore(store, ref);
        }
        await recordProbe(db, tenant.id, probe);
        probed += 1;
        if (!probe.ok) {
          failed += 1;
          onFailure();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, page.length) }, lane));
  }
  return { probed, failed };
}

/**
 * Keep the instances of cluster tenants that are not served right now — suspended or
 * pending deletion — running too: an operator may need them (backup, inspection), and
 * unsuspending or restoring must give access back at once, not after the next failed
 * probe. Returns how many were started.
 */
export async function keepIdleClustersRunning(db: Db, restartIfDown: (tenantId: string) => Promise<boolean>): Promise<number> {
  let restarted = 0;
  let after = '0';
  for (;;) {
    const page = await db
      .selectFrom('tenants')
      .select(['id', 'seq'])
      .where('isolation', '=', 'cluster')
      .where('status', 'in', ['suspended', 'pending_deletion'])
      .where('seq', '>', after)
      .orderBy('seq')
      .limit(PAGE)
      .execute();
    if (page.length === 0) return restarted;
    after = page.at(-1)!.seq;
    for (const tenant of page) if (await restartIfDown(tenant.id).catch(() => false)) restarted += 1;
  }
}
