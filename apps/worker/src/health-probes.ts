import { type Db, type IsolationRegistry, recordProbe } from '@tenantry/db';

const PAGE = 500;

/**
 * Probe every active tenant's store once, through its isolation driver's health check, at
 * most `concurrency` at a time, and record each outcome. A driver that can heal what it
 * finds (a cluster tenant's stopped instance) does so and probes again. Walks tenants in
 * pages so a large fleet never loads at once. Returns counts.
 */
export async function probeActiveTenants(
  db: Db,
  isolation: IsolationRegistry,
  concurrency: number,
  onFailure: () => void,
): Promise<{ probed: number; failed: number }> {
  let probed = 0;
  let failed = 0;
  let after = '0';
  for (;;) {
    const page = await db
      .selectFrom('tenants')
      .select(['id', 'isolation', 'schema_name', 'placement_generation', 'seq'])
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
        const probe = await isolation.health({ id: tenant.id, isolation: tenant.isolation, schemaName: tenant.schema_name, placementGeneration: tenant.placement_generation });
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
 * Keep the storage of tenants that are not served right now — suspended or pending
 * deletion — ready too, for the models whose driver has something to keep running (a
 * cluster tenant's instance): an operator may need it (backup, inspection), and
 * unsuspending or restoring must give access back at once, not after the next failed
 * probe. Returns how many were started.
 */
export async function keepIdleTenantsReady(db: Db, isolation: IsolationRegistry): Promise<number> {
  let started = 0;
  for (const driver of isolation.drivers) {
    const keepReady = driver.keepReady;
    if (!keepReady) continue;
    let after = '0';
    for (;;) {
      const page = await db
        .selectFrom('tenants')
        .select(['id', 'seq'])
        .where('isolation', '=', driver.model)
        .where('status', 'in', ['suspended', 'pending_deletion'])
        .where('seq', '>', after)
        .orderBy('seq')
        .limit(PAGE)
        .execute();
      if (page.length === 0) break;
      after = page.at(-1)!.seq;
      for (const tenant of page) if (await keepReady(tenant.id).catch(() => false)) started += 1;
    }
  }
  return started;
}
