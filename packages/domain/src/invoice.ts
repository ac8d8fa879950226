import { z } from 'zod';
import { pageLimit } from './paging.js';
import { PlanId, TenantRef } from './tenants-api.js';

/** A calendar month, UTC: "2026-03". */
export const Month = z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/, 'must be a month as YYYY-MM');

/** An exact decimal as a string ("12.500"): quantities are never floats. */
const Decimal = z.string().regex(/^\d+(\.\d+)?$/);

const minor = z.number().int().refine(Number.isSafeInteger, { message: 'must be a safe integer' });

/** `slaCredit`: a service credit for a month below the plan's SLA (a negative amount). */
export const InvoiceLineKind = z.enum(['base', 'apiRequests', 'egressBytes', 'storageBytes', 'fileStorageBytes', 'realtimeConnections', 'slaCredit']);
export type InvoiceLineKind = z.infer<typeof InvoiceLineKind>;

export const InvoiceLine = z.object({
  kind: InvoiceLineKind,
  description: z.string(),
  /** Exact decimal string: months for a base line, blocks, GiB, GiB-months, connections, or the percent a credit gives back. */
  quantity: Decimal,
  unit: z.enum(['month', 'block', 'GiB', 'GiB-month', 'connection', 'percent']),
  /** Price of one unit, integer minor units (a credit's is minus the charges it is a percentage of, per 100 %). */
  unitPriceMinor: minor,
  /** Integer minor units, rounded half-up once, on this line. */
  amountMinor: minor,
  plan: PlanId,
  planVersion: z.number().int().positive(),
  /** The part of the period the line covers (a plan segment), ISO timestamps. */
  from: z.string(),
  to: z.string(),
});
export type InvoiceLine = z.infer<typeof InvoiceLine>;

export const InvoiceStatus = z.enum(['estimate', 'draft', 'finalized', 'void']);
export type InvoiceStatus = z.infer<typeof InvoiceStatus>;

/**
 * The canonical invoice document. JSON is the source; CSV and PDF are renderings of it.
 * `number` is assigned when an invoice is finalized (drafts and estimates have none).
 */
export const InvoiceDocument = z.object({
  number: z.string().nullable(),
  tenantId: z.string().nullable(),
  tenantName: z.string().nullable(),
  month: Month,
  status: InvoiceStatus,
  currency: z.string().length(3),
  /** The catalog version whose prices the invoice uses (the last plan segment's). */
  planVersion: z.number().int().positive(),
  /** What the invoice covers: the month, or less (a draft so far, a tenant created or deleted in it). */
  periodFrom: z.string(),
  periodTo: z.string(),
  issuer: z.object({ name: z.string(), address: z.array(z.string()) }),
  lines: z.array(InvoiceLine),
  subtotalMinor: minor,
  totalMinor: minor,
  issuedAt: z.string().nullable(),
  /** For a void: the number of the invoice it cancels. */
  voids: z.string().nullable(),
  /** For an invoice issued as a correction: the number of the (voided) invoice it replaces. */
  replaces: z.string().nullable(),
});
export type InvoiceDocument = z.infer<typeof InvoiceDocument>;

const meterCount = z.number().int('must be an integer').nonnegative('must not be negative').max(Number.MAX_SAFE_INTEGER);

/** The usage the pricing calculator takes: one full month. Storage is the month's average bytes. */
export const EstimateUsage = z.strictObject({
  apiRequests: meterCount.default(0),
  egressBytes: meterCount.default(0),
  storageBytes: meterCount.default(0),
  fileStorageBytes: meterCount.default(0),
  realtimeConnections: meterCount.default(0),
});

export const PricingEstimateRequest = z.strictObject({
  plan: PlanId,
  usage: EstimateUsage.default({ apiRequests: 0, egressBytes: 0, storageBytes: 0, fileStorageBytes: 0, realtimeConnections: 0 }),
});
export type PricingEstimateRequest = z.infer<typeof PricingEstimateRequest>;

/** An invoice number: `INV-2026-000042` (the year it was issued, then a gapless sequence). */
export const InvoiceNumber = z.string().max(32).regex(/^INV-\d{4}-\d{6,}$/, 'must be an invoice number such as INV-2026-000042');

export const InvoiceFormat = z.enum(['json', 'csv', 'pdf']);
export type InvoiceFormat = z.infer<typeof InvoiceFormat>;

const format = InvoiceFormat.default('json').describe('json (the canonical document), csv or pdf');

/** One invoice in a list: enough to pick it, without its lines. */
export const InvoiceSummary = z.object({
  number: z.string(),
  month: Month,
  status: z.enum(['finalized', 'void']),
  currency: z.string(),
  totalMinor: minor,
  issuedAt: z.string(),
  /** For a void: the invoice it cancels. */
  voids: z.string().nullable(),
  /** For a correction: the invoice it replaces. */
  replaces: z.string().nullable(),
  /** For an invoice that was voided: the void that cancels it (its document never changes). */
  voidedBy: z.string().nullable(),
});
export type InvoiceSummary = z.infer<typeof InvoiceSummary>;

export const InvoiceList = z.object({ items: z.array(InvoiceSummary), nextCursor: z.string().nullable() });

const listing = { limit: pageLimit(100, 50), cursor: z.string().max(64).optional() };
export const TenantInvoiceListRequest = z.strictObject({ id: TenantRef, ...listing });
/** No input at all (the SDK's `invoices.own.query()`) is the first page. */
export const OwnInvoiceListRequest = z.strictObject(listing).default({ limit: 50 });
export const TenantInvoiceRequest = z.strictObject({ id: TenantRef, number: InvoiceNumber, format });
export const OwnInvoiceRequest = z.strictObject({ number: InvoiceNumber, format });

export const CloseMonthRequest = z.strictObject({
  month: Month,
  /** Close a month whose grace period for late usage is not over yet (audited as forced). */
  force: z.boolean().default(false),
});

export const CloseMonthResult = z.object({
  month: Month,
  forced: z.boolean(),
  /** Invoices this call finalized (0 when the month was closed already). */
  created: z.number().int().nonnegative(),
  /** Live (finalized, not voided) invoices of the month after this call. */
  invoices: z.number().int().nonnegative(),
  /** Tenants whose invoice could not be computed (e.g. an unknown price book version), to fix and close again. */
  failed: z.array(z.object({ tenantId: z.string(), message: z.string() })),
});
export type CloseMonthResult = z.infer<typeof CloseMonthResult>;

export const VoidInvoiceRequest = z.strictObject({
  id: TenantRef,
  number: InvoiceNumber,
  reason: z.string().trim().min(3, 'must be at least 3 characters').max(500, 'must be at most 500 characters'),
  /** Issue a corrected invoice for the same month, from the usage and plan history as they are now (default). */
  replace: z.boolean().default(true),
});

export const VoidInvoiceResult = z.object({ void: InvoiceSummary, replacement: InvoiceSummary.nullable() });
export type VoidInvoiceResult = z.infer<typeof VoidInvoiceResult>;
