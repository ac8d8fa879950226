import { z } from 'zod';
import { Limits } from './plans.js';
import { TenantRef } from './tenants-api.js';

/**
 * The meters. Their names are the contract: the usage API, invoices, charts and quotas
 * all read the same hourly rollups under these names.
 * - counters, summed by the api instances that see the traffic: `apiRequests` (per route
 *   template, method and status class) and `egressBytes` (response bodies sent);
 * - gauges, sampled by the worker into the same rollups as peak and time-weighted
 *   average: `storageBytes`, `fileStorageBytes`, `realtimeConnections`.
 */
export const COUNTER_METERS = ['apiRequests', 'egressBytes'] as const;
export const GAUGE_METERS = ['storageBytes', 'fileStorageBytes', 'realtimeConnections'] as const;
export const Meter = z.enum([...COUNTER_METERS, ...GAUGE_METERS]);
export type Meter = z.infer<typeof Meter>;
export type CounterMeter = (typeof COUNTER_METERS)[number];
export type GaugeMeter = (typeof GAUGE_METERS)[number];

export const isGaugeMeter = (meter: Meter): meter is GaugeMeter => (GAUGE_METERS as readonly string[]).includes(meter);

/**
 * The worker's health probes of each tenant's store, kept in the same hourly rollups as
 * probes per status class (`up` | `down`): their ratio over a month is the availability
 * the plan's SLA is measured by. Not a Meter: it is not billed and has no series.
 */
export const AVAILABILITY_METER = 'availability';

/** A calendar month in UTC, `YYYY-MM`. */
export const UsageMonth = z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/, 'must be a month, YYYY-MM');

/** [from, to) of a UTC month. */
export function monthBounds(month: string): { from: Date; to: Date } {
  const [year, mon] = month.split('-').map(Number) as [number, number];
  return { from: new Date(Date.UTC(year, mon - 1, 1)), to: new Date(Date.UTC(year, mon, 1)) };
}

/** The UTC month `at` falls in. */
export function monthOf(at: Date): string {
  return `${at.getUTCFullYear()}-${String(at.getUTCMonth() + 1).padStart(2, '0')}`;
}

const MonthRequest = { month: UsageMonth.optional() };
export const TenantUsageRequest = z.strictObject({ id: TenantRef, ...MonthRequest });
/** No input at all (the SDK's `usage.own.query()`) is this month. */
export const OwnUsageRequest = z.strictObject(MonthRequest).default({});

const Gauge = z.object({
  /** The latest sample, or 0 before the first. */
  current: z.number().int().nonnegative(),
  /** The highest sample in the month. */
  peak: z.number().int().nonnegative(),
  /** Time-weighted average over the part of the month that was sampled. */
  average: z.number().nonnegative(),
  /** When the latest sample was taken (null before the first). */
  sampledAt: z.string().nullable(),
});

export const UsageBreakdownItem = z.object({
  route: z.string(),
  method: z.string(),
  statusClass: z.string(),
  count: z.number().int().nonnegative(),
});

export const UsageReport = z.object({
  tenantId: z.string(),
  month: UsageMonth,
  /** The month's bounds in UTC; `to` is exclusive. */
  from: z.string(),
  to: z.string(),
  /** The month is over and its grace period for late counts has passed: these numbers no longer change. */
  final: z.boolean(),
  /** Counts include every call answered up to this instant (all api instances have flushed up to it). */
  asOf: z.string(),
  meters: z.object({
    apiRequests: z.object({ total: z.number().int().nonnegative(), breakdown: z.array(UsageBreakdownItem) }),
    egressBytes: z.object({ total: z.number().int().nonnegative() }),
    storageBytes: Gauge,
    fileStorageBytes: Gauge,
    realtimeConnections: Gauge,
    /** Health probes of the tenant's store in the month, how many succeeded, and their ratio (null before the first probe): the availability the SLA is measured by. */
    availability: z.object({
      probes: z.number().int().nonnegative(),
      up: z.number().int().nonnegative(),
      ratio: z.number().min(0).max(1).nullable(),
    }),
  }),
  /** The effective limits: the plan's, with the tenant's overrides on top. */
  limits: Limits,
});
export type UsageReport = z.infer<typeof UsageReport>;

export const UsageInterval = z.enum(['hour', 'day']);
export type UsageInterval = z.infer<typeof UsageInterval>;

/** Most points one series request may span. */
export const MAX_SERIES_POINTS = 1_000;

export const UsageSeriesRequest = z
  .strictObject({
    id: TenantRef,
    meter: Meter,
    from: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time' }),
    to: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time' }),
    interval: UsageInterval.default('hour'),
  })
  .superRefine((input, ctx) => {
    const from = Date.parse(input.from);
    const to = Date.parse(input.to);
    if (!(from < to)) ctx.addIssue({ code: 'custom', path: ['to'], message: 'must be after from' });
    const step = input.interval === 'hour' ? 3_600_000 : 86_400_000;
    if ((to - from) / step > MAX_SERIES_POINTS) {
      ctx.addIssue({ code: 'custom', path: ['from'], message: `spans more than ${MAX_SERIES_POINTS} ${input.interval}s; narrow the range or use a longer interval` });
    }
  });

export const UsageSeries = z.object({
  meter: Meter,
  interval: UsageInterval,
  /**
   * One point per bucket (UTC hours or days) from `from` to `to`, empty ones as 0: for
   * counters the sum, for gauges the time-weighted average (and `peak`).
   */
  points: z.array(z.object({ at: z.string(), value: z.number().nonnegative(), peak: z.number().nonnegative().optional() })),
});
