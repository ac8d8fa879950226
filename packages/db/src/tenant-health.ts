import { sql } from 'kysely';
import type { Db } from './client.js';
import { recordAvailability } from './invoices.js';
import type { StoreProbe } from './isolation/driver.js';

/**
 * Record a probe's outcome for the tenant: its latest health, and one probe more in the
 * hour's availability rollup (the month's ratio is what the plan's SLA is measured by).
 */
export async function recordProbe(db: Db, tenantId: string, probe: StoreProbe, now = new Date()): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx
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
    await recordAvailability(trx, tenantId, probe.ok, now);
  });
}
