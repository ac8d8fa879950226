import { z } from 'zod';
import { PlanId } from './tenants-api.js';

/** A calendar month, UTC: "2026-03". */
export const Month = z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/, 'must be a month as YYYY-MM');

/** An exact decimal as a string ("12.500"): quantities are never floats. */
const Decimal = z.string().regex(/^\d+(\.\d+)?$/);

const minor = z.number().int().refine(Number.isSafeInteger, { message: 'must be a safe integer' });

export const InvoiceLineKind = z.enum(['base', 'apiRequests', 'egressBytes', 'storageBytes', 'fileStorageBytes', 'realtimeConnections']);
export type InvoiceLineKind = z.infer<typeof InvoiceLineKind>;

export const InvoiceLine = z.object({
  kind: InvoiceLineKind,
  description: z.string(),
  /** Exact decimal string: months for a base line, blocks, GiB, GiB-months or connections. */
  quantity: Decimal,
  unit: z.enum(['month', 'block', 'GiB', 'GiB-month', 'connection']),
  /** Price of one unit, integer minor units. */
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
