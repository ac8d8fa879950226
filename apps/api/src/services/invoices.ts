import { type InvoiceRow, findInvoice, invoiceNumbers, listInvoices } from '@tenantry/db';
import {
  type CloseMonthResult,
  type FileDownload,
  type InvoiceDocument,
  type InvoiceFormat,
  type InvoiceSummary,
  NotFoundError,
  ValidationError,
  type VoidInvoiceResult,
  fileDownload,
} from '@tenantry/domain';
import { type InvoiceSettings, closeMonth, draftInvoice, invoiceBytes, voidInvoice } from '@tenantry/invoices';
import type { ApiDeps } from '../context.js';
import type { PlatformPrincipal } from './platform-keys.js';
import { findTenant } from './tenants.js';
import { enqueueDeliveries } from './webhooks.js';

/**
 * Invoices: a tenant's finalized invoices and voids in any format, its live draft, the
 * month close on demand and corrections. The work is in @tenantry/invoices, shared with the
 * worker's scheduled close; this maps it to the api.
 */

const actorOf = (principal: PlatformPrincipal) => `platform:${principal.keyId}`;

function settingsOf(deps: ApiDeps): InvoiceSettings {
  return {
    currency: deps.config.INVOICE_CURRENCY,
    issuer: { name: deps.config.INVOICE_ISSUER_NAME, address: deps.config.INVOICE_ISSUER_ADDRESS },
    graceHours: deps.config.BILLING_CLOSE_GRACE_HOURS,
  };
}

async function summaries(deps: ApiDeps, rows: InvoiceRow[]): Promise<InvoiceSummary[]> {
  const voidedBy = await invoiceNumbers(deps.db, rows.flatMap((r) => (r.voided_by_id ? [r.voided_by_id] : [])));
  return rows.map((row) => {
    const doc = row.document as unknown as InvoiceDocument;
    return {
      number: row.number,
      month: row.month,
      status: row.status,
      currency: row.currency,
      totalMinor: Number(row.total_minor),
      issuedAt: new Date(row.issued_at).toISOString(),
      voids: doc.voids,
      replaces: doc.replaces ?? null,
      voidedBy: row.voided_by_id ? (voidedBy.get(row.voided_by_id) ?? null) : null,
    };
  });
}

/** Opaque cursors: the seq of the last invoice of a page. */
const encodeCursor = (seq: string) => Buffer.from(`i${seq}`).toString('base64url');

function decodeCursor(cursor: string): string {
  const decoded = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!/^i\d{1,19}$/.test(decoded)) throw new ValidationError([{ field: 'cursor', message: 'is not a cursor this api issued' }]);
  return decoded.slice(1);
}

/** A tenant's invoices and voids, newest first. */
export async function listTenantInvoices(deps: ApiDeps, tenantId: string, input: { limit: number; cursor?: string | undefined }) {
  const rows = await listInvoices(deps.db, tenantId, input.limit + 1, input.cursor ? decodeCursor(input.cursor) : undefined);
  const page = rows.slice(0, input.limit);
  const last = page.at(-1);
  return { items: await summaries(deps, page), nextCursor: rows.length > input.limit && last ? encodeCursor(last.seq) : null };
}

/**
 * An invoice of the tenant by number, as its JSON document or as a file. Another tenant's
 * number is 404, exactly like a number that does not exist.
 */
export async function getTenantInvoice(deps: ApiDeps, tenantId: string, number: string, format: InvoiceFormat): Promise<InvoiceDocument | FileDownload> {
  const row = await findInvoice(deps.db, tenantId, number);
  if (!row) throw new NotFoundError('Invoice', 'invoice_not_found');
  if (format === 'json') return row.document as unknown as InvoiceDocument;
  const file = await invoiceBytes(deps.db, row, format);
  return fileDownload(file.body, file);
}

/** The current month so far, from the same code as the close. */
export async function upcomingInvoice(deps: ApiDeps, tenantRef: string, now = new Date()): Promise<InvoiceDocument> {
  const tenant = await findTenant(deps.db, tenantRef);
  const draft = await draftInvoice(deps.db, tenant, now, settingsOf(deps));
  if (!draft) throw new NotFoundError('An upcoming invoice (nothing is billed to this tenant this month)', 'no_upcoming_invoice');
  return draft;
}

/** The platform closes a past month on demand (audited), past its grace period or forced. */
export async function closeBillingMonth(deps: ApiDeps, principal: PlatformPrincipal, input: { month: string; force: boolean }): Promise<CloseMonthResult> {
  return closeMonth(deps.db, input.month, {
    now: new Date(),
    force: input.force,
    actor: actorOf(principal),
    auditAlways: true,
    settings: settingsOf(deps),
    announce: (deliveries) => enqueueDeliveries(deps, deliveries),
  });
}

/** A correction: void an invoice and, unless told otherwise, issue its replacement. */
export async function voidTenantInvoice(
  deps: ApiDeps,
  principal: PlatformPrincipal,
  input: { id: string; number: string; reason: string; replace: boolean },
): Promise<VoidInvoiceResult> {
  const tenant = await findTenant(deps.db, input.id);
  const result = await voidInvoice(deps.db, tenant, {
    number: input.number,
    reason: input.reason,
    replace: input.replace,
    now: new Date(),
    actor: actorOf(principal),
    settings: settingsOf(deps),
  });
  await enqueueDeliveries(deps, result.deliveries);
  const [voided, replacement] = await summaries(deps, [result.void, ...(result.replacement ? [result.replacement] : [])]);
  return { void: voided!, replacement: replacement ?? null };
}
