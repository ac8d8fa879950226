import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { InvoiceDocument } from '@tenantry/domain';
import { parse } from 'csv-parse/sync';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { computeInvoice } from './engine.js';
import { invoiceContentDisposition, invoiceContentType, invoiceToCsv, invoiceToPdf, renderInvoice } from './formats.js';

const run = promisify(execFile);
const GiB = 1n << 30n;
const dir = mkdtempSync(join(tmpdir(), 'tenantry-invoices-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sample(tenantName: string, overrides: Partial<InvoiceDocument> = {}): InvoiceDocument {
  const doc = computeInvoice({
    month: '2026-03',
    status: 'finalized',
    number: 'INV-2026-000042',
    issuedAt: new Date('2026-04-03T09:00:00Z'),
    segments: [
      {
        plan: 'pro',
        planVersion: 1,
        from: new Date('2026-03-01T00:00:00Z'),
        to: new Date('2026-03-11T00:00:00Z'),
        usage: {
          apiRequests: { total: 400_000 },
          egressBytes: { total: 0 },
          storageBytes: { byteSeconds: 0 },
          fileStorageBytes: { byteSeconds: 0 },
          realtimeConnections: { peak: 0 },
        },
      },
      {
        plan: 'enterprise',
        planVersion: 1,
        from: new Date('2026-03-11T00:00:00Z'),
        to: new Date('2026-04-01T00:00:00Z'),
        usage: {
          apiRequests: { total: 75_000_000 },
          egressBytes: { total: (2_500n * GiB).toString() },
          storageBytes: { byteSeconds: (600n * GiB * 21n * 86_400n).toString() },
          fileStorageBytes: { byteSeconds: 0 },
          realtimeConnections: { peak: 12_000 },
        },
      },
    ],
    tenant: { id: 'ten_0123456789abcdef0123456789abcdef', name: tenantName },
    currency: 'EUR',
    issuer: { name: 'Tenantry GmbH', address: ['Hauptstraße 1', '10115 Berlin'] },
  });
  return { ...doc, ...overrides };
}

/** The PDF's text as pdftotext (poppler-utils) extracts it, whitespace removed: wrapping may split a phrase anywhere. */
async function pdfText(pdf: Buffer): Promise<string> {
  const file = join(dir, `${createHash('sha256').update(pdf).digest('hex')}.pdf`);
  writeFileSync(file, pdf);
  const { stdout } = await run('pdftotext', ['-raw', '-enc', 'UTF-8', file, '-']);
  return stdout;
}
const squash = (s: string) => s.replace(/\s+/g, '');

describe('CSV', () => {
  it('round-trips through a real CSV parser: every line, the subtotal and the total', () => {
    const doc = sample('Acme, "the" company\nBerlin – Zürich');
    const csv = invoiceToCsv(doc);
    expect(csv).toContain('\r\n');
    const records = parse(csv, { columns: true }) as Array<Record<string, string>>;
    expect(records).toHaveLength(doc.lines.length + 2);
    doc.lines.forEach((line, i) => {
      expect(records[i]).toMatchObject({
        invoice_number: 'INV-2026-000042',
        tenant_name: 'Acme, "the" company\nBerlin – Zürich',
        currency: 'EUR',
        kind: line.kind,
        description: line.description,
        quantity: line.quantity,
        unit: line.unit,
        unit_price_minor: String(line.unitPriceMinor),
        amount_minor: String(line.amountMinor),
        plan: line.plan,
      });
    });
    expect(records.at(-2)).toMatchObject({ kind: 'subtotal', amount_minor: String(doc.subtotalMinor) });
    expect(records.at(-1)).toMatchObject({ kind: 'total', amount_minor: String(doc.totalMinor) });
    const sum = records.slice(0, -2).reduce((s, r) => s + Number(r.amount_minor), 0);
    expect(sum).toBe(doc.totalMinor);
  });

  it.each(['=HYPERLINK("https://evil.example","click")', '+1+2', '-2+3', '@SUM(A1:A9)', '\t=1', '＝1'])(
    'a tenant name that a spreadsheet would evaluate (%j) is neutralised with a leading quote',
    (name) => {
      const records = parse(invoiceToCsv(sample(name)), { columns: true }) as Array<Record<string, string>>;
      for (const record of records) expect(record.tenant_name).toBe(`'${name}`);
    },
  );

  it('negative amounts (credits) stay numbers, not escaped text', () => {
    const doc = sample('Acme');
    const credited = { ...doc, lines: [{ ...doc.lines[0]!, amountMinor: -500 }], subtotalMinor: -500, totalMinor: -500 };
    const records = parse(invoiceToCsv(credited), { columns: true }) as Array<Record<string, string>>;
    expect(records.map((r) => r.amount_minor)).toEqual(['-500', '-500', '-500']);
  });
});

describe('PDF', () => {
  it('is a real invoice: the text extracts and has the issuer, tenant, number, period, every line and the total', async () => {
    const doc = sample('Zoë’s Café & Co');
    const pdf = await invoiceToPdf(doc);
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
    const text = squash(await pdfText(pdf));
    for (const expected of [
      'Invoice INV-2026-000042',
      'Tenantry GmbH',
      'Hauptstraße 1',
      'Zoë’s Café & Co',
      doc.tenantId!,
      '2026-03-01 – 2026-04-01',
      'EUR',
      ...doc.lines.map((l) => l.description),
      ...doc.lines.map((l) => `${l.quantity} ${l.unit}`),
      'Total',
      // The total as the PDF prints it: grouped, two decimals for EUR.
      `${(doc.totalMinor / 100).toLocaleString('en-US', { minimumFractionDigits: 2 })} EUR`,
    ]) {
      expect(text, expected).toContain(squash(expected));
    }
  });

  it('embeds its TrueType font (no system font is needed to show it)', async () => {
    const file = join(dir, 'fonts.pdf');
    writeFileSync(file, await invoiceToPdf(sample('Acme')));
    const { stdout } = await run('pdffonts', [file]);
    const fonts = stdout.split('\n').slice(2).filter(Boolean);
    expect(fonts.length).toBeGreaterThan(0);
    for (const font of fonts) {
      expect(font).toMatch(/DejaVuSans/);
      // Columns: name type encoding emb sub uni object ID
      expect(font.split(/\s+/).slice(-5, -2), font).toEqual(['yes', 'yes', 'yes']);
    }
  });

  it('is deterministic: the same document renders to the same bytes, whenever it is rendered', async () => {
    const doc = sample('Acme');
    const first = await invoiceToPdf(doc);
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(new Date('2031-07-04T12:34:56Z'));
      const later = await invoiceToPdf(structuredClone(doc));
      expect(later.equals(first)).toBe(true);
    } finally {
      vi.useRealTimers();
    }
    const other = await invoiceToPdf({ ...doc, number: 'INV-2026-000043' });
    expect(other.equals(first)).toBe(false);
  });

  it('many lines flow onto further pages', async () => {
    const doc = sample('Acme');
    const many = { ...doc, lines: Array.from({ length: 60 }, (_, i) => ({ ...doc.lines[0]!, description: `Line number ${i + 1}` })) };
    const text = squash(await pdfText(await invoiceToPdf(many)));
    expect(text).toContain('Linenumber60');
    expect(text).toContain('Total');
  });
});

describe('HTTP helpers', () => {
  it('content types and a safe attachment name', async () => {
    const doc = sample('Acme');
    expect(invoiceContentType('csv')).toBe('text/csv; charset=utf-8; header=present');
    expect(invoiceContentType('pdf')).toBe('application/pdf');
    expect(invoiceContentDisposition(doc, 'pdf')).toBe('attachment; filename="invoice-INV-2026-000042.pdf"');
    expect(invoiceContentDisposition({ ...doc, number: null, status: 'draft' }, 'csv')).toBe('attachment; filename="invoice-draft-2026-03.csv"');
    expect(invoiceContentDisposition({ ...doc, number: 'x"; evil=1' }, 'csv')).toBe('attachment; filename="invoice-x___evil_1.csv"');
    const rendered = await renderInvoice(doc, 'json');
    expect(JSON.parse(rendered.body.toString())).toEqual(doc);
    expect(rendered.headers['content-length']).toBe(String(rendered.body.length));
  });
});
