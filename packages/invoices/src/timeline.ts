import { PlanId, type TenantStatus, ValidationError } from '@tenantry/domain';
import type { Interval } from './engine.js';

/**
 * From a tenant's recorded history to what the engine takes: its plan segments in a month
 * and the intervals it was suspended, and which hours of usage belong to which segment.
 * Pure, so the rules can be tested on their own.
 *
 * - Billed time is time `active` or `suspended`: from the moment provisioning finished
 *   (the tenant became active) until it was deleted (pending deletion, then purged), and
 *   again after a restore. Provisioning and pending-deletion time is not billed.
 * - A change of plan or price book version ends one segment and starts the next; time
 *   suspended stays inside its segment (the plan says how it is billed) and is also
 *   reported as a suspended interval.
 * - Time is counted in whole seconds: a state that lasted less than its second (two
 *   changes in a row) has no segment of its own.
 */

export interface HistoryEntry {
  at: Date;
  status: TenantStatus;
  plan: string;
  planVersion: number;
}

export interface Segment {
  plan: PlanId;
  planVersion: number;
  from: Date;
  to: Date;
}

export interface BillingTimeline {
  segments: Segment[];
  suspended: Interval[];
}

const BILLED: ReadonlySet<TenantStatus> = new Set(['active', 'suspended']);

/** Billing counts whole seconds: history is recorded to the microsecond, so changes are floored to the second first. */
const toSecond = (at: Date) => new Date(Math.floor(at.getTime() / 1000) * 1000);

/** The segments and suspended intervals of [start, end), from `history` (oldest first; each entry holds until the next). */
export function billingTimeline(history: readonly HistoryEntry[], start: Date, end: Date): BillingTimeline {
  const segments: Segment[] = [];
  const suspended: Interval[] = [];
  history.forEach((entry, i) => {
    const next = toSecond(history[i + 1]?.at ?? end);
    const at = toSecond(entry.at);
    const from = at > start ? at : start;
    const to = next < end ? next : end;
    if (to <= from || !BILLED.has(entry.status)) return;
    const plan = PlanId.safeParse(entry.plan);
    if (!plan.success) throw new ValidationError([{ field: 'plan', message: `the tenant's recorded plan "${entry.plan}" is not a plan of the catalog` }]);
    if (entry.status === 'suspended') {
      const last = suspended.at(-1);
      if (last && last.to.getTime() === from.getTime()) last.to = to;
      else suspended.push({ from, to });
    }
    const open = segments.at(-1);
    if (open && open.to.getTime() === from.getTime() && open.plan === plan.data && open.planVersion === entry.planVersion) open.to = to;
    else segments.push({ plan: plan.data, planVersion: entry.planVersion, from, to });
  });
  return { segments, suspended };
}

const HOUR_MS = 3_600_000;
const hourCeil = (at: Date) => new Date(Math.ceil(at.getTime() / HOUR_MS) * HOUR_MS);

/**
 * Which hours of [start, end) each segment's usage is read from. Rollups are hourly, so a
 * segment boundary inside an hour gives that hour to the segment in force at the hour's
 * start. Hours before the first segment (the tenant was being provisioned) go to the
 * first, hours in a gap between segments (pending deletion, then restored) to the one
 * before it: every hour of the month is billed exactly once.
 */
export function usageWindows(segments: readonly Segment[], start: Date, end: Date): Interval[] {
  return segments.map((_, i) => ({
    from: i === 0 ? start : hourCeil(segments[i]!.from),
    to: i === segments.length - 1 ? end : hourCeil(segments[i + 1]!.from),
  }));
}
