import { PRICE_BOOK, type PriceBookVersion, UnknownPlanVersionError, ValidationError } from '@tenantry/domain';
import { describe, expect, it } from 'vitest';
import { type InvoiceInput, type UsageTotals, ZERO_USAGE, computeInvoice, estimateInvoice, voidDocument } from './engine.js';

/*
 * Every expected number here was worked out by hand from the v1 price book:
 *   pro: base 2,500/month; 1,000,000 requests included, then 10 per started block of 10,000;
 *        50 GiB egress included, then 9/GiB; 8 GiB-month database storage, then 125;
 *        100 GiB-month file storage, then 2; a peak of 500 realtime connections, then 1 each.
 *   enterprise: base 60,000; 50,000,000 requests, then 5 per block of 10,000; 1,000 GiB
 *        egress, then 5; 500 GiB-month storage, then 100; …
 * March 2026 has 31 days: 2,678,400 seconds.
 */
const GiB = 1n << 30n;
const DAY = 86_400n;
const MARCH = 31n * DAY;
const d = (iso: string) => new Date(iso);
const issuer = { name: 'Tenantry Inc.', address: ['1 Main St', 'Springfield'] };

function usage(u: Partial<{ requests: bigint | number | string; egress: bigint | string; storage: bigint; files: bigint; peak: number }>): UsageTotals {
  return {
    apiRequests: { total: u.requests ?? 0 },
    egressBytes: { total: u.egress ?? 0 },
    storageBytes: { byteSeconds: u.storage ?? 0 },
    fileStorageBytes: { byteSeconds: u.files ?? 0 },
    realtimeConnections: { peak: u.peak ?? 0 },
  };
}

function invoice(overrides: Partial<InvoiceInput>) {
  return computeInvoice({
    month: '2026-03',
    status: 'draft',
    segments: [{ plan: 'pro', planVersion: 1, from: d('2026-03-01T00:00:00Z'), to: d('2026-04-01T00:00:00Z'), usage: ZERO_USAGE }],
    tenant: { id: 'ten_0123', name: 'Acme' },
    currency: 'USD',
    issuer,
    ...overrides,
  });
}

const amounts = (doc: ReturnType<typeof computeInvoice>) => Object.fromEntries(doc.lines.map((l) => [l.kind, l.amountMinor]));

describe('the invoice engine', () => {
  it('a golden month on pro: every line and the total, by hand', () => {
    const doc = invoice({
      segments: [
        {
          plan: 'pro',
          planVersion: 1,
          from: d('2026-03-01T00:00:00Z'),
          to: d('2026-04-01T00:00:00Z'),
          usage: usage({
            // 234,567 above the included million: 23.4567 blocks, 24 started → 240.
            requests: 1_234_567,
            // 62.5 GiB sent, 12.5 above 50: 12.5 × 9 = 112.5 → 113 (half-up).
            egress: (125n * GiB) / 2n,
            // 12.5 GiB on average all month: 12.5 GiB-month, 4.5 above 8: 4.5 × 125 = 562.5 → 563.
            storage: ((25n * GiB) / 2n) * MARCH,
            // 150 GiB of files: 50 GiB-month above 100: 50 × 2 = 100.
            files: 150n * GiB * MARCH,
            // A peak of 750: 250 above 500, 1 each.
            peak: 750,
          }),
        },
      ],
    });
    expect(amounts(doc)).toEqual({ base: 2_500, apiRequests: 240, egressBytes: 113, storageBytes: 563, fileStorageBytes: 100, realtimeConnections: 250 });
    expect(doc.subtotalMinor).toBe(3_766);
    expect(doc.totalMinor).toBe(3_766);
    expect(doc.lines.map((l) => [l.kind, l.quantity, l.unit, l.unitPriceMinor])).toEqual([
      ['base', '1.000000', 'month', 2_500],
      ['apiRequests', '24', 'block', 10],
      ['egressBytes', '12.500', 'GiB', 9],
      ['storageBytes', '4.500', 'GiB-month', 125],
      ['fileStorageBytes', '50.000', 'GiB-month', 2],
      ['realtimeConnections', '250', 'connection', 1],
    ]);
    expect(doc.lines.find((l) => l.kind === 'storageBytes')!.description).toBe(
      'Database storage: 4.500 GiB-month (time-weighted average) above 8.000 included (12.500 GiB-month used)',
    );
    expect(doc.lines[1]!.description).toBe('API requests: 1,234,567 (1,000,000 included), billed per started block of 10,000 above');
    expect(doc).toMatchObject({
      month: '2026-03',
      currency: 'USD',
      planVersion: 1,
      periodFrom: '2026-03-01T00:00:00.000Z',
      periodTo: '2026-04-01T00:00:00.000Z',
      tenantId: 'ten_0123',
      number: null,
      issuedAt: null,
    });
  });

  it('zero usage: the base fee alone, usage lines at zero', () => {
    const doc = invoice({});
    expect(amounts(doc)).toEqual({ base: 2_500, apiRequests: 0, egressBytes: 0, storageBytes: 0, fileStorageBytes: 0, realtimeConnections: 0 });
    expect(doc.totalMinor).toBe(2_500);
  });

  it('free and trial plans bill nothing: one base line at 0', () => {
    const doc = invoice({ segments: [{ plan: 'free', planVersion: 1, from: d('2026-03-01T00:00:00Z'), to: d('2026-04-01T00:00:00Z'), usage: usage({ requests: 9_000_000, peak: 40 }) }] });
    expect(doc.lines.map((l) => [l.kind, l.amountMinor])).toEqual([['base', 0]]);
    expect(doc.totalMinor).toBe(0);
  });

  it('created mid-month: base and allowances prorated by the second', () => {
    // From 16 March: 16 of 31 days. Base 2,500 × 16/31 = 1,290.32 → 1,290.
    // Included requests 1,000,000 × 16/31 = 516,129.03 → 516,129; 600,000 used: 83,871 over → 9 blocks → 90.
    const doc = invoice({ segments: [{ plan: 'pro', planVersion: 1, from: d('2026-03-16T00:00:00Z'), to: d('2026-04-01T00:00:00Z'), usage: usage({ requests: 600_000 }) }] });
    expect(doc.lines[0]).toMatchObject({ kind: 'base', quantity: '0.516129', amountMinor: 1_290, from: '2026-03-16T00:00:00.000Z' });
    expect(doc.lines[1]).toMatchObject({ kind: 'apiRequests', quantity: '9', amountMinor: 90 });
    expect(doc.lines[1]!.description).toContain('(516,129 included)');
    expect(doc.periodFrom).toBe('2026-03-16T00:00:00.000Z');
    expect(doc.totalMinor).toBe(1_380);
  });

  it('created and deleted within the month: billed for the 10 days between; storage kept all that time stays inside the prorated allowance', () => {
    // 10 days: base 2,500 × 10/31 = 806.45 → 806. 8 GiB for 10 days = 8 × 10/31 = 2.580645 → 2.581
    // GiB-month, and the allowance is 8 × 10/31 → 2.581 too: nothing above it.
    const doc = invoice({
      segments: [{ plan: 'pro', planVersion: 1, from: d('2026-03-10T12:00:00Z'), to: d('2026-03-20T12:00:00Z'), usage: usage({ storage: 8n * GiB * 10n * DAY }) }],
    });
    expect(amounts(doc)).toMatchObject({ base: 806, storageBytes: 0 });
    expect(doc.lines.find((l) => l.kind === 'storageBytes')!.description).toContain('above 2.581 included (2.581 GiB-month used)');
    expect([doc.periodFrom, doc.periodTo]).toEqual(['2026-03-10T12:00:00.000Z', '2026-03-20T12:00:00.000Z']);
    expect(doc.totalMinor).toBe(806);
  });

  it('a plan change mid-month: one prorated base line per segment, each at its plan', () => {
    // Pro for 10 days: 806 (above). Enterprise for 21 days: 60,000 × 21/31 = 40,645.16 → 40,645.
    // Pro's allowance for 10 days: 1,000,000 × 10/31 = 322,580.6 → 322,581; 400,000 used → 77,419 over → 8 blocks → 80.
    const doc = invoice({
      segments: [
        { plan: 'pro', planVersion: 1, from: d('2026-03-01T00:00:00Z'), to: d('2026-03-11T00:00:00Z'), usage: usage({ requests: 400_000 }) },
        { plan: 'enterprise', planVersion: 1, from: d('2026-03-11T00:00:00Z'), to: d('2026-04-01T00:00:00Z'), usage: usage({ requests: 400_000 }) },
      ],
    });
    const base = doc.lines.filter((l) => l.kind === 'base');
    expect(base.map((l) => [l.plan, l.amountMinor, l.quantity])).toEqual([
      ['pro', 806, '0.322581'],
      ['enterprise', 40_645, '0.677419'],
    ]);
    expect(doc.lines.filter((l) => l.kind === 'apiRequests').map((l) => [l.plan, l.amountMinor])).toEqual([
      ['pro', 80],
      ['enterprise', 0],
    ]);
    expect(doc.totalMinor).toBe(806 + 80 + 40_645);
  });

  it('included quantities exactly at the boundary bill nothing; one unit over bills one unit', () => {
    const at = invoice({ segments: [{ plan: 'pro', planVersion: 1, from: d('2026-03-01T00:00:00Z'), to: d('2026-04-01T00:00:00Z'), usage: usage({ requests: 1_000_000, egress: 50n * GiB, storage: 8n * GiB * MARCH, peak: 500 }) }] });
    expect(at.totalMinor).toBe(2_500);
    const over = invoice({
      segments: [
        {
          plan: 'pro',
          planVersion: 1,
          from: d('2026-03-01T00:00:00Z'),
          to: d('2026-04-01T00:00:00Z'),
          // One request over: a started block (10). One GiB over: 9. One GiB-month over: 125. One connection over: 1.
          usage: usage({ requests: 1_000_001, egress: 51n * GiB, storage: 9n * GiB * MARCH, peak: 501 }),
        },
      ],
    });
    expect(amounts(over)).toMatchObject({ apiRequests: 10, egressBytes: 9, storageBytes: 125, realtimeConnections: 1 });
    // Just under half a thousandth of a GiB (536,870 bytes) rounds down to 0.000 GiB; one byte
    // more rounds up to 0.001 GiB (half-up), whose 0.009 rounds to 0.
    const tiny = (extra: bigint) =>
      invoice({ segments: [{ plan: 'pro', planVersion: 1, from: d('2026-03-01T00:00:00Z'), to: d('2026-04-01T00:00:00Z'), usage: usage({ egress: 50n * GiB + extra }) }] }).lines.find(
        (l) => l.kind === 'egressBytes',
      );
    expect(tiny(536_870n)).toMatchObject({ quantity: '0.000', amountMinor: 0 });
    expect(tiny(536_871n)).toMatchObject({ quantity: '0.001', amountMinor: 0 });
  });

  it('large numbers stay exact (beyond 2^53)', () => {
    const doc = invoice({
      segments: [
        {
          plan: 'enterprise',
          planVersion: 1,
          from: d('2026-03-01T00:00:00Z'),
          to: d('2026-04-01T00:00:00Z'),
          usage: usage({
            // 2^53 + 1 requests: a float would say …992.
            requests: '9007199254740993',
            // 8 PiB (2^53 bytes) sent = 8,388,608 GiB; 8,387,608 above 1,000 × 5 = 41,938,040.
            egress: '9007199254740992',
            // 1 PiB + 1 GiB on average all month: 1,048,577 GiB-month (≈3e21 byte-seconds); 1,048,077 above 500 × 100.
            storage: ((1n << 50n) + GiB) * MARCH,
          }),
        },
      ],
    });
    const requests = doc.lines.find((l) => l.kind === 'apiRequests')!;
    expect(requests.description).toContain('9,007,199,254,740,993');
    // (9,007,199,254,740,993 − 50,000,000) / 10,000 = 900,719,920,474.0993 → 900,719,920,475 blocks × 5.
    expect([requests.quantity, requests.amountMinor]).toEqual(['900719920475', 4_503_599_602_375]);
    expect(amounts(doc)).toMatchObject({ egressBytes: 41_938_040, storageBytes: 104_807_700 });
    expect(doc.totalMinor).toBe(60_000 + 4_503_599_602_375 + 41_938_040 + 104_807_700);
  });

  it('suspended time: charged on a plan that reserves resources, left out on a plan that waives it', () => {
    const suspended = [
      { from: d('2026-03-05T00:00:00Z'), to: d('2026-03-07T00:00:00Z') },
      // Overlapping intervals count once: 5–8 March, 3 days.
      { from: d('2026-03-06T00:00:00Z'), to: d('2026-03-08T00:00:00Z') },
    ];
    expect(invoice({ suspended }).lines[0]!.amountMinor).toBe(2_500);

    const waiving: PriceBookVersion[] = [{ ...PRICE_BOOK[0]!, plans: { ...PRICE_BOOK[0]!.plans, pro: { ...PRICE_BOOK[0]!.plans.pro, baseFeeWhileSuspended: 'waive' } } }];
    const doc = invoice({ suspended, priceBook: waiving });
    // 28 of 31 days: 2,500 × 28/31 = 2,258.06 → 2,258.
    expect(doc.lines[0]).toMatchObject({ amountMinor: 2_258, quantity: '0.903226' });
    expect(doc.lines[0]!.description).toContain('3.0 suspended days not charged');
  });

  it('a draft so far stops at `until`', () => {
    const doc = invoice({ until: d('2026-03-11T00:00:00Z') });
    expect(doc.lines[0]!.amountMinor).toBe(806);
    expect(doc.periodTo).toBe('2026-03-11T00:00:00.000Z');
  });

  it("a draft keeps the running segment's whole allowance: its usage lines are what the final invoice says for the same usage", () => {
    // 600,000 requests by 11 March. The month's allowance is 1,000,000: nothing over, in the
    // draft as in the final. (Prorating it to the 10 days so far would say 322,581
    // included and bill 28 blocks the final invoice would not.)
    const segments = [{ plan: 'pro' as const, planVersion: 1, from: d('2026-03-01T00:00:00Z'), to: d('2026-04-01T00:00:00Z'), usage: usage({ requests: 600_000, egress: 60n * GiB }) }];
    const draft = invoice({ segments, until: d('2026-03-11T00:00:00Z') });
    const final = invoice({ segments, status: 'finalized' });
    const usageLines = (doc: ReturnType<typeof computeInvoice>) => doc.lines.filter((l) => l.kind !== 'base').map(({ from: _f, to: _t, ...l }) => l);
    expect(usageLines(draft)).toEqual(usageLines(final));
    expect(draft.lines.find((l) => l.kind === 'apiRequests')).toMatchObject({ quantity: '0', amountMinor: 0 });
    // 10 GiB over 50: 90.
    expect(draft.lines.find((l) => l.kind === 'egressBytes')).toMatchObject({ quantity: '10.000', amountMinor: 90 });
  });

  it('an invoice records the catalog version it used; a version that does not exist is a clear error', () => {
    expect(invoice({}).planVersion).toBe(1);
    const unknown = () => invoice({ segments: [{ plan: 'pro', planVersion: 7, from: d('2026-03-01T00:00:00Z'), to: d('2026-04-01T00:00:00Z'), usage: ZERO_USAGE }] });
    expect(unknown).toThrow(UnknownPlanVersionError);
    expect(unknown).toThrow(/no price book version 7 exists/);
  });

  it('refuses segments out of order, overlapping, empty, or outside the month', () => {
    const seg = (from: string, to: string) => ({ plan: 'pro' as const, planVersion: 1, from: d(from), to: d(to), usage: ZERO_USAGE });
    expect(() => invoice({ segments: [seg('2026-03-10T00:00:00Z', '2026-03-20T00:00:00Z'), seg('2026-03-15T00:00:00Z', '2026-03-25T00:00:00Z')] })).toThrow(ValidationError);
    expect(() => invoice({ segments: [seg('2026-03-10T00:00:00Z', '2026-03-10T00:00:00Z')] })).toThrow(ValidationError);
    expect(() => invoice({ segments: [seg('2026-05-01T00:00:00Z', '2026-05-10T00:00:00Z')] })).toThrow(/no plan segment falls in 2026-03/);
    expect(() => invoice({ segments: [] })).toThrow(ValidationError);
    expect(() => invoice({ month: '2026-13' })).toThrow(ValidationError);
  });

  it('segments reaching outside the month are cut at its edges', () => {
    // On free since February, pro from 20 February to 11 March, enterprise after: March sees pro for 10 days, then enterprise.
    const doc = invoice({
      segments: [
        { plan: 'free', planVersion: 1, from: d('2026-02-01T00:00:00Z'), to: d('2026-02-20T00:00:00Z'), usage: ZERO_USAGE },
        { plan: 'pro', planVersion: 1, from: d('2026-02-20T00:00:00Z'), to: d('2026-03-11T00:00:00Z'), usage: ZERO_USAGE },
        { plan: 'enterprise', planVersion: 1, from: d('2026-03-11T00:00:00Z'), to: d('2026-05-01T00:00:00Z'), usage: ZERO_USAGE },
      ],
    });
    expect(doc.lines.filter((l) => l.kind === 'base').map((l) => [l.plan, l.amountMinor, l.from, l.to])).toEqual([
      ['pro', 806, '2026-03-01T00:00:00.000Z', '2026-03-11T00:00:00.000Z'],
      ['enterprise', 40_645, '2026-03-11T00:00:00.000Z', '2026-04-01T00:00:00.000Z'],
    ]);
  });

  it('February is 28 days: a full month is still exactly the base fee, and a day is 1/28 of it', () => {
    const seg = { plan: 'pro' as const, planVersion: 1, usage: ZERO_USAGE };
    expect(invoice({ month: '2026-02', segments: [{ ...seg, from: d('2026-02-01T00:00:00Z'), to: d('2026-03-01T00:00:00Z') }] }).totalMinor).toBe(2_500);
    // 2,500 / 28 = 89.29 → 89.
    expect(invoice({ month: '2026-02', segments: [{ ...seg, from: d('2026-02-01T00:00:00Z'), to: d('2026-02-02T00:00:00Z') }] }).totalMinor).toBe(89);
  });
});

describe('the pricing calculator', () => {
  it('a full month on the current catalog version, storage given as average bytes', () => {
    const doc = estimateInvoice({
      plan: 'pro',
      usage: { apiRequests: 1_234_567, egressBytes: 62.5 * 2 ** 30, storageBytes: 12.5 * 2 ** 30, fileStorageBytes: 150 * 2 ** 30, realtimeConnections: 750 },
      now: d('2026-06-15T10:00:00Z'),
      currency: 'EUR',
      issuer,
    });
    // The golden month's numbers, whatever the month's length.
    expect(amounts(doc)).toEqual({ base: 2_500, apiRequests: 240, egressBytes: 113, storageBytes: 563, fileStorageBytes: 100, realtimeConnections: 250 });
    expect(doc).toMatchObject({ status: 'estimate', month: '2026-06', currency: 'EUR', planVersion: 1, tenantId: null, totalMinor: 3_766 });
  });
});

describe('SLA credits (defined now, applied by the month close)', () => {
  it('pro: 99.9 % target, the largest tier that applies wins; free is best effort', async () => {
    const { slaCreditPercent } = await import('@tenantry/domain');
    const pro = PRICE_BOOK[0]!.plans.pro.sla;
    expect([999_000, 998_999, 990_000, 989_999, 950_000, 949_999, 1_000_000].map((ppm) => slaCreditPercent(pro, ppm))).toEqual([0, 10, 10, 25, 25, 100, 0]);
    expect(slaCreditPercent(PRICE_BOOK[0]!.plans.free.sla, 0)).toBe(0);
  });
});

describe('SLA credits on invoices', () => {
  const sla = (probes: number, up: number, segments?: InvoiceInput['segments']) => invoice({ availability: { probes, up }, ...(segments ? { segments } : {}) });

  it('98.5 % on pro: below 99 %, a 25 % credit of the charges as a negative line', () => {
    // 985 of 1,000 probes. Charges 2,500 (base alone); 25 % of it: 625.
    const doc = sla(1_000, 985);
    const credit = doc.lines.at(-1)!;
    expect(credit).toMatchObject({ kind: 'slaCredit', quantity: '25', unit: 'percent', unitPriceMinor: -2_500, amountMinor: -625, plan: 'pro' });
    expect(credit.description).toBe("Service credit: availability 98.500 % in 2026-03 is below the 99.9 % SLA; 25 % of this plan's charges");
    expect(doc.subtotalMinor).toBe(1_875);
    expect(doc.totalMinor).toBe(1_875);
  });

  it('exactly at the 99.9 % target: no credit; one probe less: 10 %', () => {
    expect(sla(1_000, 999).lines.some((l) => l.kind === 'slaCredit')).toBe(false);
    // 998/1,000 = 99.8 %: 10 % of 2,500 = 250.
    expect(sla(1_000, 998).lines.at(-1)).toMatchObject({ kind: 'slaCredit', quantity: '10', amountMinor: -250 });
    // 2/3 = 66.666…%: below 95 %, the whole month's charges back.
    expect(sla(3, 2).totalMinor).toBe(0);
  });

  it('no probe in the month, or a best-effort plan: no credit', () => {
    expect(sla(0, 0).lines.some((l) => l.kind === 'slaCredit')).toBe(false);
    const free = [{ plan: 'free' as const, planVersion: 1, from: d('2026-03-01T00:00:00Z'), to: d('2026-04-01T00:00:00Z'), usage: ZERO_USAGE }];
    expect(sla(100, 10, free).lines.map((l) => l.kind)).toEqual(['base']);
  });

  it('the credit is of each segment\'s own charges, rounded half-up; usage lines count', () => {
    // Pro for 10 days (806) and 600,000 requests, 277,419 over its 322,581 (28 blocks: 280);
    // enterprise for 21 days (40,645). 99.5 %: 10 % of each: 108.6 → 109 and 4,064.5 → 4,065.
    const doc = sla(1_000, 995, [
      { plan: 'pro', planVersion: 1, from: d('2026-03-01T00:00:00Z'), to: d('2026-03-11T00:00:00Z'), usage: usage({ requests: 600_000 }) },
      { plan: 'enterprise', planVersion: 1, from: d('2026-03-11T00:00:00Z'), to: d('2026-04-01T00:00:00Z'), usage: ZERO_USAGE },
    ]);
    expect(doc.lines.filter((l) => l.kind === 'slaCredit').map((l) => [l.plan, l.unitPriceMinor, l.amountMinor])).toEqual([
      ['pro', -1_086, -109],
      ['enterprise', -40_645, -4_065],
    ]);
    expect(doc.totalMinor).toBe(1_086 - 109 + 40_645 - 4_065);
  });
});

describe('voids', () => {
  it('a void negates every line and the totals of the invoice it cancels, and names it', () => {
    const original = { ...invoice({ availability: { probes: 1_000, up: 985 } }), status: 'finalized' as const, number: 'INV-2026-000007', issuedAt: '2026-04-01T12:00:00.000Z' };
    const voided = voidDocument(original, 'INV-2026-000042', d('2026-04-20T09:00:00Z'));
    expect(voided).toMatchObject({ number: 'INV-2026-000042', status: 'void', voids: 'INV-2026-000007', issuedAt: '2026-04-20T09:00:00.000Z', totalMinor: -1_875 });
    expect(voided.lines.map((l) => l.amountMinor)).toEqual(original.lines.map((l) => (l.amountMinor === 0 ? 0 : -l.amountMinor)));
    expect(voided.lines.map((l) => l.amountMinor).reduce((a, b) => a + b, 0)).toBe(-original.totalMinor);
    // No negative zero sneaks into the JSON.
    expect(voided.lines.every((l) => !Object.is(l.amountMinor, -0) && !Object.is(l.unitPriceMinor, -0))).toBe(true);
  });
});
