import { z } from 'zod';
import { ValidationError } from './errors.js';
import { PlanId } from './tenants-api.js';

/**
 * The price book: what each plan costs, per published catalog version.
 *
 * Amounts are integer minor units of the installation's one currency (INVOICE_CURRENCY):
 * 2_500 is $25.00 in USD, ¥2,500 in JPY. The numbers below are the reference catalog in
 * USD; an installation that bills in another currency publishes a version in it.
 *
 * A published version is never edited: a tenant's billing state carries `planVersion`,
 * and its invoices use that version's prices (and record the number). A price change is
 * a new version, rolled out to tenants by changing their planVersion.
 */

/** Storage and egress quantities are priced per GiB (2^30 bytes), as the large clouds do. */
export const BYTES_PER_GIB = 1n << 30n;

/**
 * Availability credits (applied by the month close): a credit of `creditPercent` of the
 * month's charges when measured availability is below `belowPercent`. Tiers are checked
 * lowest first, so the largest applicable credit wins.
 */
export const SlaCreditTier = z.object({
  /** Availability below this (percent, up to three decimals: 99.9, 99.0, 95). */
  belowPercent: z.number().positive().max(100),
  creditPercent: z.number().int().positive().max(100),
});
export type SlaCreditTier = z.infer<typeof SlaCreditTier>;

export type Sla = { kind: 'best_effort' } | { kind: 'uptime'; targetPercent: number; credits: readonly SlaCreditTier[] };

export interface PlanPrice {
  /** Charged per calendar month, prorated by the second for partial months and plan changes. */
  baseMonthlyMinor: number;
  /**
   * While the tenant is suspended: `charge` keeps the base fee running (the plan keeps its
   * resources reserved: storage, isolation), `waive` stops it for the suspended time.
   * Usage lines are always as measured.
   */
  baseFeeWhileSuspended: 'charge' | 'waive';
  /** Requests above the included count, billed per started block of `blockSize`. */
  apiRequests: { included: number; blockSize: number; blockPriceMinor: number };
  /** Response bytes sent, per GiB above the included GiB. */
  egressBytes: { includedGiB: number; perGiBMinor: number };
  /** Database size, per GiB-month (time-weighted average) above the included GiB-months. */
  storageBytes: { includedGiBMonths: number; perGiBMonthMinor: number };
  /** Committed files, per GiB-month (time-weighted average) above the included GiB-months. */
  fileStorageBytes: { includedGiBMonths: number; perGiBMonthMinor: number };
  /** Peak concurrent realtime connections, per connection above the included peak. */
  realtimeConnections: { includedPeak: number; perConnectionMinor: number };
  sla: Sla;
}

export interface PriceBookVersion {
  version: number;
  /** When the version was published (documentation; tenants move by planVersion, not by date). */
  publishedAt: string;
  plans: Readonly<Record<PlanId, PlanPrice>>;
}

const NO_USAGE_CHARGES = {
  // Free plans are held to their limits, not billed for usage.
  apiRequests: { included: 0, blockSize: 1_000, blockPriceMinor: 0 },
  egressBytes: { includedGiB: 0, perGiBMinor: 0 },
  storageBytes: { includedGiBMonths: 0, perGiBMonthMinor: 0 },
  fileStorageBytes: { includedGiBMonths: 0, perGiBMonthMinor: 0 },
  realtimeConnections: { includedPeak: 0, perConnectionMinor: 0 },
} as const;

/** 99.9 % monthly uptime; credits as a share of the month's charges. */
const STANDARD_SLA: Sla = {
  kind: 'uptime',
  targetPercent: 99.9,
  credits: [
    { belowPercent: 95, creditPercent: 100 },
    { belowPercent: 99, creditPercent: 25 },
    { belowPercent: 99.9, creditPercent: 10 },
  ],
};

export const PRICE_BOOK: readonly PriceBookVersion[] = [
  {
    version: 1,
    publishedAt: '2026-12-01',
    plans: {
      trial: { baseMonthlyMinor: 0, baseFeeWhileSuspended: 'charge', ...NO_USAGE_CHARGES, sla: { kind: 'best_effort' } },
      free: { baseMonthlyMinor: 0, baseFeeWhileSuspended: 'charge', ...NO_USAGE_CHARGES, sla: { kind: 'best_effort' } },
      pro: {
        baseMonthlyMinor: 2_500,
        baseFeeWhileSuspended: 'charge',
        apiRequests: { included: 1_000_000, blockSize: 10_000, blockPriceMinor: 10 },
        egressBytes: { includedGiB: 50, perGiBMinor: 9 },
        storageBytes: { includedGiBMonths: 8, perGiBMonthMinor: 125 },
        fileStorageBytes: { includedGiBMonths: 100, perGiBMonthMinor: 2 },
        realtimeConnections: { includedPeak: 500, perConnectionMinor: 1 },
        sla: STANDARD_SLA,
      },
      enterprise: {
        baseMonthlyMinor: 60_000,
        baseFeeWhileSuspended: 'charge',
        apiRequests: { included: 50_000_000, blockSize: 10_000, blockPriceMinor: 5 },
        egressBytes: { includedGiB: 1_000, perGiBMinor: 5 },
        storageBytes: { includedGiBMonths: 500, perGiBMonthMinor: 100 },
        fileStorageBytes: { includedGiBMonths: 2_000, perGiBMonthMinor: 2 },
        realtimeConnections: { includedPeak: 10_000, perConnectionMinor: 1 },
        sla: STANDARD_SLA,
      },
    },
  },
];

/** The version new tenants start on and the pricing calculator quotes. */
export const CURRENT_PLAN_VERSION = Math.max(...PRICE_BOOK.map((v) => v.version));

export class UnknownPlanVersionError extends ValidationError {
  constructor(readonly planVersion: number) {
    super(
      [{ field: 'planVersion', message: `no price book version ${planVersion} exists (published: ${PRICE_BOOK.map((v) => v.version).join(', ')})` }],
    );
  }
}

/** The prices of `plan` in catalog version `version`; a version that was never published is an error, never a fallback. */
export function planPrice(plan: PlanId, version: number, book: readonly PriceBookVersion[] = PRICE_BOOK): PlanPrice {
  const found = book.find((v) => v.version === version);
  if (!found) throw new UnknownPlanVersionError(version);
  return found.plans[plan];
}

/**
 * The credit (percent of the month's charges) an availability earns under an SLA, or 0.
 * Availability is given as parts per million (999_000 = 99.9 %) so that no float is
 * compared: tier bounds are converted to ppm exactly.
 */
export function slaCreditPercent(sla: Sla, availabilityPpm: number): number {
  if (sla.kind === 'best_effort') return 0;
  const sorted = [...sla.credits].sort((a, b) => a.belowPercent - b.belowPercent);
  for (const tier of sorted) {
    if (availabilityPpm < Math.round(tier.belowPercent * 10_000)) return tier.creditPercent;
  }
  return 0;
}

const ISO_CURRENCIES = new Set(Intl.supportedValuesOf('currency'));

/** An ISO 4217 currency code this runtime knows (and so can format). */
export const CurrencyCode = z
  .string()
  .trim()
  .toUpperCase()
  .refine((c) => ISO_CURRENCIES.has(c), { message: 'must be an ISO 4217 currency code, e.g. USD, EUR, JPY' });

/** Digits after the decimal point of a currency's minor unit (USD 2, JPY 0, KWD 3), from ICU. */
export function currencyExponent(currency: string): number {
  return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
}

/** "1,234.56 USD" from minor units, exactly (no float on the way). */
export function formatMoney(minor: number | bigint, currency: string): string {
  const exponent = currencyExponent(currency);
  const value = BigInt(minor);
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(exponent + 1, '0');
  const whole = digits.slice(0, digits.length - exponent).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const fraction = exponent > 0 ? `.${digits.slice(digits.length - exponent)}` : '';
  return `${negative ? '-' : ''}${whole}${fraction} ${currency}`;
}
