import { AVAILABILITY_METER, type TenantStatus } from '@tenantry/domain';
import { type Kysely, type Selectable, sql } from 'kysely';
import type { Db } from './client.js';
import type { Database, InvoicesTable } from './schema.js';

/**
 * The month close's reads and writes (migration 2026-12-01T1400_invoices): plan history,
 * usage in the exact form billing needs, invoice rows and their gapless numbers. The
 * invoice engine and the close's orchestration are in @tenantry/invoices.
 */

type Q = Kysely<Database>;

export type InvoiceRow = Selectable<InvoicesTable>;

// ---- what a month is computed from ----------------------------------------------------

export interface BillingHistoryEntry {
  at: Date;
  status: TenantStatus;
  plan: string;
  planVersion: number;
}

/**
 * A tenant's history as it bears on [from, to): the entry in force at `from` (the latest
 * at or before it), then every change before `to`, oldest first.
 */
export async function readBillingHistory(db: Q, tenantId: string, from: Date, to: Date): Promise<BillingHistoryEntry[]> {
  const rows = await sql<{ at: Date; status: TenantStatus; plan: string; plan_version: number }>`
    with opening as (
      select h0.at, h0.id from tenant_billing_history h0
      where h0.tenant_id = ${tenantId} and h0.at <= ${from}
      order by h0.at desc, h0.id desc limit 1
    )
    select h.at, h.status, h.plan, h.plan_version
    from tenant_billing_history h
    where h.tenant_id = ${tenantId}
      and h.at < ${to}
      and (not exists (select 1 from opening) or (h.at, h.id) >= (select o.at, o.id from opening o))
    order by h.at, h.id`.execute(db);
  return rows.rows.map((r) => ({ at: new Date(r.at), status: r.status, plan: r.plan, planVersion: r.plan_version }));
}

export interface BilledTenant {
  id: string;
  name: string;
}

/**
 * The tenants that were billable (active or suspended) at some moment of [from, to), in
 * creation order — the order their invoices are numbered in. The platform's own default
 * tenant is never billed.
 */
export async function tenantsBilledIn(db: Q, from: Date, to: Date): Promise<BilledTenant[]> {
  const rows = await sql<BilledTenant>`
    with spans as (
      select h.tenant_id, h.at, h.status, lead(h.at) over (partition by h.tenant_id order by h.at, h.id) as until
      from tenant_billing_history h
      where h.at < ${to}
    )
    select t.id, t.name
    from tenants t
    where not t.is_default
      and exists (
        select 1 from spans s
        where s.tenant_id = t.id and s.status in ('active', 'suspended') and (s.until is null or s.until > ${from}) and s.until is distinct from s.at)
    order by t.seq`.execute(db);
  return rows.rows;
}

/** Usage over hour-aligned [from, to) as exact decimal strings: byte-seconds of a month pass 2^53. */
export interface ExactUsage {
  apiRequests: string;
  egressBytes: string;
  /** ∫ bytes dt, rounded to whole byte-seconds. */
  storageByteSeconds: string;
  fileStorageByteSeconds: string;
  realtimePeak: string;
}

export async function readExactUsage(db: Q, tenantId: string, from: Date, to: Date): Promise<ExactUsage> {
  const usage: ExactUsage = { apiRequests: '0', egressBytes: '0', storageByteSeconds: '0', fileStorageByteSeconds: '0', realtimePeak: '0' };
  if (to <= from) return usage;
  const rows = await sql<{ meter: string; count: string; value_seconds: string; peak: string }>`
    select meter,
           coalesce(sum(count), 0)::text as count,
           round(coalesce(sum(value_seconds), 0))::text as value_seconds,
           coalesce(max(max_value), 0)::text as peak
    from usage_hourly
    where tenant_id = ${tenantId} and hour >= ${from} and hour < ${to}
      and meter in ('apiRequests', 'egressBytes', 'storageBytes', 'fileStorageBytes', 'realtimeConnections')
    group by meter`.execute(db);
  for (const r of rows.rows) {
    if (r.meter === 'apiRequests') usage.apiRequests = r.count;
    if (r.meter === 'egressBytes') usage.egressBytes = r.count;
    if (r.meter === 'storageBytes') usage.storageByteSeconds = r.value_seconds;
    if (r.meter === 'fileStorageBytes') usage.fileStorageByteSeconds = r.value_seconds;
    if (r.meter === 'realtimeConnections') usage.realtimePeak = r.peak;
  }
  return usage;
}

// ---- availability ---------------------------------------------------------------------

const HOUR_MS = 3_600_000;

/** Count one health probe of a tenant's store in its hour's availability rollup. */
export async function recordAvailability(db: Q, tenantId: string, ok: boolean, at: Date): Promise<void> {
  const hour = new Date(Math.floor(at.getTime() / HOUR_MS) * HOUR_MS);
  await sql`
    insert into usage_hourly (tenant_id, meter, hour, status_class, count)
    select ${tenantId}, ${AVAILABILITY_METER}, ${hour}, ${ok ? 'up' : 'down'}, 1
    where exists (select 1 from tenants t where t.id = ${tenantId})
    on conflict (tenant_id, meter, hour, route, method, status_class) do update set count = usage_hourly.count + 1`.execute(db);
}

/** Health probes of a tenant over [from, to), and how many succeeded (exact decimal strings). */
export async function readAvailability(db: Q, tenantId: string, from: Date, to: Date): Promise<{ probes: string; up: string }> {
  const row = await sql<{ probes: string; up: string }>`
    select coalesce(sum(count), 0)::text as probes, coalesce(sum(count) filter (where status_class = 'up'), 0)::text as up
    from usage_hourly
    where tenant_id = ${tenantId} and meter = ${AVAILABILITY_METER} and hour >= ${from} and hour < ${to}`.execute(db);
  return row.rows[0] ?? { probes: '0', up: '0' };
}

// ---- invoices -------------------------------------------------------------------------

/**
 * Run `fn` holding the month close's lock of `month`, on one connection (a session
 * advisory lock: a second closer of the same month — another worker, the api — waits, then
 * finds the invoices made and makes none twice). A closer that dies releases it with its
 * connection.
 */
export async function withMonthCloseLock<T>(db: Db, month: string, fn: (conn: Q) => Promise<T>): Promise<T> {
  return db.connection().execute(async (conn) => {
    await sql`select pg_advisory_lock(hashtext('tenantry.month_close'), hashtext(${month}))`.execute(conn);
    try {
      return await fn(conn);
    } finally {
      await sql`select pg_advisory_unlock(hashtext('tenantry.month_close'), hashtext(${month}))`.execute(conn);
    }
  });
}

/** Tenants that have a finalized invoice for the month — live or voided since: the close leaves them be. */
export async function tenantsInvoicedFor(db: Q, month: string): Promise<Set<string>> {
  const rows = await db.selectFrom('invoices').select('tenant_id').where('month', '=', month).where('status', '=', 'finalized').execute();
  return new Set(rows.map((r) => r.tenant_id));
}

export async function countLiveInvoices(db: Q, month: string): Promise<number> {
  const row = await db
    .selectFrom('invoices')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('month', '=', month)
    .where('status', '=', 'finalized')
    .where('voided_by_id', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/**
 * The next invoice number of `year`, inside the transaction that inserts the invoice: the
 * counter row stays locked until it commits, and a rollback gives the number back, so
 * numbers have no gaps whatever fails or races.
 */
export async function nextInvoiceNumber(trx: Q, year: number): Promise<string> {
  const row = await sql<{ last_number: string }>`
    insert into invoice_counters (year, last_number) values (${year}, 1)
    on conflict (year) do update set last_number = invoice_counters.last_number + 1
    returning last_number::text`.execute(trx);
  return `INV-${year}-${row.rows[0]!.last_number.padStart(6, '0')}`;
}

export interface NewInvoice {
  number: string;
  tenantId: string;
  month: string;
  status: 'finalized' | 'void';
  currency: string;
  totalMinor: number;
  issuedAt: Date;
  document: unknown;
  voidsId?: string | null;
  replacesId?: string | null;
  reason?: string | null;
}

export async function insertInvoice(trx: Q, invoice: NewInvoice): Promise<InvoiceRow> {
  return trx
    .insertInto('invoices')
    .values({
      number: invoice.number,
      tenant_id: invoice.tenantId,
      month: invoice.month,
      status: invoice.status,
      currency: invoice.currency,
      total_minor: invoice.totalMinor,
      issued_at: invoice.issuedAt,
      document: JSON.stringify(invoice.document),
      voids_id: invoice.voidsId ?? null,
      replaces_id: invoice.replacesId ?? null,
      voided_by_id: null,
      reason: invoice.reason ?? null,
      pdf: null,
      pdf_sha256: null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Record that `voidId` cancels the invoice `id` (the only change an invoice row ever takes besides its PDF). */
export async function markInvoiceVoided(trx: Q, id: string, voidId: string): Promise<void> {
  await trx.updateTable('invoices').set({ voided_by_id: voidId }).where('id', '=', id).where('voided_by_id', 'is', null).execute();
}

export async function findInvoice(db: Q, tenantId: string, number: string, options: { lock?: boolean } = {}): Promise<InvoiceRow | undefined> {
  let query = db.selectFrom('invoices').selectAll().where('tenant_id', '=', tenantId).where('number', '=', number);
  if (options.lock) query = query.forUpdate();
  return query.executeTakeFirst();
}

/** The numbers of the invoices that `rows` point at (voids, replaces, voided by), by id. */
export async function invoiceNumbers(db: Q, ids: readonly string[]): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map();
  const rows = await db.selectFrom('invoices').select(['id', 'number']).where('id', 'in', [...new Set(ids)]).execute();
  return new Map(rows.map((r) => [r.id, r.number]));
}

/** A tenant's invoices, newest first, keyset-paginated on their sequence. */
export async function listInvoices(db: Q, tenantId: string, limit: number, beforeSeq?: string): Promise<InvoiceRow[]> {
  let query = db.selectFrom('invoices').selectAll().where('tenant_id', '=', tenantId);
  if (beforeSeq) query = query.where('seq', '<', beforeSeq);
  return query.orderBy('seq', 'desc').limit(limit).execute();
}

/**
 * Keep the first rendering of an invoice's PDF with its sha256, and answer the one kept:
 * when two requests render it at once, both send the bytes of whichever stored first.
 */
export async function storeInvoicePdf(db: Q, id: string, pdf: Buffer, sha256: Buffer): Promise<{ pdf: Buffer; sha256: Buffer }> {
  await db.updateTable('invoices').set({ pdf, pdf_sha256: sha256 }).where('id', '=', id).where('pdf', 'is', null).execute();
  const row = await db.selectFrom('invoices').select(['pdf', 'pdf_sha256']).where('id', '=', id).executeTakeFirstOrThrow();
  return { pdf: row.pdf!, sha256: row.pdf_sha256! };
}

/** Note a close of `month`: when it was first and last closed, whether ever forced, its live invoices. */
export async function recordMonthClose(trx: Q, month: string, at: Date, forced: boolean, invoices: number): Promise<void> {
  await sql`
    insert into billing_closes (month, first_closed_at, last_closed_at, forced, invoices)
    values (${month}, ${at}, ${at}, ${forced}, ${invoices})
    on conflict (month) do update set last_closed_at = excluded.last_closed_at, forced = billing_closes.forced or excluded.forced, invoices = excluded.invoices`.execute(trx);
}

/** The latest month ever closed, or null. */
export async function latestClosedMonth(db: Q): Promise<string | null> {
  const row = await db.selectFrom('billing_closes').select((eb) => eb.fn.max('month').as('month')).executeTakeFirst();
  return (row?.month as string | null | undefined) ?? null;
}
