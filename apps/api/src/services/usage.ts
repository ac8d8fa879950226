import { countersAsOf, latestGauges, readAvailability, readPeriodUsage, readUsageSeries } from '@tenantry/db';
import { GAUGE_METERS, type Meter, type UsageInterval, type UsageReport, ValidationError, monthBounds, monthOf, toPublicId } from '@tenantry/domain';
import type { ApiDeps } from '../context.js';

/** An api instance not heard from for this long is taken as gone when computing asOf. */
const LIVE_INSTANCE_MS = 10_000;

/**
 * A tenant's usage in a UTC month (the current one by default), from the hourly rollups —
 * the same numbers invoices and charts read — with its effective limits.
 */
export async function usageReport(deps: ApiDeps, tenantId: string, month: string | undefined, now = new Date()): Promise<UsageReport> {
  const current = monthOf(now);
  const wanted = month ?? current;
  if (wanted > current) throw new ValidationError([{ field: 'month', message: 'is in the future' }]);
  const { from, to } = monthBounds(wanted);
  const [period, probes, latest, asOf, entitlements] = await Promise.all([
    readPeriodUsage(deps.db, tenantId, from, to),
    readAvailability(deps.db, tenantId, from, to),
    wanted === current ? latestGauges(deps.db, tenantId) : Promise.resolve(undefined),
    countersAsOf(deps.db, LIVE_INSTANCE_MS),
    deps.entitlements.get(tenantId),
  ]);
  const final = now.getTime() >= to.getTime() + deps.config.BILLING_CLOSE_GRACE_HOURS * 3_600_000;
  const gauge = (meter: (typeof GAUGE_METERS)[number]) => {
    const totals = period.gauges[meter];
    const sample = latest?.get(meter);
    const currentValue = sample?.value ?? totals.last ?? 0;
    return {
      current: currentValue,
      peak: Math.max(totals.peak, sample?.value ?? 0),
      average: totals.coveredSeconds > 0 ? totals.valueSeconds / totals.coveredSeconds : currentValue,
      sampledAt: sample ? sample.at.toISOString() : null,
    };
  };
  return {
    tenantId: toPublicId('ten', tenantId),
    month: wanted,
    from: from.toISOString(),
    to: to.toISOString(),
    final,
    // A closed month's counts stopped at its end; the current month's are in up to asOf.
    asOf: (final ? to : asOf < now ? asOf : now).toISOString(),
    meters: {
      apiRequests: period.apiRequests,
      egressBytes: period.egressBytes,
      storageBytes: gauge('storageBytes'),
      fileStorageBytes: gauge('fileStorageBytes'),
      realtimeConnections: gauge('realtimeConnections'),
      availability: {
        probes: Number(probes.probes),
        up: Number(probes.up),
        ratio: Number(probes.probes) > 0 ? Number(probes.up) / Number(probes.probes) : null,
      },
    },
    limits: entitlements.limits,
  };
}

/** A meter in UTC hours or days, for charts. */
export async function usageSeries(deps: ApiDeps, tenantId: string, input: { meter: Meter; from: string; to: string; interval: UsageInterval }) {
  const points = await readUsageSeries(deps.db, tenantId, input.meter, new Date(input.from), new Date(input.to), input.interval);
  return {
    meter: input.meter,
    interval: input.interval,
    points: points.map((p) => ({ at: p.at.toISOString(), value: p.value, ...(p.peak !== undefined ? { peak: p.peak } : {}) })),
  };
}
