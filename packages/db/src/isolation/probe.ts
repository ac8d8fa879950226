import { sql } from 'kysely';
import type { StoreProbe, TenantRef, TenantStore } from './driver.js';

/** Longest a probe query may take before the store counts as unreachable. */
const PROBE_TIMEOUT_MS = 2_000;

/**
 * A real query in the tenant's own store, the way tenant requests reach it: as the data
 * role, in the tenant's context, on its documents table. Catches a dropped schema or
 * database, lost grants or policies, and a store that does not answer in time. Whatever
 * the isolation model: `store` is the tenant's driver, or the registry routing to it.
 */
export async function probeTenantStore(store: TenantStore, tenant: TenantRef): Promise<StoreProbe> {
  const started = performance.now();
  try {
    await store.run(tenant, async (trx) => {
      await sql`set local statement_timeout = ${sql.lit(PROBE_TIMEOUT_MS)}`.execute(trx);
      await sql`select count(*) from (select 1 from documents limit 1) as probe`.execute(trx);
    });
    return { ok: true, latencyMs: Math.round(performance.now() - started) };
  } catch (err) {
    return { ok: false, latencyMs: Math.round(performance.now() - started), error: (err as Error).message.slice(0, 300) };
  }
}
