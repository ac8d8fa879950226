import type { WorkerInstance } from '@tenantry/worker';
import { sql } from 'kysely';
import { beforeAll, describe, expect, it } from 'vitest';
import { startWorker } from './support/apps.js';
import { useStack } from './support/stack.js';

/**
 * Gapless numbering under concurrent closes: two real workers, 500 tenants billed in the
 * same months, closes of the same month and of different months at once. Every invoice
 * number of a year is used exactly once, in order, and each tenant gets one invoice per
 * month whoever closed it.
 */
const TENANTS = 500;
const QUIET = { HEALTH_PROBE_INTERVAL_MS: '3600000', BILLING_CLOSE_INTERVAL_MS: '3600000', USAGE_SAMPLE_INTERVAL_MS: '3600000' };
const stack = useStack({ workerEnv: QUIET });
let workers: [WorkerInstance, WorkerInstance];

/** 13 h after the month's end: its grace period is over. */
const after = (month: string) => {
  const [y, m] = month.split('-').map(Number) as [number, number];
  return new Date(Date.UTC(y, m, 1, 13));
};

beforeAll(async () => {
  const second = await startWorker({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix, ...QUIET });
  workers = [stack.worker!, second];
  // 500 tenants, on pro from 1 January 2025 to 1 April 2025 (their storage plays no part here).
  await sql`
    insert into tenants (id, slug, name, status, plan, isolation)
    select gen_random_uuid(), 'gapless-' || i, 'Gapless ' || i, 'active', 'pro', 'schema' from generate_series(1, ${TENANTS}) as i`.execute(stack.database.db);
  await sql`delete from tenant_billing_history h using tenants t where t.id = h.tenant_id and t.slug like 'gapless-%'`.execute(stack.database.db);
  await sql`
    insert into tenant_billing_history (tenant_id, at, status, plan, plan_version)
    select t.id, x.at, x.status, 'pro', 1
    from tenants t cross join (values ('2025-01-01T00:00:00Z'::timestamptz, 'active'), ('2025-04-01T00:00:00Z'::timestamptz, 'deleted')) as x(at, status)
    where t.slug like 'gapless-%'`.execute(stack.database.db);
  return () => second.close();
}, 60_000);

async function numbered(year: number) {
  const rows = await stack.database.db
    .selectFrom('invoices')
    .innerJoin('tenants', 'tenants.id', 'invoices.tenant_id')
    .select(['invoices.number', 'invoices.month', 'invoices.tenant_id', 'tenants.seq'])
    .where('invoices.number', 'like', `INV-${year}-%`)
    .orderBy('invoices.number')
    .execute();
  return rows.map((r) => ({ n: Number(r.number.slice(-6)), month: r.month, tenantId: r.tenant_id, seq: Number(r.seq) }));
}

describe('gapless numbering: 2 workers × 500 tenants', () => {
  it('two workers closing the same month at once: 500 invoices, numbered 1…500 in tenant order, once each', { timeout: 300_000 }, async () => {
    const [a, b] = await Promise.all(workers.map((w) => w.closeMonth('2025-01', after('2025-01'))));
    expect(a!.created + b!.created).toBe(TENANTS);
    expect([a!.invoices, b!.invoices]).toEqual([TENANTS, TENANTS]);
    expect([...a!.failed, ...b!.failed]).toEqual([]);

    const invoices = await numbered(2025);
    expect(invoices.map((i) => i.n)).toEqual(Array.from({ length: TENANTS }, (_, i) => i + 1));
    expect(new Set(invoices.map((i) => i.tenantId)).size).toBe(TENANTS);
    // Numbered in the order the tenants were created, whichever worker did it.
    expect(invoices.map((i) => i.seq)).toEqual([...invoices.map((i) => i.seq)].sort((x, y) => x - y));
  });

  it('four closers of two months at once, on two workers: 1,000 more numbers, none skipped or used twice', { timeout: 300_000 }, async () => {
    const [a, b] = workers;
    const results = await Promise.all([
      a.closeMonth('2025-02', after('2025-02')),
      b.closeMonth('2025-03', after('2025-03')),
      a.closeMonth('2025-03', after('2025-03')),
      b.closeMonth('2025-02', after('2025-02')),
    ]);
    expect(results.reduce((n, r) => n + r.created, 0)).toBe(2 * TENANTS);
    const invoices = await numbered(2025);
    expect(invoices.map((i) => i.n)).toEqual(Array.from({ length: 3 * TENANTS }, (_, i) => i + 1));
    for (const month of ['2025-01', '2025-02', '2025-03']) {
      const ofMonth = invoices.filter((i) => i.month === month);
      expect(ofMonth, month).toHaveLength(TENANTS);
      expect(new Set(ofMonth.map((i) => i.tenantId)).size, month).toBe(TENANTS);
    }
    // The counter stands exactly at the last number used.
    const counter = await stack.database.db.selectFrom('invoice_counters').select('last_number').where('year', '=', 2025).executeTakeFirstOrThrow();
    expect(Number(counter.last_number)).toBe(3 * TENANTS);
    // Each invoice was announced once (the outbox row commits with it).
    const events = await sql<{ n: number }>`select count(*)::int as n from webhook_events where type = 'invoice.finalized'`.execute(stack.database.db);
    expect(events.rows[0]!.n).toBe(3 * TENANTS);
  });

  it('a close that fails for one tenant takes no number for it; the others are numbered on without a gap', { timeout: 120_000 }, async () => {
    // One tenant on a price book version that was never published: its invoice cannot be computed.
    const [broken] = (await sql<{ id: string }>`select id from tenants where slug = 'gapless-7'`.execute(stack.database.db)).rows;
    await sql`update tenant_billing_history set plan_version = 99 where tenant_id = ${broken!.id}`.execute(stack.database.db);
    // April 2025: bill them a last time (they were deleted on 1 April; move that to mid-April).
    await sql`update tenant_billing_history h set at = '2025-04-15T00:00:00Z' from tenants t where t.id = h.tenant_id and t.slug like 'gapless-%' and h.status = 'deleted'`.execute(stack.database.db);
    const result = await workers[1].closeMonth('2025-04', after('2025-04'));
    expect(result.created).toBe(TENANTS - 1);
    expect(result.failed).toEqual([{ tenantId: expect.stringMatching(/^ten_/), message: expect.stringContaining('no price book version 99') }]);
    const invoices = await numbered(2025);
    expect(invoices.map((i) => i.n)).toEqual(Array.from({ length: 4 * TENANTS - 1 }, (_, i) => i + 1));
  });
});

describe('the schedule', () => {
  const monthAfter = (month: string, n = 1) => {
    const [y, m] = month.split('-').map(Number) as [number, number];
    return new Date(Date.UTC(y, m - 1 + n, 1)).toISOString().slice(0, 7);
  };
  const closedMonths = async () => (await stack.database.db.selectFrom('billing_closes').select('month').orderBy('month').execute()).map((r) => r.month);

  it('closes each month once its grace period is over, and catches up every month it missed', async () => {
    // Where the installation stands now: the workers' first pass closed the latest month
    // whose grace is over (a pass now settles it, should that first one still be running).
    await workers[0].closeDueMonths(new Date());
    const latest = (await closedMonths()).at(-1)!;
    const next = monthAfter(latest);
    // 11 h after the next month's end: its 12 h of grace are not over. Nothing new is closed.
    await workers[0].closeDueMonths(new Date(Date.parse(`${monthAfter(next)}-01T00:00:00Z`) + 11 * 3_600_000));
    expect((await closedMonths()).at(-1)).toBe(latest);
    // 13 h after: it is closed.
    await workers[0].closeDueMonths(new Date(Date.parse(`${monthAfter(next)}-01T00:00:00Z`) + 13 * 3_600_000));
    expect((await closedMonths()).at(-1)).toBe(next);
    // A worker that was away for three months closes all three on its next pass, in order.
    const results = await workers[1].closeDueMonths(new Date(Date.parse(`${monthAfter(next, 4)}-01T00:00:00Z`) + 13 * 3_600_000));
    expect(results.map((r) => r.month)).toEqual([next, monthAfter(next), monthAfter(next, 2), monthAfter(next, 3)]);
    expect((await closedMonths()).slice(-4)).toEqual([next, monthAfter(next), monthAfter(next, 2), monthAfter(next, 3)]);
  });
});
