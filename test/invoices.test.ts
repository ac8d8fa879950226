import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { applyCounterFlush, recordGaugeSamples } from '@tenantry/db';
import { type GaugeMeter, type TenantStatus, fromPublicId, monthOf } from '@tenantry/domain';
import { parse } from 'csv-parse/sync';
import { sql } from 'kysely';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_KEY } from './support/apps.js';
import { request, waitFor } from './support/http.js';
import { useStack } from './support/stack.js';

/**
 * Invoices end to end: tenants with a recorded plan history and usage written through the
 * real metering paths (applyCounterFlush, recordGaugeSamples) at chosen times; the worker
 * closes their months; the api serves the invoices, the live draft and corrections. Every
 * expected amount is worked out by hand from the v1 price book (docs/billing.md).
 *
 * The api's grace period is long here (2,000 h), so that last month is still within it
 * whatever day this runs: the close route's 409 and `force` can be seen.
 */
const WEBHOOKS = { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOK_BACKOFF_MS: '200' };
const stack = useStack({
  api: { ...WEBHOOKS, BILLING_CLOSE_GRACE_HOURS: '2000' },
  // Probes and closes run when the tests say; the schedules would only add noise.
  workerEnv: { ...WEBHOOKS, HEALTH_PROBE_INTERVAL_MS: '3600000', BILLING_CLOSE_INTERVAL_MS: '3600000', USAGE_SAMPLE_INTERVAL_MS: '3600000' },
});

const GiB = 2 ** 30;
const run = promisify(execFile);
const db = () => stack.database.db;
const uuidOf = (tenantId: string) => fromPublicId('ten', tenantId)!;

/** A tenant's recorded history, replaced by a chosen one (the triggers record real changes: tested below). */
async function setHistory(tenantId: string, entries: Array<[at: string, status: TenantStatus, plan?: string, planVersion?: number]>) {
  const id = uuidOf(tenantId);
  await db().deleteFrom('tenant_billing_history').where('tenant_id', '=', id).execute();
  await db()
    .insertInto('tenant_billing_history')
    .values(entries.map(([at, status, plan = 'pro', planVersion = 1]) => ({ tenant_id: id, at: new Date(at), status, plan, plan_version: planVersion })))
    .execute();
}

/** Counts as an api instance flushes them: one flush of its own, into the hour given. */
async function count(tenantId: string, meter: 'apiRequests' | 'egressBytes', hour: string, amount: number, statusClass = '2xx') {
  const applied = await applyCounterFlush(db(), {
    instanceId: randomUUID(),
    seq: 1,
    flushedUpTo: new Date(),
    deltas: [{ tenantId: uuidOf(tenantId), meter, hour: new Date(hour), route: '/v1/collections/{collection}/documents', method: 'GET', statusClass, amount }],
  });
  expect(applied).toBe(true);
}

/** A gauge sample as the worker's sampler records it, at a chosen time (gaps of up to 40 days integrated). */
async function sample(tenantId: string, meter: GaugeMeter, at: string, value: number) {
  await recordGaugeSamples(db(), meter, [{ tenantId: uuidOf(tenantId), value }], new Date(at), 40 * 86_400);
}

/** Close a month in the worker as if it were 13 h after its end (past the default 12 h grace). */
async function closeMonth(month: string) {
  const [y, m] = month.split('-').map(Number) as [number, number];
  return stack.worker!.closeMonth(month, new Date(Date.UTC(y, m, 1, 13)));
}

async function invoicesOf(tenantId: string) {
  const res = await stack.admin('GET', `/v1/tenants/${tenantId}/invoices`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.items as Array<{ number: string; month: string; status: string; totalMinor: number; voids: string | null; replaces: string | null; voidedBy: string | null }>;
}

async function invoice(tenantId: string, number: string) {
  const res = await stack.admin('GET', `/v1/tenants/${tenantId}/invoices/${number}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

const lines = (doc: { lines: Array<{ kind: string; plan: string; quantity: string; unitPriceMinor: number; amountMinor: number }> }) =>
  doc.lines.map((l) => [l.kind, l.plan, l.quantity, l.unitPriceMinor, l.amountMinor]);

/** Receives webhooks: what the billing system would see. */
let receiver: Server;
const received: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
let secret: string;

let golden: { tenantId: string; token: string };
let other: { tenantId: string; token: string };
let goldenNumber: string;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  receiver.listen(0, '127.0.0.1');
  await once(receiver, 'listening');
  const hook = await stack.admin('POST', '/v1/webhooks', {
    body: { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/billing`, events: ['invoice.finalized', 'invoice.voided'] },
  });
  expect(hook.status).toBe(201);
  secret = hook.body.secret;
  golden = await stack.signUpTenant({ orgName: 'Golden Goods' });
  other = await stack.signUpTenant({ orgName: 'Other Outfit' });
});
afterAll(async () => {
  receiver?.closeAllConnections();
  await new Promise((resolve) => receiver?.close(resolve));
});

describe('the month close', () => {
  it('a golden month: every line and the total as computed by hand; numbered, announced, audited', async () => {
    // Pro since February, all of March 2026 (31 days: 2,678,400 s), gone after it.
    await setHistory(golden.tenantId, [
      ['2026-02-01T00:00:00Z', 'active'],
      ['2026-04-01T00:00:00Z', 'pending_deletion'],
    ]);
    // 1,234,567 requests in two hours (2xx and 4xx alike), 62.5 GiB sent.
    await count(golden.tenantId, 'apiRequests', '2026-03-05T10:00:00Z', 1_000_000);
    await count(golden.tenantId, 'apiRequests', '2026-03-20T15:00:00Z', 234_567, '4xx');
    await count(golden.tenantId, 'egressBytes', '2026-03-20T15:00:00Z', 62.5 * GiB);
    // Usage of February and April is not March's.
    await count(golden.tenantId, 'apiRequests', '2026-02-28T23:00:00Z', 5_000_000);
    await count(golden.tenantId, 'apiRequests', '2026-04-01T00:00:00Z', 5_000_000);
    // Database: 8 GiB for 10 days, then 20 GiB for 21 days. Files: 150 GiB all month.
    // Realtime: a peak of 750 on 10 March.
    await sample(golden.tenantId, 'storageBytes', '2026-03-01T00:00:00Z', 8 * GiB);
    await sample(golden.tenantId, 'storageBytes', '2026-03-11T00:00:00Z', 20 * GiB);
    await sample(golden.tenantId, 'storageBytes', '2026-04-01T00:00:00Z', 20 * GiB);
    await sample(golden.tenantId, 'fileStorageBytes', '2026-03-01T00:00:00Z', 150 * GiB);
    await sample(golden.tenantId, 'fileStorageBytes', '2026-04-01T00:00:00Z', 150 * GiB);
    await sample(golden.tenantId, 'realtimeConnections', '2026-03-10T12:00:00Z', 750);
    await sample(golden.tenantId, 'realtimeConnections', '2026-03-10T13:30:00Z', 100);

    const result = await closeMonth('2026-03');
    expect(result).toMatchObject({ month: '2026-03', forced: false, created: 1, invoices: 1, failed: [] });
    const [item] = await invoicesOf(golden.tenantId);
    goldenNumber = item!.number;
    expect(goldenNumber).toMatch(/^INV-2026-\d{6}$/);
    const doc = await invoice(golden.tenantId, goldenNumber);
    expect(lines(doc)).toEqual([
      ['base', 'pro', '1.000000', 2_500, 2_500],
      // 234,567 over the million: 23.4567 blocks of 10,000, 24 started × 10.
      ['apiRequests', 'pro', '24', 10, 240],
      // 12.5 GiB over 50: × 9 = 112.5 → 113.
      ['egressBytes', 'pro', '12.500', 9, 113],
      // (8 × 10 + 20 × 21) / 31 = 16.129 GiB-month; 8.129 over × 125 = 1,016.125 → 1,016.
      ['storageBytes', 'pro', '8.129', 125, 1_016],
      // 150 GiB-month, 50 over × 2.
      ['fileStorageBytes', 'pro', '50.000', 2, 100],
      // Peak 750, 250 over × 1.
      ['realtimeConnections', 'pro', '250', 1, 250],
    ]);
    expect(doc).toMatchObject({
      number: goldenNumber,
      tenantId: golden.tenantId,
      tenantName: 'Golden Goods',
      month: '2026-03',
      status: 'finalized',
      currency: 'USD',
      planVersion: 1,
      periodFrom: '2026-03-01T00:00:00.000Z',
      periodTo: '2026-04-01T00:00:00.000Z',
      subtotalMinor: 4_219,
      totalMinor: 4_219,
      issuedAt: '2026-04-01T13:00:00.000Z',
      voids: null,
      replaces: null,
    });
    expect(doc.lines[1].description).toBe('API requests: 1,234,567 (1,000,000 included), billed per started block of 10,000 above');
    expect(item).toMatchObject({ month: '2026-03', status: 'finalized', currency: 'USD', totalMinor: 4_219, voidedBy: null });

    // Announced in the same transaction: exactly one outbox event per invoice, delivered signed.
    const events = await db().selectFrom('webhook_events').select(['payload']).where('type', '=', 'invoice.finalized').where('tenant_id', '=', uuidOf(golden.tenantId)).execute();
    expect(events.map((e) => (e.payload as { data: { invoice: { number: string } } }).data.invoice.number)).toEqual([goldenNumber]);
    const delivery = await waitFor(async () => received.find((r) => r.body.includes(goldenNumber)));
    const event = new Webhook(secret).verify(delivery.body, {
      'webhook-id': String(delivery.headers['webhook-id']),
      'webhook-timestamp': String(delivery.headers['webhook-timestamp']),
      'webhook-signature': String(delivery.headers['webhook-signature']),
    }) as { type: string; data: { invoice: { number: string; totalMinor: number; lines: unknown[] } } };
    expect(event).toMatchObject({ type: 'invoice.finalized', data: { invoice: { number: goldenNumber, totalMinor: 4_219 } } });
    expect(event.data.invoice.lines).toHaveLength(6);

    const audit = await db().selectFrom('audit_log').select(['actor', 'data']).where('action', '=', 'invoice.finalized').where('tenant_id', '=', uuidOf(golden.tenantId)).execute();
    expect(audit).toEqual([{ actor: 'system:worker', data: { number: goldenNumber, month: '2026-03', totalMinor: 4_219 } }]);
  });

  it('closing again, or two closers at once, makes no second invoice and takes no number', async () => {
    const [a, b] = await Promise.all([closeMonth('2026-03'), closeMonth('2026-03')]);
    expect([a.created, b.created, a.invoices, b.invoices]).toEqual([0, 0, 1, 1]);
    expect((await invoicesOf(golden.tenantId)).map((i) => i.number)).toEqual([goldenNumber]);
    const counter = await db().selectFrom('invoice_counters').select('last_number').where('year', '=', 2026).executeTakeFirstOrThrow();
    expect(`INV-2026-${counter.last_number.padStart(6, '0')}`).toBe(goldenNumber);
  });

  it('proration: created on 16 April at 10:30 is billed from then, by the second, allowances too', async () => {
    const p = await stack.signUpTenant({ orgName: 'Prorated Partners' });
    await setHistory(p.tenantId, [
      ['2026-04-16T10:29:52Z', 'provisioning'],
      ['2026-04-16T10:30:00Z', 'active'],
      ['2026-05-01T00:00:00Z', 'pending_deletion'],
    ]);
    // In the hour it was created: the hour belongs to its first (only) segment.
    await count(p.tenantId, 'apiRequests', '2026-04-16T10:00:00Z', 600_000);
    const result = await closeMonth('2026-04');
    expect(result.created).toBe(1);
    const [item] = await invoicesOf(p.tenantId);
    const doc = await invoice(p.tenantId, item!.number);
    // April: 2,592,000 s; billed 14 d 13.5 h = 1,258,200 s. Base 2,500 × 1,258,200 / 2,592,000 = 1,213.54 → 1,214.
    // Included requests 1,000,000 × the same share = 485,416.67 → 485,417; 114,583 over → 12 started blocks → 120.
    expect(lines(doc)).toEqual([
      ['base', 'pro', '0.485417', 2_500, 1_214],
      ['apiRequests', 'pro', '12', 10, 120],
      ['egressBytes', 'pro', '0.000', 9, 0],
      ['storageBytes', 'pro', '0.000', 125, 0],
      ['fileStorageBytes', 'pro', '0.000', 2, 0],
      ['realtimeConnections', 'pro', '0', 1, 0],
    ]);
    expect(doc.lines[1].description).toContain('(485,417 included)');
    expect([doc.periodFrom, doc.periodTo, doc.totalMinor]).toEqual(['2026-04-16T10:30:00.000Z', '2026-05-01T00:00:00.000Z', 1_334]);
  });

  it('created and deleted within the month: billed for the 10 days between only', async () => {
    const c = await stack.signUpTenant({ orgName: 'Comet Corp' });
    await setHistory(c.tenantId, [
      ['2026-05-10T11:59:55Z', 'provisioning'],
      ['2026-05-10T12:00:00Z', 'active'],
      ['2026-05-20T12:00:00Z', 'pending_deletion'],
      ['2026-05-27T12:00:00Z', 'deleted'],
    ]);
    await count(c.tenantId, 'apiRequests', '2026-05-15T08:00:00Z', 400_000);
    // 8 GiB kept for exactly the 10 days.
    await sample(c.tenantId, 'storageBytes', '2026-05-10T12:00:00Z', 8 * GiB);
    await sample(c.tenantId, 'storageBytes', '2026-05-20T12:00:00Z', 0);
    expect((await closeMonth('2026-05')).created).toBe(1);
    const [item] = await invoicesOf(c.tenantId);
    const doc = await invoice(c.tenantId, item!.number);
    // 10 of 31 days: base 806.45 → 806. Allowance 322,580.6 → 322,581: 77,419 over → 8 blocks → 80.
    // Storage 8 GiB × 10/31 = 2.581 GiB-month, exactly the prorated allowance: nothing over.
    expect(lines(doc)).toEqual([
      ['base', 'pro', '0.322581', 2_500, 806],
      ['apiRequests', 'pro', '8', 10, 80],
      ['egressBytes', 'pro', '0.000', 9, 0],
      ['storageBytes', 'pro', '0.000', 125, 0],
      ['fileStorageBytes', 'pro', '0.000', 2, 0],
      ['realtimeConnections', 'pro', '0', 1, 0],
    ]);
    expect(doc.lines[3].description).toContain('above 2.581 included (2.581 GiB-month used)');
    expect([doc.periodFrom, doc.periodTo, doc.totalMinor]).toEqual(['2026-05-10T12:00:00.000Z', '2026-05-20T12:00:00.000Z', 886]);
  });

  it('the plan changing mid-month: a prorated base line per plan, and each hour of usage billed at the plan in force at its start', async () => {
    const m = await stack.signUpTenant({ orgName: 'Midway Media' });
    await setHistory(m.tenantId, [
      ['2026-06-01T00:00:00Z', 'active', 'pro'],
      ['2026-06-11T00:30:00Z', 'active', 'enterprise'],
      ['2026-07-01T00:00:00Z', 'pending_deletion', 'enterprise'],
    ]);
    await count(m.tenantId, 'apiRequests', '2026-06-05T12:00:00Z', 100_000);
    // The change happened at 00:30: the hour from 00:00 started on pro, and is pro's.
    await count(m.tenantId, 'apiRequests', '2026-06-11T00:00:00Z', 500_000);
    await count(m.tenantId, 'apiRequests', '2026-06-11T01:00:00Z', 2_000_000);
    expect((await closeMonth('2026-06')).created).toBe(1);
    const [item] = await invoicesOf(m.tenantId);
    const doc = await invoice(m.tenantId, item!.number);
    const byKind = (kind: string) => doc.lines.filter((l: { kind: string }) => l.kind === kind).map((l: { plan: string; quantity: string; amountMinor: number }) => [l.plan, l.quantity, l.amountMinor]);
    // June: 2,592,000 s. Pro 10 d 30 min = 865,800 s: 2,500 × 865,800 / 2,592,000 = 835.07 → 835.
    // Enterprise the other 1,726,200 s: 60,000 × … = 39,958.33 → 39,958.
    expect(byKind('base')).toEqual([
      ['pro', '0.334028', 835],
      ['enterprise', '0.665972', 39_958],
    ]);
    // Pro: 600,000 requests against 1,000,000 × 0.334028 = 334,027.8 → 334,028; 265,972 over → 27 blocks → 270.
    // Enterprise: 2,000,000 of its 33,298,611 included.
    expect(byKind('apiRequests')).toEqual([
      ['pro', '27', 270],
      ['enterprise', '0', 0],
    ]);
    expect(doc.lines.filter((l: { kind: string }) => l.kind === 'apiRequests').map((l: { description: string }) => l.description.split(' (')[0])).toEqual([
      'API requests: 600,000',
      'API requests: 2,000,000',
    ]);
    expect(doc.totalMinor).toBe(835 + 270 + 39_958);
    expect(doc.planVersion).toBe(1);
  });

  it('zero usage: the base fee alone on pro; an invoice of 0 on free', async () => {
    const z = await stack.signUpTenant({ orgName: 'Zero Zone' });
    const f = await stack.signUpTenant({ orgName: 'Free Folk' });
    await setHistory(z.tenantId, [
      ['2026-07-01T00:00:00Z', 'active', 'pro'],
      ['2026-08-01T00:00:00Z', 'deleted', 'pro'],
    ]);
    await setHistory(f.tenantId, [
      ['2026-07-01T00:00:00Z', 'active', 'free'],
      ['2026-08-01T00:00:00Z', 'deleted', 'free'],
    ]);
    const result = await closeMonth('2026-07');
    expect(result).toMatchObject({ created: 2, invoices: 2 });
    const zero = await invoice(z.tenantId, (await invoicesOf(z.tenantId))[0]!.number);
    expect(lines(zero)).toEqual([
      ['base', 'pro', '1.000000', 2_500, 2_500],
      ['apiRequests', 'pro', '0', 10, 0],
      ['egressBytes', 'pro', '0.000', 9, 0],
      ['storageBytes', 'pro', '0.000', 125, 0],
      ['fileStorageBytes', 'pro', '0.000', 2, 0],
      ['realtimeConnections', 'pro', '0', 1, 0],
    ]);
    expect(zero.totalMinor).toBe(2_500);
    const free = await invoice(f.tenantId, (await invoicesOf(f.tenantId))[0]!.number);
    expect([lines(free), free.totalMinor]).toEqual([[['base', 'free', '1.000000', 0, 0]], 0]);
  });

  it('numbers are sequential without gaps, in the order months were closed and tenants created', async () => {
    const rows = await db().selectFrom('invoices').select(['number', 'month']).orderBy('seq').execute();
    const numbers = rows.map((r) => Number(r.number.slice(-6)));
    expect(numbers).toEqual(numbers.map((_, i) => i + 1));
    expect(rows.map((r) => r.month)).toEqual(['2026-03', '2026-04', '2026-05', '2026-06', '2026-07', '2026-07']);
  });

  it('a finalized invoice never changes: the database refuses an update or a delete', async () => {
    const id = (await db().selectFrom('invoices').select('id').where('number', '=', goldenNumber).executeTakeFirstOrThrow()).id;
    await expect(sql`update invoices set total_minor = 1 where id = ${id}`.execute(db())).rejects.toThrow(/never changes/);
    await expect(sql`update invoices set document = '{}'::jsonb where id = ${id}`.execute(db())).rejects.toThrow(/never changes/);
    await expect(sql`delete from invoices where id = ${id}`.execute(db())).rejects.toThrow(/never removed/);
    expect((await invoice(golden.tenantId, goldenNumber)).totalMinor).toBe(4_219);
  });
});

describe('the close route', () => {
  const lastMonth = () => monthOf(new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 0)));

  it('the current month and a future one are 400; a month within its grace period is 409 unless forced', async () => {
    for (const month of [monthOf(new Date()), '2099-01']) {
      const res = await stack.admin('POST', '/v1/billing/close', { body: { month } });
      expect([res.status, res.body.code, res.body.fields?.[0]?.field], month).toEqual([400, 'validation_failed', 'month']);
    }
    for (const body of [{}, { month: '2026-13' }, { month: '2026-03', force: 'yes' }, { month: '2026-03', extra: 1 }]) {
      expect((await stack.admin('POST', '/v1/billing/close', { body })).status, JSON.stringify(body)).toBe(400);
    }
    const early = await stack.admin('POST', '/v1/billing/close', { body: { month: lastMonth() } });
    expect([early.status, early.body.code]).toEqual([409, 'month_in_grace_period']);
    const forced = await stack.admin('POST', '/v1/billing/close', { body: { month: lastMonth(), force: true } });
    expect(forced.status, JSON.stringify(forced.body)).toBe(200);
    expect(forced.body).toMatchObject({ month: lastMonth(), forced: true, failed: [] });
    const audit = await db().selectFrom('audit_log').select(['actor', 'data']).where('action', '=', 'billing.month_closed').execute();
    expect(audit).toContainEqual({ actor: 'platform:env:1', data: expect.objectContaining({ month: lastMonth(), forced: true }) });
  });

  it('a past month: finalized on demand, idempotent; a tenant credential is refused', async () => {
    const first = await stack.admin('POST', '/v1/billing/close', { body: { month: '2026-03' } });
    expect(first.body).toEqual({ month: '2026-03', forced: false, created: 0, invoices: 1, failed: [] });
    const asTenant = await request(stack.api.baseUrl, 'POST', '/v1/billing/close', { token: golden.token, body: { month: '2026-03' } });
    expect([401, 403]).toContain(asTenant.status);
  });
});

describe('formats', () => {
  it('json, csv and pdf, with Content-Type and Content-Disposition; the PDF is the same bytes every time', async () => {
    const base = `${stack.api.baseUrl}/v1/tenants/${golden.tenantId}/invoices/${goldenNumber}`;
    const get = (query: string, token = PLATFORM_KEY) => fetch(`${base}${query}`, { headers: { authorization: `Bearer ${token}` } });

    const json = await get('?format=json');
    expect(json.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const doc = await json.json();

    const csv = await get('?format=csv');
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toBe('text/csv; charset=utf-8; header=present');
    expect(csv.headers.get('content-disposition')).toBe(`attachment; filename="invoice-${goldenNumber}.csv"`);
    const records = parse(await csv.text(), { columns: true }) as Array<Record<string, string>>;
    expect(records.map((r) => [r.kind, r.amount_minor])).toEqual([...doc.lines.map((l: { kind: string; amountMinor: number }) => [l.kind, String(l.amountMinor)]), ['subtotal', '4219'], ['total', '4219']]);
    expect(new Set(records.map((r) => r.invoice_number))).toEqual(new Set([goldenNumber]));

    const pdf = Buffer.from(await (await get('?format=pdf')).arrayBuffer());
    const again = await get('?format=pdf');
    expect(again.headers.get('content-type')).toBe('application/pdf');
    expect(again.headers.get('content-disposition')).toBe(`attachment; filename="invoice-${goldenNumber}.pdf"`);
    const second = Buffer.from(await again.arrayBuffer());
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
    expect(second.equals(pdf)).toBe(true);
    const stored = await db().selectFrom('invoices').select(['pdf_sha256']).where('number', '=', goldenNumber).executeTakeFirstOrThrow();
    expect(stored.pdf_sha256!.toString('hex')).toBe(createHash('sha256').update(pdf).digest('hex'));

    // A real invoice: its number and total are in the text.
    const dir = mkdtempSync(path.join(tmpdir(), 'tenantry-invoice-'));
    try {
      writeFileSync(path.join(dir, 'invoice.pdf'), pdf);
      const { stdout } = await run('pdftotext', ['-raw', '-enc', 'UTF-8', path.join(dir, 'invoice.pdf'), '-']);
      const text = stdout.replace(/\s+/g, '');
      expect(text).toContain(goldenNumber);
      expect(text).toContain('GoldenGoods');
      expect(text).toContain('42.19USD');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    // The tenant's own route: the same bytes.
    const own = await fetch(`${stack.api.baseUrl}/v1/invoices/${goldenNumber}?format=pdf`, { headers: { authorization: `Bearer ${golden.token}` } });
    expect(own.status).toBe(200);
    expect(Buffer.from(await own.arrayBuffer()).equals(pdf)).toBe(true);
  });

  it('a format outside json/csv/pdf is 400; a number that does not exist is 404; a malformed one 400', async () => {
    const bad = await stack.admin('GET', `/v1/tenants/${golden.tenantId}/invoices/${goldenNumber}?format=xml`);
    expect([bad.status, bad.body.code, bad.body.fields[0].field]).toEqual([400, 'validation_failed', 'format']);
    const ownBad = await request(stack.api.baseUrl, 'GET', `/v1/invoices/${goldenNumber}?format=docx`, { token: golden.token });
    expect(ownBad.status).toBe(400);
    const missing = await stack.admin('GET', `/v1/tenants/${golden.tenantId}/invoices/INV-2026-999999`);
    expect([missing.status, missing.body.code]).toEqual([404, 'invoice_not_found']);
    const malformed = await stack.admin('GET', `/v1/tenants/${golden.tenantId}/invoices/42`);
    expect(malformed.status).toBe(400);
    const noTenant = await stack.admin('GET', `/v1/tenants/ten_${'0'.repeat(32)}/invoices/${goldenNumber}`);
    expect([noTenant.status, noTenant.body.code]).toEqual([404, 'tenant_not_found']);
  });

  it("a tenant never reads another tenant's invoice: 404, as if it did not exist, in every format", async () => {
    const mine = await request(stack.api.baseUrl, 'GET', '/v1/invoices', { token: golden.token });
    expect(mine.body.items.map((i: { number: string }) => i.number)).toEqual([goldenNumber]);
    const theirs = await request(stack.api.baseUrl, 'GET', '/v1/invoices', { token: other.token });
    expect(theirs.body.items).toEqual([]);
    for (const format of ['json', 'csv', 'pdf']) {
      const res = await request(stack.api.baseUrl, 'GET', `/v1/invoices/${goldenNumber}?format=${format}`, { token: other.token });
      expect([res.status, res.body.code], format).toEqual([404, 'invoice_not_found']);
      // Nor through the platform route under the other tenant's id.
      const crossed = await stack.admin('GET', `/v1/tenants/${other.tenantId}/invoices/${goldenNumber}?format=${format}`);
      expect(crossed.status, format).toBe(404);
    }
    // A tenant credential on the platform routes is refused outright.
    const asTenant = await request(stack.api.baseUrl, 'GET', `/v1/tenants/${golden.tenantId}/invoices`, { token: other.token });
    expect(asTenant.status).toBe(403);
  });
});

describe('corrections', () => {
  it('a void cancels the invoice under a number of its own, and a replacement references it; the original never changes', async () => {
    // Late usage found after the close: 100,000 more requests in March.
    await count(golden.tenantId, 'apiRequests', '2026-03-25T09:00:00Z', 100_000);
    const before = await invoice(golden.tenantId, goldenNumber);
    const res = await stack.admin('POST', `/v1/tenants/${golden.tenantId}/invoices/${goldenNumber}/void`, { body: { reason: 'late usage from a restored api instance' } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const { void: voided, replacement } = res.body;
    expect(voided).toMatchObject({ status: 'void', month: '2026-03', voids: goldenNumber, totalMinor: -4_219 });
    // 1,334,567 requests: 34 blocks instead of 24, +100.
    expect(replacement).toMatchObject({ status: 'finalized', month: '2026-03', replaces: goldenNumber, totalMinor: 4_319, voidedBy: null });
    expect(Number(replacement.number.slice(-6))).toBe(Number(voided.number.slice(-6)) + 1);

    expect(await invoice(golden.tenantId, goldenNumber)).toEqual(before);
    const voidDoc = await invoice(golden.tenantId, voided.number);
    expect(voidDoc.lines.map((l: { amountMinor: number }) => l.amountMinor)).toEqual(before.lines.map((l: { amountMinor: number }) => -l.amountMinor));
    expect((await invoice(golden.tenantId, replacement.number)).lines[1]).toMatchObject({ quantity: '34', amountMinor: 340 });

    const list = await invoicesOf(golden.tenantId);
    expect(list.map((i) => [i.number, i.status, i.voidedBy])).toEqual([
      [replacement.number, 'finalized', null],
      [voided.number, 'void', null],
      [goldenNumber, 'finalized', voided.number],
    ]);

    // Voiding again, or voiding the void: 409, nothing changes.
    const again = await stack.admin('POST', `/v1/tenants/${golden.tenantId}/invoices/${goldenNumber}/void`, { body: { reason: 'twice' } });
    expect([again.status, again.body.code]).toEqual([409, 'invoice_already_voided']);
    const ofVoid = await stack.admin('POST', `/v1/tenants/${golden.tenantId}/invoices/${voided.number}/void`, { body: { reason: 'void of a void' } });
    expect([ofVoid.status, ofVoid.body.code]).toEqual([409, 'invoice_is_a_void']);
    expect(await invoicesOf(golden.tenantId)).toHaveLength(3);
    // Another tenant's number through this tenant's path: 404.
    const crossed = await stack.admin('POST', `/v1/tenants/${other.tenantId}/invoices/${replacement.number}/void`, { body: { reason: 'not theirs' } });
    expect(crossed.status).toBe(404);

    // The month is closed for good: a close finds its live invoice and makes none.
    expect((await closeMonth('2026-03')).created).toBe(0);
    const audit = await db().selectFrom('audit_log').select(['actor', 'data']).where('action', '=', 'invoice.voided').execute();
    expect(audit).toEqual([
      { actor: 'platform:env:1', data: { number: goldenNumber, void: voided.number, replacement: replacement.number, reason: 'late usage from a restored api instance' } },
    ]);
    const voidedEvent = await waitFor(async () => received.find((r) => r.body.includes('"invoice.voided"')));
    expect(JSON.parse(voidedEvent.body).data).toMatchObject({ invoice: { number: voided.number, voids: goldenNumber }, reason: 'late usage from a restored api instance' });
  });
});

describe('the current month: the live draft and availability', () => {
  let draftTenant: { tenantId: string; token: string };
  let probed: { tenantId: string; token: string };
  const now = new Date();
  const month = monthOf(now);
  const monthStart = `${month}-01T00:00:00Z`;
  const nextMonth = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));

  it('the draft is the month so far, from the same code as the close', async () => {
    draftTenant = await stack.signUpTenant({ orgName: 'Drafty Devices' });
    // On pro since this month began (not before: the worker's hourly pass may close last
    // month meanwhile); usage in its first hour, which is past whatever the day.
    await setHistory(draftTenant.tenantId, [[monthStart, 'active', 'pro']]);
    await count(draftTenant.tenantId, 'apiRequests', monthStart, 1_500_000);
    await count(draftTenant.tenantId, 'egressBytes', monthStart, 80 * GiB);
    await sample(draftTenant.tenantId, 'realtimeConnections', monthStart, 612);

    const res = await stack.admin('GET', `/v1/tenants/${draftTenant.tenantId}/invoices/upcoming`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ status: 'draft', number: null, month, periodFrom: new Date(monthStart).toISOString() });
    expect(Date.parse(res.body.periodTo)).toBeLessThanOrEqual(Date.now());
    // The month's whole allowance: 500,000 over → 50 blocks; 30 GiB over → 270; peak 612 → 112.
    expect(res.body.lines.filter((l: { kind: string }) => l.kind !== 'base').map((l: { kind: string; amountMinor: number }) => [l.kind, l.amountMinor])).toEqual([
      ['apiRequests', 500],
      ['egressBytes', 270],
      ['storageBytes', 0],
      ['fileStorageBytes', 0],
      ['realtimeConnections', 112],
    ]);
    // Nothing is billed to a tenant still being provisioned, or whose history says deleted: 404.
    await setHistory(other.tenantId, [['2020-01-01T00:00:00Z', 'pending_deletion', 'trial']]);
    const none = await stack.admin('GET', `/v1/tenants/${other.tenantId}/invoices/upcoming`);
    expect([none.status, none.body.code]).toEqual([404, 'no_upcoming_invoice']);
    (globalThis as Record<string, unknown>).draftUsageLines = res.body.lines.filter((l: { kind: string }) => l.kind !== 'base');
  });

  it('probes that fail lower the availability the usage API shows', async () => {
    probed = await stack.signUpTenant({ orgName: 'Probed Platforms' });
    // Pro from now: its SLA promises 99.9 %.
    expect((await stack.admin('PUT', `/v1/tenants/${probed.tenantId}/billing-state`, { body: { plan: 'pro' } })).status).toBe(200);
    const uuid = uuidOf(probed.tenantId);
    const { schema_name } = await db().selectFrom('tenants').select('schema_name').where('id', '=', uuid).executeTakeFirstOrThrow();
    for (let i = 0; i < 20; i++) await stack.worker!.probeTenants();
    // Its store breaks for one probe.
    await sql`alter schema ${sql.id(schema_name!)} rename to ${sql.id(`${schema_name}_away`)}`.execute(db());
    try {
      expect((await stack.worker!.probeTenants()).failed).toBeGreaterThanOrEqual(1);
    } finally {
      await sql`alter schema ${sql.id(`${schema_name}_away`)} rename to ${sql.id(schema_name!)}`.execute(db());
    }
    for (let i = 0; i < 19; i++) await stack.worker!.probeTenants();

    const usage = await stack.admin('GET', `/v1/tenants/${probed.tenantId}/usage`);
    const { probes, up, ratio } = usage.body.meters.availability;
    expect(probes - up).toBe(1);
    expect(probes).toBeGreaterThanOrEqual(40);
    expect(ratio).toBeCloseTo(up / probes, 10);
    // The tenant sees the same on its own report.
    const own = await request(stack.api.baseUrl, 'GET', '/v1/usage', { token: probed.token });
    expect(own.body.meters.availability).toEqual({ probes, up, ratio });
  });

  it('closing the month: the final invoice agrees with the draft on the same usage, and a month below the SLA gets its credit', async () => {
    const closeAt = new Date(nextMonth.getTime() + 13 * 3_600_000);
    const result = await stack.worker!.closeMonth(month, closeAt);
    expect(result.failed).toEqual([]);
    // The platform's own default tenant, active all along, is never invoiced.
    const platform = await sql<{ n: number }>`select count(*)::int as n from invoices i join tenants t on t.id = i.tenant_id where t.is_default`.execute(db());
    expect(platform.rows[0]!.n).toBe(0);

    const [final] = await invoicesOf(draftTenant.tenantId);
    const doc = await invoice(draftTenant.tenantId, final!.number);
    const strip = (l: Record<string, unknown>) => ({ kind: l.kind, description: l.description, quantity: l.quantity, unitPriceMinor: l.unitPriceMinor, amountMinor: l.amountMinor });
    const draftLines = (globalThis as Record<string, unknown>).draftUsageLines as Array<Record<string, unknown>>;
    expect(doc.lines.filter((l: { kind: string }) => l.kind !== 'base').map(strip)).toEqual(draftLines.map(strip));
    expect(doc.lines[0]).toMatchObject({ kind: 'base', quantity: '1.000000', amountMinor: 2_500 });

    // Availability (1 failed probe in ≥ 40): ≥ 97.5 % and < 99 %, or ≥ 99 % and < 99.9 %: the tier the ratio falls in.
    const usage = await stack.admin('GET', `/v1/tenants/${probed.tenantId}/usage/${month}`);
    const { probes, up } = usage.body.meters.availability;
    const ppm = Math.floor((up * 1_000_000) / probes);
    const percent = ppm < 950_000 ? 100 : ppm < 990_000 ? 25 : ppm < 999_000 ? 10 : 0;
    expect(percent).toBeGreaterThan(0);
    const [item] = await invoicesOf(probed.tenantId);
    const probedDoc = await invoice(probed.tenantId, item!.number);
    const proLines = probedDoc.lines.filter((l: { plan: string; kind: string }) => l.plan === 'pro' && l.kind !== 'slaCredit');
    const charges = proLines.reduce((sum: number, l: { amountMinor: number }) => sum + l.amountMinor, 0);
    const credit = probedDoc.lines.find((l: { kind: string }) => l.kind === 'slaCredit');
    expect(credit).toMatchObject({ plan: 'pro', quantity: String(percent), unit: 'percent', unitPriceMinor: -charges, amountMinor: -Math.floor((charges * percent + 50) / 100) });
    expect(credit.description).toContain(`availability ${(Math.floor(ppm / 10) / 1000).toFixed(3)} %`);
    expect(probedDoc.totalMinor).toBe(probedDoc.lines.reduce((sum: number, l: { amountMinor: number }) => sum + l.amountMinor, 0));
    // The trial it started on is best effort: no credit for that stretch.
    expect(probedDoc.lines.filter((l: { kind: string }) => l.kind === 'slaCredit')).toHaveLength(1);
  });
});

describe('the plan history', () => {
  it('every lifecycle and plan change is recorded as it happens, by the real routes', async () => {
    const t = await stack.signUpTenant({ orgName: 'Historic Holdings' });
    const steps: Array<[string, string, unknown]> = [
      ['PUT', 'billing-state', { plan: 'pro' }],
      ['POST', 'suspend', { reason: 'unpaid invoice' }],
      ['POST', 'unsuspend', {}],
      ['PATCH', '', { plan: 'enterprise' }],
      ['DELETE', '', undefined],
      ['POST', 'restore', {}],
    ];
    for (const [method, action, body] of steps) {
      const res = await stack.admin(method, `/v1/tenants/${t.tenantId}${action ? `/${action}` : ''}`, body === undefined ? {} : { body });
      expect(res.status, `${method} ${action}: ${JSON.stringify(res.body)}`).toBe(200);
    }
    const history = await db()
      .selectFrom('tenant_billing_history')
      .select(['status', 'plan', 'plan_version', 'at'])
      .where('tenant_id', '=', uuidOf(t.tenantId))
      .orderBy('at')
      .orderBy('id')
      .execute();
    expect(history.map((h) => [h.status, h.plan])).toEqual([
      ['provisioning', 'trial'],
      ['active', 'trial'],
      ['active', 'pro'],
      ['suspended', 'pro'],
      ['active', 'pro'],
      ['active', 'enterprise'],
      ['pending_deletion', 'enterprise'],
      ['active', 'enterprise'],
    ]);
    const times = history.map((h) => new Date(h.at).getTime());
    expect(times).toEqual([...times].sort((a, b) => a - b));

    // The draft cuts the month the same way: a segment per plan, in order, ending on
    // enterprise (changes within one second are billed to the second: a stretch shorter
    // than that has no line). A second later, so that the last one has begun.
    await new Promise((resolve) => setTimeout(resolve, 1_000 - (Date.now() % 1_000) + 10));
    const draft = await stack.admin('GET', `/v1/tenants/${t.tenantId}/invoices/upcoming`);
    expect(draft.status, JSON.stringify(draft.body)).toBe(200);
    const plans = draft.body.lines.filter((l: { kind: string }) => l.kind === 'base').map((l: { plan: string }) => l.plan);
    expect(plans.at(-1)).toBe('enterprise');
    expect(plans).toEqual([...plans].sort((a: string, b: string) => ['trial', 'pro', 'enterprise'].indexOf(a) - ['trial', 'pro', 'enterprise'].indexOf(b)));
  });
});
