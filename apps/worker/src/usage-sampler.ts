import {
  type Db,
  type GaugeSample,
  type IsolationRegistry,
  type StorageMeasure,
  type TenantRef,
  announceStorageCrossings,
  committedFileBytes,
  recordGaugePeaks,
  recordGaugeSamples,
} from '@tenantry/db';
import { type RedisClient, realtimeKeys } from '@tenantry/jobs';
import { type Isolation, type Limits, entitlementsOf } from '@tenantry/domain';
import { sql } from 'kysely';

const PAGE = 500;

/**
 * One sampling pass of the storageBytes gauge: every tenant whose storage exists (active,
 * suspended, pending deletion), measured by its isolation driver from catalogs and free
 * space maps, recorded at `at` into the hourly rollups (usage.ts integrates each step).
 * Tenants whose last sample was at or over their limit are vacuumed first, so that rows
 * they deleted count as freed by this pass and their writes come back by themselves.
 * Tenants whose new sample is on the other side of their limit are announced to the api
 * instances (announceStorageCrossings), which then read it at their next write.
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
    /** Each tenant's limit and whether its last sample was at or over it. */
    const before = new Map<string, { limit: number; over: boolean }>();
    const byModel = new Map<Isolation, TenantRef[]>();
    for (const row of page) {
      const limits: Limits = entitlementsOf({
        plan: row.plan ?? 'trial',
        planVersion: row.plan_version ?? 1,
        subscriptionState: row.subscription_state ?? 'trial',
        limits: row.limits as Partial<Limits> | null,
      }).limits;
      const over = row.last_bytes !== null && Number(row.last_bytes) >= limits.storageBytes;
      if (over) vacuumFirst.add(row.id);
      before.set(row.id, { limit: limits.storageBytes, over });
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
    // Committed: now the api instances may drop the samples they hold of tenants that crossed.
    const crossed = samples.filter((sample) => {
      const was = before.get(sample.tenantId);
      return was !== undefined && (sample.value >= was.limit) !== was.over;
    });
    await announceStorageCrossings(
      db,
      crossed.map((sample) => sample.tenantId),
    );
    sampled += samples.length;
    overLimit += vacuumFirst.size;
  }
  return { sampled, overLimit };
}

/**
 * One sampling pass of the two gauges the data plane keeps counts of itself, for every
 * tenant whose storage exists:
 * - fileStorageBytes: the committed bytes of its files, from the counter every upload and
 *   delete maintains (never a scan of files or storage);
 * - realtimeConnections: its open streams across every api instance (the live slots in
 *   Redis), plus the exact hourly peaks the api recorded as streams opened — a sample a
 *   minute gives the time-weighted average, the peaks catch bursts between samples.
 */
export async function sampleDataPlane(db: Db, redis: RedisClient, prefix: string, at: Date, maxGapSeconds: number): Promise<{ sampled: number }> {
  const keys = realtimeKeys(prefix);
  let sampled = 0;
  let after = '0';
  for (;;) {
    const page = await db
      .selectFrom('tenants')
      .select(['id', 'seq'])
      .where('status', 'in', ['active', 'suspended', 'pending_deletion'])
      .where('seq', '>', after)
      .orderBy('seq')
      .limit(PAGE)
      .execute();
    if (page.length === 0) break;
    after = page.at(-1)!.seq;
    const ids = page.map((t) => t.id);

    const files = await committedFileBytes(db, ids);
    await recordGaugeSamples(db, 'fileStorageBytes', ids.map((tenantId) => ({ tenantId, value: files.get(tenantId) ?? 0 })), at, maxGapSeconds);

    const pipeline = redis.pipeline();
    for (const id of ids) {
      pipeline.zcount(keys.slots(id), `(${at.getTime()}`, '+inf');
      pipeline.hgetall(keys.peaks(id));
    }
    const replies = (await pipeline.exec()) ?? [];
    const connections: GaugeSample[] = [];
    const peaks: Array<{ tenantId: string; hour: Date; value: number }> = [];
    ids.forEach((tenantId, i) => {
      const [countErr, count] = replies[2 * i] ?? [];
      const [peakErr, byHour] = replies[2 * i + 1] ?? [];
      if (!countErr) connections.push({ tenantId, value: Number(count ?? 0) });
      if (!peakErr) for (const [hour, value] of Object.entries((byHour ?? {}) as Record<string, string>)) peaks.push({ tenantId, hour: new Date(Number(hour)), value: Number(value) });
    });
    await recordGaugeSamples(db, 'realtimeConnections', connections, at, maxGapSeconds);
    await recordGaugePeaks(db, 'realtimeConnections', peaks);
    sampled += ids.length;
  }
  return { sampled };
}

/** Forget api instances not heard from for a day: an instance id is never reused, so its last flush sequence no longer matters. */
export async function forgetStaleUsageInstances(db: Db): Promise<number> {
  const result = await sql`delete from usage_instances where seen_at < now() - interval '1 day'`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}
