import {
  BYTES_PER_GIB,
  CURRENT_PLAN_VERSION,
  type InvoiceDocument,
  type InvoiceLine,
  type InvoiceStatus,
  type PlanId,
  type PlanPrice,
  PRICE_BOOK,
  type PriceBookVersion,
  ValidationError,
  planPrice,
  slaCreditPercent,
} from '@tenantry/domain';
import { divCeil, divHalfUp, fixed, grouped, max0, toBigInt, toSafeNumber } from './exact.js';

/**
 * The invoice engine: one pure function from (period, plan segments, suspensions, usage)
 * to the canonical invoice document. The month close, the live draft and the pricing
 * calculator all call it, so they cannot disagree.
 *
 * Rules (docs/billing.md has them with worked numbers):
 * - Months are UTC calendar months. Time is counted in whole seconds.
 * - Base fee: per plan segment, base × billed seconds / seconds in the month, rounded
 *   half-up. A plan change mid-month gives one base line per segment, each at its own
 *   plan and catalog version. A tenant created or deleted in the month is billed from
 *   creation or until deletion only (its segments say so).
 * - Suspended time: the plan's `baseFeeWhileSuspended` — `charge` bills it like any other
 *   time (the plan's resources stay reserved); `waive` leaves it out of the base fee.
 *   Usage lines are always as measured.
 * - Included quantities are prorated by the segment's share of the month (not by the
 *   billed share: a suspension does not shrink the allowance), rounded half-up to the
 *   quantity's precision; the included peak of realtime connections is not prorated (a
 *   peak is not a sum over time).
 *   A draft "so far" keeps the allowance of the segment in force for the rest of the
 *   month (it is expected to run on): an allowance is monthly, so on the 10th a tenant has
 *   not used up its month's requests by making a third of them, and the draft's usage
 *   lines are what the final invoice will say for the same usage.
 * - Quantities in GiB and GiB-months are rounded half-up to 3 decimals first, and a
 *   line's amount is that quantity × unit price, rounded half-up once, per line. Anyone
 *   can recompute a line from what it shows. API requests are billed per started block.
 * - Availability below a plan's SLA earns the credit its tier says, as a negative line
 *   after each segment it applies to: that percentage of the segment's charges, rounded
 *   half-up (away from zero). Availability is the month's probe success ratio; a month
 *   without a probe earns no credit (nothing was measured).
 */

/** What the usage API reports for a stretch of time, in the form billing needs. */
export interface UsageTotals {
  apiRequests: { total: bigint | number | string };
  egressBytes: { total: bigint | number | string };
  /** ∫ bytes dt over the segment, in byte-seconds (GiB-months = byteSeconds / (2^30 × seconds in the month)). */
  storageBytes: { byteSeconds: bigint | number | string };
  fileStorageBytes: { byteSeconds: bigint | number | string };
  realtimeConnections: { peak: number };
}

export interface PlanSegment {
  plan: PlanId;
  planVersion: number;
  from: Date;
  to: Date;
  /** Usage measured while this segment was in force. */
  usage: UsageTotals;
}

export interface Interval {
  from: Date;
  to: Date;
}

/** Health probes of the tenant's store in the month, and how many succeeded. */
export interface Availability {
  probes: bigint | number | string;
  up: bigint | number | string;
}

export interface InvoiceInput {
  month: string;
  status: InvoiceStatus;
  /** A draft "so far": the period stops here (default: the end of the month). */
  until?: Date;
  segments: readonly PlanSegment[];
  suspended?: readonly Interval[];
  tenant: { id: string | null; name: string | null };
  currency: string;
  issuer: { name: string; address: readonly string[] };
  number?: string | null;
  issuedAt?: Date | null;
  voids?: string | null;
  replaces?: string | null;
  /** The month's measured availability, for SLA credits; absent or no probes: no credit. */
  availability?: Availability | null;
  priceBook?: readonly PriceBookVersion[];
}

export const ZERO_USAGE: UsageTotals = {
  apiRequests: { total: 0 },
  egressBytes: { total: 0 },
  storageBytes: { byteSeconds: 0 },
  fileStorageBytes: { byteSeconds: 0 },
  realtimeConnections: { peak: 0 },
};

const PLAN_NAMES: Record<PlanId, string> = { trial: 'Trial', free: 'Free', pro: 'Pro', enterprise: 'Enterprise' };

/** [start, end) of a UTC calendar month "YYYY-MM". */
export function monthBounds(month: string): { start: Date; end: Date } {
  const match = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(month);
  if (!match) throw new ValidationError([{ field: 'month', message: 'must be a month as YYYY-MM' }]);
  const year = Number(match[1]);
  const index = Number(match[2]) - 1;
  return { start: new Date(Date.UTC(year, index, 1)), end: new Date(Date.UTC(year, index + 1, 1)) };
}

/** The UTC month a moment falls in. */
export function monthOf(at: Date): string {
  return at.toISOString().slice(0, 7);
}

const seconds = (d: Date): bigint => BigInt(Math.floor(d.getTime() / 1000));
const at = (s: bigint): Date => new Date(Number(s) * 1000);

/** "2026-03-16 00:00" */
const stamp = (s: bigint): string => at(s).toISOString().slice(0, 16).replace('T', ' ');

/** Seconds of [a, b) that lie inside any of `intervals` (which may overlap each other). */
function overlapSeconds(a: bigint, b: bigint, intervals: readonly Interval[]): bigint {
  const clipped = intervals
    .map((i) => [seconds(i.from) > a ? seconds(i.from) : a, seconds(i.to) < b ? seconds(i.to) : b] as const)
    .filter(([from, to]) => to > from)
    .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  let total = 0n;
  let reached = a;
  for (const [from, to] of clipped) {
    const start = from > reached ? from : reached;
    if (to > start) {
      total += to - start;
      reached = to;
    }
  }
  return total;
}

interface LineContext {
  plan: PlanId;
  planVersion: number;
  from: bigint;
  to: bigint;
}

function line(ctx: LineContext, fields: Pick<InvoiceLine, 'kind' | 'description' | 'quantity' | 'unit'> & { unitPriceMinor: bigint | number; amountMinor: bigint }): InvoiceLine {
  return {
    ...fields,
    unitPriceMinor: Number(fields.unitPriceMinor),
    amountMinor: toSafeNumber(fields.amountMinor, 'a line amount'),
    plan: ctx.plan,
    planVersion: ctx.planVersion,
    from: at(ctx.from).toISOString(),
    to: at(ctx.to).toISOString(),
  };
}

/** milli-GiB of `bytes`, half-up. */
const milliGiB = (bytes: bigint): bigint => divHalfUp(bytes * 1000n, BYTES_PER_GIB);

function segmentLines(ctx: LineContext, price: PlanPrice, usage: UsageTotals, monthSeconds: bigint, suspendedSeconds: bigint, allowanceSpan: bigint): InvoiceLine[] {
  const span = ctx.to - ctx.from;
  const planName = `${PLAN_NAMES[ctx.plan]} plan`;
  const lines: InvoiceLine[] = [];

  const waived = price.baseFeeWhileSuspended === 'waive' ? suspendedSeconds : 0n;
  const billed = span - waived;
  const period = `${stamp(ctx.from)} – ${stamp(ctx.to)} UTC`;
  const waivedNote = waived > 0n ? `, ${fixed(divHalfUp(waived * 10n, 86_400n), 1)} suspended days not charged` : '';
  lines.push(
    line(ctx, {
      kind: 'base',
      description: `${planName} (price book v${ctx.planVersion}), ${period}${waivedNote}`,
      quantity: fixed(divHalfUp(billed * 1_000_000n, monthSeconds), 6),
      unit: 'month',
      unitPriceMinor: price.baseMonthlyMinor,
      amountMinor: divHalfUp(BigInt(price.baseMonthlyMinor) * billed, monthSeconds),
    }),
  );

  const prorate = (included: bigint): bigint => divHalfUp(included * allowanceSpan, monthSeconds);

  const requests = price.apiRequests;
  if (requests.blockPriceMinor > 0) {
    const total = toBigInt(usage.apiRequests.total, 'apiRequests.total');
    const included = prorate(BigInt(requests.included));
    const blocks = divCeil(max0(total - included), BigInt(requests.blockSize));
    lines.push(
      line(ctx, {
        kind: 'apiRequests',
        description: `API requests: ${grouped(total)} (${grouped(included)} included), billed per started block of ${grouped(requests.blockSize)} above`,
        quantity: blocks.toString(),
        unit: 'block',
        unitPriceMinor: requests.blockPriceMinor,
        amountMinor: blocks * BigInt(requests.blockPriceMinor),
      }),
    );
  }

  const egress = price.egressBytes;
  if (egress.perGiBMinor > 0) {
    const used = milliGiB(toBigInt(usage.egressBytes.total, 'egressBytes.total'));
    const included = prorate(BigInt(egress.includedGiB) * 1000n);
    const over = max0(used - included);
    lines.push(
      line(ctx, {
        kind: 'egressBytes',
        description: `Egress: ${fixed(over, 3)} GiB above ${fixed(included, 3)} included (${fixed(used, 3)} GiB sent)`,
        quantity: fixed(over, 3),
        unit: 'GiB',
        unitPriceMinor: egress.perGiBMinor,
        amountMinor: divHalfUp(over * BigInt(egress.perGiBMinor), 1000n),
      }),
    );
  }

  for (const [kind, label] of [
    ['storageBytes', 'Database storage'],
    ['fileStorageBytes', 'File storage'],
  ] as const) {
    const storage = price[kind];
    if (storage.perGiBMonthMinor <= 0) continue;
    const byteSeconds = toBigInt(usage[kind].byteSeconds, `${kind}.byteSeconds`);
    const used = divHalfUp(byteSeconds * 1000n, BYTES_PER_GIB * monthSeconds);
    const included = prorate(BigInt(storage.includedGiBMonths) * 1000n);
    const over = max0(used - included);
    lines.push(
      line(ctx, {
        kind,
        description: `${label}: ${fixed(over, 3)} GiB-month (time-weighted average) above ${fixed(included, 3)} included (${fixed(used, 3)} GiB-month used)`,
        quantity: fixed(over, 3),
        unit: 'GiB-month',
        unitPriceMinor: storage.perGiBMonthMinor,
        amountMinor: divHalfUp(over * BigInt(storage.perGiBMonthMinor), 1000n),
      }),
    );
  }

  const realtime = price.realtimeConnections;
  if (realtime.perConnectionMinor > 0) {
    const peak = toBigInt(usage.realtimeConnections.peak, 'realtimeConnections.peak');
    const over = max0(peak - BigInt(realtime.includedPeak));
    lines.push(
      line(ctx, {
        kind: 'realtimeConnections',
        description: `Realtime connections: peak ${grouped(peak)} concurrent, ${grouped(realtime.includedPeak)} included`,
        quantity: over.toString(),
        unit: 'connection',
        unitPriceMinor: realtime.perConnectionMinor,
        amountMinor: over * BigInt(realtime.perConnectionMinor),
      }),
    );
  }
  return lines;
}

/** Availability in parts per million, rounded down: below a tier in ppm exactly when the exact ratio is. */
function availabilityPpm(availability: Availability): bigint | null {
  const probes = toBigInt(availability.probes, 'availability.probes');
  const up = toBigInt(availability.up, 'availability.up');
  if (up > probes) throw new RangeError('availability.up must not exceed availability.probes');
  return probes === 0n ? null : (up * 1_000_000n) / probes;
}

/** The service credit a segment's charges earn under its plan's SLA, or null. */
function slaCreditLine(ctx: LineContext, price: PlanPrice, ppm: bigint, charges: bigint, month: string): InvoiceLine | null {
  if (price.sla.kind !== 'uptime' || charges <= 0n) return null;
  const percent = slaCreditPercent(price.sla, Number(ppm));
  if (percent === 0) return null;
  return line(ctx, {
    kind: 'slaCredit',
    description: `Service credit: availability ${fixed(ppm / 10n, 3)} % in ${month} is below the ${price.sla.targetPercent} % SLA; ${percent} % of this plan's charges`,
    quantity: String(percent),
    unit: 'percent',
    // Per 100 %: the amount is quantity / 100 × this, so the line can be recomputed from what it shows.
    unitPriceMinor: -charges,
    amountMinor: -divHalfUp(charges * BigInt(percent), 100n),
  });
}

/** Compute an invoice. Throws ValidationError on segments that do not make sense, or an unknown catalog version. */
export function computeInvoice(input: InvoiceInput): InvoiceDocument {
  const { start, end } = monthBounds(input.month);
  const monthStart = seconds(start);
  const monthEnd = seconds(end);
  const monthSeconds = monthEnd - monthStart;
  const until = input.until ? seconds(input.until) : monthEnd;
  const periodEnd = until < monthEnd ? until : monthEnd;
  if (input.segments.length === 0) throw new ValidationError([{ field: 'segments', message: 'an invoice needs at least one plan segment' }]);

  const clipped = input.segments.map((segment, i) => {
    const from = seconds(segment.from) > monthStart ? seconds(segment.from) : monthStart;
    const to = seconds(segment.to) < periodEnd ? seconds(segment.to) : periodEnd;
    // The allowance runs to the segment's end in the month, even past a draft's `until`.
    const allowanceTo = seconds(segment.to) < monthEnd ? seconds(segment.to) : monthEnd;
    if (seconds(segment.to) <= seconds(segment.from)) {
      throw new ValidationError([{ field: `segments.${i}`, message: 'must end after it starts' }]);
    }
    return { segment, from, to, allowanceSpan: allowanceTo - from };
  });
  for (let i = 1; i < input.segments.length; i++) {
    if (seconds(input.segments[i]!.from) < seconds(input.segments[i - 1]!.to)) {
      throw new ValidationError([{ field: `segments.${i}`, message: 'segments must be in order and must not overlap' }]);
    }
  }
  const inPeriod = clipped.filter((c) => c.to > c.from);
  if (inPeriod.length === 0) throw new ValidationError([{ field: 'segments', message: `no plan segment falls in ${input.month}` }]);

  const book = input.priceBook ?? PRICE_BOOK;
  const ppm = input.availability ? availabilityPpm(input.availability) : null;
  const lines = inPeriod.flatMap(({ segment, from, to, allowanceSpan }) => {
    const price = planPrice(segment.plan, segment.planVersion, book);
    const suspended = overlapSeconds(from, to, input.suspended ?? []);
    const ctx = { plan: segment.plan, planVersion: segment.planVersion, from, to };
    const charges = segmentLines(ctx, price, segment.usage, monthSeconds, suspended, allowanceSpan);
    const credit = ppm === null ? null : slaCreditLine(ctx, price, ppm, charges.reduce((sum, l) => sum + BigInt(l.amountMinor), 0n), input.month);
    return credit ? [...charges, credit] : charges;
  });
  const subtotal = lines.reduce((sum, l) => sum + BigInt(l.amountMinor), 0n);
  return {
    number: input.number ?? null,
    tenantId: input.tenant.id,
    tenantName: input.tenant.name,
    month: input.month,
    status: input.status,
    currency: input.currency,
    planVersion: inPeriod.at(-1)!.segment.planVersion,
    periodFrom: at(inPeriod[0]!.from).toISOString(),
    periodTo: at(inPeriod.at(-1)!.to).toISOString(),
    issuer: { name: input.issuer.name, address: [...input.issuer.address] },
    lines,
    subtotalMinor: toSafeNumber(subtotal, 'the subtotal'),
    totalMinor: toSafeNumber(subtotal, 'the total'),
    issuedAt: input.issuedAt ? input.issuedAt.toISOString() : null,
    voids: input.voids ?? null,
    replaces: input.replaces ?? null,
  };
}

/**
 * The void that cancels a finalized invoice: the same lines with their amounts (and unit
 * prices) negated, so the two sum to zero, under a number of its own.
 */
export function voidDocument(original: InvoiceDocument, number: string, issuedAt: Date): InvoiceDocument {
  const neg = (n: number) => (n === 0 ? 0 : -n);
  return {
    ...original,
    number,
    status: 'void',
    lines: original.lines.map((l) => ({ ...l, unitPriceMinor: neg(l.unitPriceMinor), amountMinor: neg(l.amountMinor) })),
    subtotalMinor: neg(original.subtotalMinor),
    totalMinor: neg(original.totalMinor),
    issuedAt: issuedAt.toISOString(),
    voids: original.number,
    replaces: null,
  };
}

/**
 * The pricing calculator: the invoice `usage` would produce over a full month on the
 * current catalog version. Storage is given as the month's average bytes, so its
 * byte-seconds are average × seconds in the month (GiB-months = average GiB).
 */
export function estimateInvoice(input: {
  plan: PlanId;
  usage: { apiRequests: number; egressBytes: number; storageBytes: number; fileStorageBytes: number; realtimeConnections: number };
  now: Date;
  currency: string;
  issuer: { name: string; address: readonly string[] };
  priceBook?: readonly PriceBookVersion[];
}): InvoiceDocument {
  const month = monthOf(input.now);
  const { start, end } = monthBounds(month);
  const monthSeconds = seconds(end) - seconds(start);
  const version = input.priceBook ? Math.max(...input.priceBook.map((v) => v.version)) : CURRENT_PLAN_VERSION;
  return computeInvoice({
    month,
    status: 'estimate',
    segments: [
      {
        plan: input.plan,
        planVersion: version,
        from: start,
        to: end,
        usage: {
          apiRequests: { total: input.usage.apiRequests },
          egressBytes: { total: input.usage.egressBytes },
          storageBytes: { byteSeconds: toBigInt(input.usage.storageBytes, 'storageBytes') * monthSeconds },
          fileStorageBytes: { byteSeconds: toBigInt(input.usage.fileStorageBytes, 'fileStorageBytes') * monthSeconds },
          realtimeConnections: { peak: input.usage.realtimeConnections },
        },
      },
    ],
    tenant: { id: null, name: null },
    currency: input.currency,
    issuer: input.issuer,
    ...(input.priceBook ? { priceBook: input.priceBook } : {}),
  });
}
