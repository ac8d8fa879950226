import { createHash } from 'node:crypto';
import {
  type BilledTenant,
  type Database,
  type Db,
  type InvoiceRow,
  appendAudit,
  countLiveInvoices,
  findInvoice,
  insertInvoice,
  markInvoiceVoided,
  nextInvoiceNumber,
  readAvailability,
  readBillingHistory,
  readExactUsage,
  recordMonthClose,
  recordWebhookEvent,
  storeInvoicePdf,
  tenantsBilledIn,
  tenantsInvoicedFor,
  withMonthCloseLock,
} from '@tenantry/db';
import {
  type CloseMonthResult,
  ConflictError,
  DomainError,
  type InvoiceDocument,
  type InvoiceFormat,
  NotFoundError,
  ValidationError,
  toPublicId,
} from '@tenantry/domain';
import type { Kysely } from 'kysely';
import { type InvoiceInput, computeInvoice, monthBounds, monthOf, voidDocument } from './engine.js';
import { invoiceContentDisposition, invoiceContentType, invoiceToPdf, renderInvoice } from './formats.js';
import { billingTimeline, usageWindows } from './timeline.js';

/**
 * Invoices over the database: the month close, the live draft, voids and corrections, and
 * the stored formats. Every invoice — draft or final, at the close or in a correction — is
 * computed by `monthInvoiceInput` then `computeInvoice`: one code path.
 */

type Q = Kysely<Database>;

export interface InvoiceSettings {
  currency: string;
  issuer: { name: string; address: readonly string[] };
  /** After a month ends, how long late usage may still arrive before it may be closed (BILLING_CLOSE_GRACE_HOURS). */
  graceHours: number;
}

/** What `computeInvoice` needs for one tenant and month, from the history and rollups; null when nothing of the month is billed. */
export async function monthInvoiceInput(db: Q, tenant: BilledTenant, month: string, settings: InvoiceSettings): Promise<Omit<InvoiceInput, 'status'> | null> {
  const { start, end } = monthBounds(month);
  const { segments, suspended } = billingTimeline(await readBillingHistory(db, tenant.id, start, end), start, end);
  if (segments.length === 0) return null;
  const windows = usageWindows(segments, start, end);
  const usage = await Promise.all(windows.map((w) => readExactUsage(db, tenant.id, w.from, w.to)));
  const availability = await readAvailability(db, tenant.id, start, end);
  return {
    month,
    segments: segments.map((segment, i) => ({
      ...segment,
      usage: {
        apiRequests: { total: usage[i]!.apiRequests },
        egressBytes: { total: usage[i]!.egressBytes },
        storageBytes: { byteSeconds: usage[i]!.storageByteSeconds },
        fileStorageBytes: { byteSeconds: usage[i]!.fileStorageByteSeconds },
        realtimeConnections: { peak: Number(usage[i]!.realtimePeak) },
      },
    })),
    suspended,
    availability,
    tenant: { id: toPublicId('ten', tenant.id), name: tenant.name },
    currency: settings.currency,
    issuer: settings.issuer,
  };
}

/** The current month so far, as a draft (no number); null when nothing of it is billed (yet). */
export async function draftInvoice(db: Db, tenant: BilledTenant, now: Date, settings: InvoiceSettings): Promise<InvoiceDocument | null> {
  const input = await monthInvoiceInput(db, tenant, monthOf(now), settings);
  // Billed by the whole second: a tenant activated within the current second has nothing billed yet.
  const second = Math.floor(now.getTime() / 1000);
  if (!input?.segments.some((s) => Math.floor(s.from.getTime() / 1000) < second)) return null;
  return computeInvoice({ ...input, status: 'draft', until: now });
}

/** When a month may be closed without `force`: its end plus the grace period. */
export function closableAt(month: string, graceHours: number): Date {
  return new Date(monthBounds(month).end.getTime() + graceHours * 3_600_000);
}

/** The latest month whose grace period is over at `now`: the one before the month `now − grace` falls in. */
export function latestClosableMonth(now: Date, graceHours: number): string {
  const { start } = monthBounds(monthOf(new Date(now.getTime() - graceHours * 3_600_000)));
  return monthOf(new Date(start.getTime() - 1));
}

const NOT_OVER = (month: string) => new ValidationError([{ field: 'month', message: `${month} is not over yet: only a past month can be closed` }]);

export interface CloseOptions {
  now: Date;
  /** Close a past month still within its grace period. */
  force: boolean;
  /** Who closes it, for the audit log (`system:worker`, `platform:<key id>`). */
  actor: string;
  /**
   * Audit the close even when it changed nothing (an operator's request). Otherwise a close
   * is audited when it finalized invoices or was forced: an hourly pass that finds nothing
   * to do is no event.
   */
  auditAlways?: boolean;
  settings: InvoiceSettings;
  /** Called with each finalized invoice's webhook deliveries once it has committed, to enqueue them. */
  announce?: (deliveryIds: string[]) => Promise<void>;
}

/**
 * Close a month: one finalized invoice for every tenant billed in it that has none yet,
 * numbered in the tenants' creation order, each in its own transaction with its number,
 * its `invoice.finalized` webhook event and its audit entry. Idempotent: a second run, or a
 * second closer waiting on the month's lock, finds the invoices made and makes none twice.
 * A tenant whose invoice cannot be computed (an unknown plan or price book version) is
 * reported and left for the next run; the others are closed.
 */
export async function closeMonth(db: Db, month: string, options: CloseOptions): Promise<CloseMonthResult> {
  const { start, end } = monthBounds(month);
  if (options.now < end) throw NOT_OVER(month);
  const opensAt = closableAt(month, options.settings.graceHours);
  const forced = options.now < opensAt;
  if (forced && !options.force) {
    throw new ConflictError(
      'month_in_grace_period',
      `${month} may still receive late usage until ${opensAt.toISOString()} (BILLING_CLOSE_GRACE_HOURS); close it then, or with force`,
    );
  }
  return withMonthCloseLock(db, month, async (conn) => {
    const invoiced = await tenantsInvoicedFor(conn, month);
    const failed: CloseMonthResult['failed'] = [];
    let created = 0;
    for (const tenant of await tenantsBilledIn(conn, start, end)) {
      if (invoiced.has(tenant.id)) continue;
      let input: Awaited<ReturnType<typeof monthInvoiceInput>>;
      try {
        input = await monthInvoiceInput(conn, tenant, month, options.settings);
        // Computed once here too, so a tenant that cannot be invoiced fails before it takes a number.
        if (input) computeInvoice({ ...input, status: 'finalized' });
      } catch (err) {
        if (!(err instanceof DomainError)) throw err;
        failed.push({ tenantId: toPublicId('ten', tenant.id), message: err.message });
        continue;
      }
      if (!input) continue;
      const finalInput = input;
      const deliveries = await conn.transaction().execute(async (trx) => {
        const { document } = await finalize(trx, tenant.id, finalInput, options.now, null);
        await appendAudit(trx, { actor: options.actor, action: 'invoice.finalized', tenantId: tenant.id, data: { number: document.number, month, totalMinor: document.totalMinor } });
        return recordWebhookEvent(trx, { type: 'invoice.finalized', tenantId: tenant.id, data: { invoice: document } });
      });
      created += 1;
      await options.announce?.(deliveries);
    }
    const invoices = await countLiveInvoices(conn, month);
    await conn.transaction().execute(async (trx) => {
      await recordMonthClose(trx, month, options.now, forced, invoices);
      if (options.auditAlways || forced || created > 0) {
        await appendAudit(trx, { actor: options.actor, action: 'billing.month_closed', data: { month, forced, created, invoices, failed: failed.length } });
      }
    });
    return { month, forced, created, invoices, failed };
  });
}

/** Number, compute and insert one finalized invoice, inside the caller's transaction. */
async function finalize(trx: Q, tenantId: string, input: Omit<InvoiceInput, 'status'>, now: Date, replaces: InvoiceRow | null) {
  const number = await nextInvoiceNumber(trx, now.getUTCFullYear());
  const document = computeInvoice({ ...input, status: 'finalized', number, issuedAt: now, replaces: replaces?.number ?? null });
  const row = await insertInvoice(trx, {
    number,
    tenantId,
    month: document.month,
    status: 'finalized',
    currency: document.currency,
    totalMinor: document.totalMinor,
    issuedAt: now,
    document,
    replacesId: replaces?.id ?? null,
  });
  return { row, document };
}

export interface VoidOptions {
  number: string;
  reason: string;
  /** Issue a corrected invoice for the same month, computed from the history and usage as they are now. */
  replace: boolean;
  now: Date;
  actor: string;
  settings: InvoiceSettings;
}

/**
 * A correction: a void that cancels a finalized invoice (its lines negated, under a number
 * of its own) and, unless told otherwise, a new finalized invoice for the same month that
 * references it, computed as the close would compute it now. One transaction, audited,
 * with an `invoice.voided` (and `invoice.finalized`) webhook event. The original's document
 * never changes; it is marked as voided.
 */
export async function voidInvoice(db: Db, tenant: BilledTenant, options: VoidOptions) {
  return db.transaction().execute(async (trx) => {
    const original = await findInvoice(trx, tenant.id, options.number, { lock: true });
    if (!original) throw new NotFoundError('Invoice', 'invoice_not_found');
    if (original.status === 'void') throw new ConflictError('invoice_is_a_void', `${original.number} is a void; a void cannot be voided`);
    if (original.voided_by_id) throw new ConflictError('invoice_already_voided', `${original.number} is voided already`);

    const input = options.replace ? await monthInvoiceInput(trx, tenant, original.month, options.settings) : null;
    if (options.replace && !input) {
      throw new ConflictError('nothing_to_invoice', `Nothing of ${original.month} is billed to this tenant any more: void it without a replacement`);
    }
    const number = await nextInvoiceNumber(trx, options.now.getUTCFullYear());
    const voidDoc = voidDocument(original.document as unknown as InvoiceDocument, number, options.now);
    const voided = await insertInvoice(trx, {
      number,
      tenantId: tenant.id,
      month: original.month,
      status: 'void',
      currency: voidDoc.currency,
      totalMinor: voidDoc.totalMinor,
      issuedAt: options.now,
      document: voidDoc,
      voidsId: original.id,
      reason: options.reason,
    });
    await markInvoiceVoided(trx, original.id, voided.id);
    const deliveries = await recordWebhookEvent(trx, { type: 'invoice.voided', tenantId: tenant.id, data: { invoice: voidDoc, reason: options.reason } });
    let replacement: { row: InvoiceRow; document: InvoiceDocument } | null = null;
    if (input) {
      replacement = await finalize(trx, tenant.id, input, options.now, original);
      deliveries.push(...(await recordWebhookEvent(trx, { type: 'invoice.finalized', tenantId: tenant.id, data: { invoice: replacement.document } })));
    }
    await appendAudit(trx, {
      actor: options.actor,
      action: 'invoice.voided',
      tenantId: tenant.id,
      data: { number: original.number, void: number, replacement: replacement?.document.number ?? null, reason: options.reason },
    });
    return { original, void: voided, replacement: replacement?.row ?? null, deliveries };
  });
}

export interface InvoiceBytes {
  body: Buffer;
  contentType: string;
  contentDisposition: string;
}

/**
 * An invoice in a format. JSON is the stored document; CSV is rendered from it. The PDF is
 * rendered once, on first request, and kept with its sha256: every later download is the
 * same bytes, whatever version of the renderer is running by then.
 */
export async function invoiceBytes(db: Db, row: InvoiceRow, format: InvoiceFormat): Promise<InvoiceBytes> {
  const document = row.document as unknown as InvoiceDocument;
  const headers = { contentType: invoiceContentType(format), contentDisposition: invoiceContentDisposition(document, format) };
  if (format !== 'pdf') return { body: (await renderInvoice(document, format)).body, ...headers };
  if (row.pdf) return { body: row.pdf, ...headers };
  const rendered = await invoiceToPdf(document);
  const stored = await storeInvoicePdf(db, row.id, rendered, createHash('sha256').update(rendered).digest());
  return { body: stored.pdf, ...headers };
}
