import { type Db, type GaugeSample, type IsolationRegistry, type StorageMeasure, type TenantRef, recordGaugeSamples } from '@tenantry/db';
import { type Isolation, type Limits, entitlementsOf } from '@tenantry/domain';
import { sql } from 'kysely';

const PAGE = 500;

/**
 * One sampling pass of the storageBytes gauge: every tenant whose storage exists (active,
 * suspended, pending deletion), measured by its isolation driver from catalogs and free
 * space maps, recorded at `at` into the hourly rollups (usage.ts integrates each step).
 * Tenants whose last sample was at or over their limit are vacuumed first, so that rows
 * they deleted count as freed by this pass and their writes come back by themselves.
 * Walks tenants in pages, so a large fleet never loads at once.
 */
export async function sampleStorage(db: Db, isolation: IsolationRegistry, at: Date, maxGapSeconds: number): Promise<{ sampled: number; overLimit: number }> {
  let sampled = 0;
  let overLimit = 0;
  let after = '0';
  for (;;) {
    const page = await db
      .selectFrom('tenants')
      .leftJoin('billing_states', 'billing_states.tenant_id', 'tenants.id')
      .leftJoin('usage_gauges', (join) => join.onRef('usage_gauges.tenant_id', '=', 'tenants.id').on('usage_gauges.meter', '=', 'storageBytes'))
      .select([
        'tenants.id',
        'tenants.isolation',
        'tenants.schema_name',
        'tenants.placement_generation',
        'tenants.seq',
        'billing_states.plan',
        'billing_states.plan_version',
        'billing_states.subscription_state',
        'billing_states.limits',
        'usage_gauges.value as last_bytes',
      ])
      .where('tenants.status', 'in', ['active', 'suspended', 'pending_deletion'])
      .where('tenants.seq', '>', after)
      .orderBy('tenants.seq')
      .limit(PAGE)
      .execute();
    if (page.length === 0) break;
    after = page.at(-1)!.seq;

    const vacuumFirst = new Set<string>();
    const byModel = new Map<Isolation, TenantRef[]>();
    for (const row of page) {
      const limits: Limits = entitlementsOf({
        plan: row.plan ?? 'trial',
        planVersion: row.plan_version ?? 1,
        subscriptionState: row.subscription_state ?? 'trial',
        limits: row.limits as Partial<Limits> | null,
      }).limits;
      if (row.last_bytes !== null && Number(row.last_bytes) >= limits.storageBytes) vacuumFirst.add(row.id);
      const refs = byModel.get(row.isolation) ?? [];
      refs.push({ id: row.id, isolation: row.isolation, schemaName: row.schema_name, placementGeneration: row.placement_generation });
      byModel.set(row.isolation, refs);
    }
    const measured = new Map<string, StorageMeasure>();
    for (const [model, refs] of byModel) {
      for (const [id, measure] of await isolation.driver(model).measureStorage(refs, vacuumFirst)) measured.set(id, measure);
    }
    const samples: GaugeSample[] = [...measured].map(([tenantId, m]) => ({ tenantId, value: m.bytes }));
    await recordGaugeSamples(db, 'storageBytes', samples, at, maxGapSeconds);
    sampled += samples.length;
    overLimit += vacuumFirst.size;
  }
  return { sampled, overLimit };
}

/** Forget api instances not heard from for a day: an instance id is never reused, so its last flush sequence no longer matters. */
export async function forgetStaleUsageInstances(db: Db): Promise<number> {
  const result = await sql`delete from usage_instances where seen_at < now() - interval '1 day'`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}
