import { type CounterMeter, type GaugeMeter, type Meter, type UsageInterval, isGaugeMeter } from '@tenantry/domain';
import { sql } from 'kysely';
import type { Db } from './client.js';

/**
 * Usage rollups (migration 2026-12-01T1300_usage): writing counters flushed by api
 * instances, integrating gauge samples taken by the worker, and reading both back. Every
 * consumer — quotas, the usage API, invoices, charts — reads through here.
 */

const HOUR_MS = 3_600_000;

const hourOf = (at: Date) => new Date(Math.floor(at.getTime() / HOUR_MS) * HOUR_MS);

// ---- counters -------------------------------------------------------------------------

/** One counter cell of a flush: how much to add for (tenant, meter, hour, dimensions). */
export interface CounterDelta {
  tenantId: string;
  meter: CounterMeter;
  hour: Date;
  route: string;
  method: string;
  statusClass: string;
  amount: number;
}

export interface CounterFlush {
  instanceId: string;
  /** Increases by one per flush of this instance; a retry carries the same number. */
  seq: number;
  /** Every count this instance recorded before this instant is in this flush or an earlier one. */
  flushedUpTo: Date;
  deltas: CounterDelta[];
}

/**
 * Apply one flush of an api instance, exactly once. Its sequence number is claimed in the
 * same transaction as the counts: if an earlier attempt committed (and only its answer was
 * lost), the claim finds a sequence at least as high and nothing is added again. Counts of
 * a tenant that no longer exists (a failed provisioning, compensated) are dropped. Cells
 * are written in key order, so two instances flushing at once cannot deadlock.
 * Resolves to false when the flush had already been applied.
 */
export async function applyCounterFlush(db: Db, flush: CounterFlush): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const claimed = await sql<{ instance_id: string }>`
      insert into usage_instances (instance_id, last_seq, flushed_up_to, seen_at)
      values (${flush.instanceId}, ${flush.seq}, ${flush.flushedUpTo}, now())
      on conflict (instance_id) do update
        set last_seq = excluded.last_seq, flushed_up_to = excluded.flushed_up_to, seen_at = now()
        where usage_instances.last_seq < excluded.last_seq
      returning instance_id`.execute(trx);
    if (claimed.rows.length === 0) return false;
    if (flush.deltas.length === 0) return true;
    const d = flush.deltas;
    await sql`
      insert into usage_hourly (tenant_id, meter, hour, route, method, status_class, count)
      select u.tenant_id, u.meter, u.hour, u.route, u.method, u.status_class, u.amount
      from unnest(
        ${d.map((x) => x.tenantId)}::uuid[], ${d.map((x) => x.meter)}::text[], ${d.map((x) => x.hour.toISOString())}::timestamptz[],
        ${d.map((x) => x.route)}::text[], ${d.map((x) => x.method)}::text[], ${d.map((x) => x.statusClass)}::text[], ${d.map((x) => x.amount)}::bigint[]
      ) as u(tenant_id, meter, hour, route, method, status_class, amount)
      where exists (select 1 from tenants t where t.id = u.tenant_id)
      order by u.tenant_id, u.meter, u.hour, u.route, u.method, u.status_class
      on conflict (tenant_id, meter, hour, route, method, status_class) do update set count = usage_hourly.count + excluded.count`.execute(trx);
    return true;
  });
}

/**
 * Up to when every api instance's counts are in: the oldest `flushed_up_to` among the
 * instances seen within `liveWithinMs` (an instance that stopped, or was killed, drops out
 * of the reckoning). Now, when no instance is live.
 */
export async function countersAsOf(db: Db, liveWithinMs: number): Promise<Date> {
  const row = await sql<{ as_of: Date | null }>`
    select min(flushed_up_to) as as_of from usage_instances where seen_at > now() - make_interval(secs => ${liveWithinMs / 1000})`.execute(db);
  return row.rows[0]?.as_of ?? new Date();
}

/** An instance that stopped cleanly, its counts all flushed: it no longer holds asOf back. */
export async function retireUsageInstance(db: Db, instanceId: string): Promise<void> {
  await db.deleteFrom('usage_instances').where('instance_id', '=', instanceId).execute();
}

// ---- gauges ---------------------------------------------------------------------------

export interface GaugeSample {
  tenantId: string;
  value: number;
}

/** What one sample adds to one hour of a gauge. */
export interface GaugeContribution {
  hour: Date;
  /** The highest value in effect during the hour. */
  maxValue: number;
  /** The value in effect at the end of the covered part. */
  lastValue: number;
  valueSeconds: number;
  coveredSeconds: number;
}

/**
 * A gauge is a step function: each sample's value holds until the next. The sample at
 * `at` therefore closes the step of the previous one, integrating its value over
 * [previous sample, at] — split at hour boundaries, and at most `maxGapSeconds` back (a
 * gap longer than that, the sampler was down: the time is left uncovered rather than
 * guessed) — and opens its own, which counts toward its hour's peak and last value.
 */
export function gaugeContributions(previous: { value: number; at: Date } | undefined, value: number, at: Date, maxGapSeconds: number): GaugeContribution[] {
  const byHour = new Map<number, GaugeContribution>();
  const cell = (hour: Date) => {
    let c = byHour.get(hour.getTime());
    if (!c) {
      c = { hour, maxValue: 0, lastValue: 0, valueSeconds: 0, coveredSeconds: 0 };
      byHour.set(hour.getTime(), c);
    }
    return c;
  };
  if (previous && previous.at < at) {
    let start = Math.max(previous.at.getTime(), at.getTime() - maxGapSeconds * 1000);
    while (start < at.getTime()) {
      const hour = hourOf(new Date(start));
      const end = Math.min(at.getTime(), hour.getTime() + HOUR_MS);
      const c = cell(hour);
      const seconds = (end - start) / 1000;
      c.valueSeconds += previous.value * seconds;
      c.coveredSeconds += seconds;
      c.maxValue = Math.max(c.maxValue, previous.value);
      c.lastValue = previous.value;
      start = end;
    }
  }
  const current = cell(hourOf(at));
  current.maxValue = Math.max(current.maxValue, value);
  current.lastValue = value;
  return [...byHour.values()].sort((a, b) => a.hour.getTime() - b.hour.getTime());
}

/**
 * Record one sampling pass of `meter` taken at `at`. Per tenant: the previous sample is
 * read (locked), the new one replaces it, and the step between them goes into the hourly
 * rollups, all in one transaction. A tenant whose stored sample is not older than `at`
 * (another worker's pass got there first) is skipped, so no span is integrated twice.
 */
export async function recordGaugeSamples(db: Db, meter: GaugeMeter, samples: GaugeSample[], at: Date, maxGapSeconds: number): Promise<void> {
  if (samples.length === 0) return;
  const sorted = [...samples].sort((a, b) => (a.tenantId < b.tenantId ? -1 : a.tenantId > b.tenantId ? 1 : 0));
  await db.transaction().execute(async (trx) => {
    const previous = await trx
      .selectFrom('usage_gauges')
      .select(['tenant_id', 'value', 'sampled_at'])
      .where('meter', '=', meter)
      .where('tenant_id', 'in', sorted.map((s) => s.tenantId))
      .orderBy('tenant_id')
      .forUpdate()
      .execute();
    const prevOf = new Map(previous.map((p) => [p.tenant_id, { value: Number(p.value), at: new Date(p.sampled_at) }]));
    const fresh = sorted.filter((s) => {
      const prev = prevOf.get(s.tenantId);
      return !prev || prev.at < at;
    });
    if (fresh.length === 0) return;
    await sql`
      insert into usage_gauges (tenant_id, meter, value, sampled_at)
      select u.tenant_id, ${meter}, u.value, ${at}
      from unnest(${fresh.map((s) => s.tenantId)}::uuid[], ${fresh.map((s) => s.value)}::bigint[]) as u(tenant_id, value)
      where exists (select 1 from tenants t where t.id = u.tenant_id)
      on conflict (tenant_id, meter) do update set value = excluded.value, sampled_at = excluded.sampled_at`.execute(trx);
    const rows = fresh.flatMap((s) => gaugeContributions(prevOf.get(s.tenantId), s.value, at, maxGapSeconds).map((c) => ({ tenantId: s.tenantId, ...c })));
    await sql`
      insert into usage_hourly (tenant_id, meter, hour, max_value, last_value, value_seconds, covered_seconds)
      select u.tenant_id, ${meter}, u.hour, u.max_value, u.last_value, u.value_seconds, u.covered_seconds
      from unnest(
        ${rows.map((r) => r.tenantId)}::uuid[], ${rows.map((r) => r.hour.toISOString())}::timestamptz[], ${rows.map((r) => r.maxValue)}::bigint[],
        ${rows.map((r) => r.lastValue)}::bigint[], ${rows.map((r) => r.valueSeconds)}::numeric[], ${rows.map((r) => r.coveredSeconds)}::numeric[]
      ) as u(tenant_id, hour, max_value, last_value, value_seconds, covered_seconds)
      where exists (select 1 from tenants t where t.id = u.tenant_id)
      order by u.tenant_id, u.hour
      on conflict (tenant_id, meter, hour, route, method, status_class) do update set
        max_value = greatest(usage_hourly.max_value, excluded.max_value),
        last_value = excluded.last_value,
        value_seconds = usage_hourly.value_seconds + excluded.value_seconds,
        covered_seconds = usage_hourly.covered_seconds + excluded.covered_seconds`.execute(trx);
  });
}

/**
 * Exact peaks of a gauge observed between samples (realtime connections: the api keeps
 * each hour's highest count as it happens), folded into the hours' `max_value`, so a burst
 * shorter than the sample interval still shows as the peak. Idempotent.
 */
export async function recordGaugePeaks(db: Db, meter: GaugeMeter, peaks: Array<{ tenantId: string; hour: Date; value: number }>): Promise<void> {
  if (peaks.length === 0) return;
  const sorted = [...peaks].sort((a, b) => (a.tenantId < b.tenantId ? -1 : a.tenantId > b.tenantId ? 1 : a.hour.getTime() - b.hour.getTime()));
  await sql`
    insert into usage_hourly (tenant_id, meter, hour, max_value)
    select u.tenant_id, ${meter}, u.hour, u.value
    from unnest(${sorted.map((p) => p.tenantId)}::uuid[], ${sorted.map((p) => hourOf(p.hour).toISOString())}::timestamptz[], ${sorted.map((p) => p.value)}::bigint[]) as u(tenant_id, hour, value)
    where exists (select 1 from tenants t where t.id = u.tenant_id)
    on conflict (tenant_id, meter, hour, route, method, status_class) do update set max_value = greatest(usage_hourly.max_value, excluded.max_value)`.execute(db);
}

/** The latest sample of each gauge of a tenant. */
export async function latestGauges(db: Db, tenantId: string): Promise<Map<GaugeMeter, { value: number; at: Date }>> {
  const rows = await db.selectFrom('usage_gauges').select(['meter', 'value', 'sampled_at']).where('tenant_id', '=', tenantId).execute();
  return new Map(rows.map((r) => [r.meter as GaugeMeter, { value: Number(r.value), at: new Date(r.sampled_at) }]));
}

/** One gauge's latest sample for each of `tenantIds` that has one (one index lookup each: a list page's worth). */
export async function latestGaugeOf(db: Db, meter: GaugeMeter, tenantIds: readonly string[]): Promise<Map<string, number>> {
  if (tenantIds.length === 0) return new Map();
  const rows = await db.selectFrom('usage_gauges').select(['tenant_id', 'value']).where('meter', '=', meter).where('tenant_id', 'in', tenantIds).execute();
  return new Map(rows.map((r) => [r.tenant_id, Number(r.value)]));
}

// ---- reading a period -----------------------------------------------------------------

export interface GaugeTotals {
  /** Highest value in the period (0 without samples). */
  peak: number;
  /** ∫ value dt over the sampled time of the period, in value-seconds (GiB-months are built from this). */
  valueSeconds: number;
  coveredSeconds: number;
  /** The value in effect at the end of the last sampled hour of the period, if any. */
  last: number | null;
}

export interface PeriodUsage {
  apiRequests: { total: number; breakdown: Array<{ route: string; method: string; statusClass: string; count: number }> };
  egressBytes: { total: number };
  gauges: Record<GaugeMeter, GaugeTotals>;
}

/** A tenant's usage over [from, to) (hour-aligned), from the rollups. */
export async function readPeriodUsage(db: Db, tenantId: string, from: Date, to: Date): Promise<PeriodUsage> {
  const counters = await db
    .selectFrom('usage_hourly')
    .select(['meter', 'route', 'method', 'status_class', (eb) => eb.fn.sum<string>('count').as('total')])
    .where('tenant_id', '=', tenantId)
    .where('meter', 'in', ['apiRequests', 'egressBytes'])
    .where('hour', '>=', from)
    .where('hour', '<', to)
    .groupBy(['meter', 'route', 'method', 'status_class'])
    .orderBy('route')
    .orderBy('method')
    .orderBy('status_class')
    .execute();
  const breakdown = counters
    .filter((r) => r.meter === 'apiRequests')
    .map((r) => ({ route: r.route, method: r.method, statusClass: r.status_class, count: Number(r.total) }));
  const egress = counters.filter((r) => r.meter === 'egressBytes').reduce((sum, r) => sum + Number(r.total), 0);

  const gaugeRows = await sql<{ meter: GaugeMeter; peak: string | null; value_seconds: string; covered_seconds: string; last: string | null }>`
    select meter,
           max(max_value) as peak,
           coalesce(sum(value_seconds), 0) as value_seconds,
           coalesce(sum(covered_seconds), 0) as covered_seconds,
           (array_agg(last_value order by hour desc) filter (where last_value is not null))[1] as last
    from usage_hourly
    where tenant_id = ${tenantId} and meter in ('storageBytes', 'fileStorageBytes', 'realtimeConnections') and hour >= ${from} and hour < ${to}
    group by meter`.execute(db);
  const empty = (): GaugeTotals => ({ peak: 0, valueSeconds: 0, coveredSeconds: 0, last: null });
  const gauges: Record<GaugeMeter, GaugeTotals> = { storageBytes: empty(), fileStorageBytes: empty(), realtimeConnections: empty() };
  for (const r of gaugeRows.rows) {
    gauges[r.meter] = { peak: Number(r.peak ?? 0), valueSeconds: Number(r.value_seconds), coveredSeconds: Number(r.covered_seconds), last: r.last === null ? null : Number(r.last) };
  }
  return {
    apiRequests: { total: breakdown.reduce((sum, b) => sum + b.count, 0), breakdown },
    egressBytes: { total: egress },
    gauges,
  };
}

/**
 * A meter of one tenant in buckets of `interval` (UTC hours or days) over [from, to):
 * every bucket, empty ones as 0. Counters are summed; gauges are time-weighted averages,
 * with their peak.
 */
export async function readUsageSeries(
  db: Db,
  tenantId: string,
  meter: Meter,
  from: Date,
  to: Date,
  interval: UsageInterval,
): Promise<Array<{ at: Date; value: number; peak?: number }>> {
  const unit = interval === 'hour' ? 'hour' : 'day';
  const rows = await sql<{ at: Date; total: string | null; value_seconds: string | null; covered_seconds: string | null; peak: string | null; last: string | null }>`
    select b.at,
           sum(h.count) as total,
           sum(h.value_seconds) as value_seconds,
           sum(h.covered_seconds) as covered_seconds,
           max(h.max_value) as peak,
           (array_agg(h.last_value order by h.hour desc) filter (where h.last_value is not null))[1] as last
    from generate_series(date_trunc(${unit}, ${from}::timestamptz, 'UTC'), ${to}::timestamptz - interval '1 microsecond', ${`1 ${unit}`}::interval) as b(at)
    left join usage_hourly h
      on h.tenant_id = ${tenantId} and h.meter = ${meter}
     and h.hour >= b.at and h.hour < b.at + ${`1 ${unit}`}::interval
    group by b.at
    order by b.at`.execute(db);
  const gauge = isGaugeMeter(meter);
  return rows.rows.map((r) => {
    const at = new Date(r.at);
    if (!gauge) return { at, value: Number(r.total ?? 0) };
    const covered = Number(r.covered_seconds ?? 0);
    // A bucket holding only the first sample of a gauge has no covered time yet: its value is that sample.
    return { at, value: covered > 0 ? Number(r.value_seconds) / covered : Number(r.last ?? 0), peak: Number(r.peak ?? 0) };
  });
}
