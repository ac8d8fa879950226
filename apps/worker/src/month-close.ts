import { type Db, latestClosedMonth } from '@tenantry/db';
import type { CloseMonthResult } from '@tenantry/domain';
import { type InvoiceSettings, closeMonth, latestClosableMonth, monthBounds, monthOf } from '@tenantry/invoices';

/** Months caught up in one pass at most: a worker down for longer leaves the rest to the next pass. */
const MAX_MONTHS_PER_PASS = 12;

export const WORKER_ACTOR = 'system:worker';

/** The month after `month`. */
const nextMonth = (month: string) => monthOf(monthBounds(month).end);

/**
 * The months a scheduled pass closes at `now`: every month whose grace period is over and
 * that comes after the latest month closed so far — so a worker that was down over a month
 * boundary catches up — or, on an installation that has never closed one, only the latest
 * such month (months before the first close are closed on demand, POST /v1/billing/close).
 */
export async function dueMonths(db: Db, now: Date, graceHours: number): Promise<string[]> {
  const latest = latestClosableMonth(now, graceHours);
  const closed = await latestClosedMonth(db);
  if (closed === null) return [latest];
  const months: string[] = [];
  for (let month = nextMonth(closed); month <= latest && months.length < MAX_MONTHS_PER_PASS; month = nextMonth(month)) months.push(month);
  // The latest closed month again, cheaply: a tenant whose invoice failed there gets another try.
  return closed <= latest ? [closed, ...months] : months;
}

/** One scheduled pass: close every due month, oldest first. */
export async function closeDueMonths(
  db: Db,
  now: Date,
  settings: InvoiceSettings,
  announce: (deliveryIds: string[]) => Promise<void>,
): Promise<CloseMonthResult[]> {
  const results: CloseMonthResult[] = [];
  for (const month of await dueMonths(db, now, settings.graceHours)) {
    results.push(await closeMonth(db, month, { now, force: false, actor: WORKER_ACTOR, settings, announce }));
  }
  return results;
}

