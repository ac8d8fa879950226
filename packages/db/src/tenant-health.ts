import { sql } from 'kysely';
import type { Db } from './client.js';
import type { StoreProbe } from './isolation/driver.js';

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
