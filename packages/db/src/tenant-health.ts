import { sql } from 'kysely';
import type { Db } from './client.js';
import type { TenantRef, TenantStore } from './tenant-store/tenant-store.js';

export interface StoreProbe {
  ok: boolean;
  latencyMs: number;
  error?: string;
}

/** Longest a probe query may take before the store counts as unreachable. */
const PROBE_TIMEOUT_MS = 2_000;

/**
 * A real query in the tenant's own store, the way tenant requests reach it: as the data
 * role, in the tenant's context, on its documents table. Catches a dropped schema, lost
 * grants or policies, and a store that does not answer in time. Whatever the isolation
 * model: the store given routes to the tenant's driver.
 */
export async function probeTenantStore(store: TenantStore, tenant: TenantRef): Promise<StoreProbe> {
  const started = performance.now();
  if (tenant.isolation === 'schema' && !tenant.schemaName) return { ok: false, latencyMs: 0, error: 'the tenant has no store' };
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

/** Record a probe's outcome for the tenant. */
export async function recordProbe(db: Db, tenantId: string, probe: StoreProbe): Promise<void> {
  const now = new Date();
  await db
    .insertInto('tenant_health')
    .values({
      tenant_id: tenantId,
      last_probe_at: now,
      last_success_at: probe.ok ? now : null,
      last_failure_at: probe.ok ? null : now,
      last_error: probe.ok ? null : (probe.error ?? 'unknown error'),
      consecutive_failures: probe.ok ? 0 : 1,
    })
    .onConflict((oc) =>
      oc.column('tenant_id').doUpdateSet(
        probe.ok
          ? { last_probe_at: now, last_success_at: now, consecutive_failures: 0 }
          : { last_probe_at: now, last_failure_at: now, last_error: probe.error ?? 'unknown error', consecutive_failures: sql`tenant_health.consecutive_failures + 1` },
      ),
    )
    .execute();
}
