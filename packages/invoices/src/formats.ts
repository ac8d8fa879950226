import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { type InvoiceDocument, formatMoney } from '@tenantry/domain';
import { stringify } from 'csv-stringify/sync';

/**
 * Renderings of the canonical JSON invoice. Each is a pure function of the document, so
 * the same document always gives the same bytes (the month close stores finalized PDFs
 * with their sha256).
 */

export type InvoiceFormat = 'json' | 'csv' | 'pdf';

// ---- CSV ---------------------------------------------------------------------------------

const CSV_COLUMNS = [
  'invoice_number',
  'tenant_id',
  'tenant_name',
  'month',
  'status',
  'currency',
  'kind',
  'description',
  'quantity',
  'unit',
  'unit_price_minor',
  'amount_minor',
  'plan',
  'plan_version',
  'from',
  'to',
] as const;

/**
 * RFC 4180 (CRLF records, quotes doubled), one record per line plus a subtotal and a
 * total record. Tenant names are the tenant's own text: a name like `=HYPERLINK(…)` must
 * not become a formula in the operator's spreadsheet, so cells that a spreadsheet would
 * evaluate get csv-stringify's `'` prefix (OWASP's CSV-injection advice). Money columns
 * are numbers and stay numbers, negative ones included.
 */
export function invoiceToCsv(doc: InvoiceDocument): string {
  const common = {
    invoice_number: doc.number ?? '',
    tenant_id: doc.tenantId ?? '',
    tenant_name: doc.tenantName ?? '',
    month: doc.month,
    status: doc.status,
    currency: doc.currency,
  };
  const blank = { quantity: '', unit: '', unit_price_minor: '', plan: '', plan_version: '', from: doc.periodFrom, to: doc.periodTo };
  const records = [
    ...doc.lines.map((l) => ({
      ...common,
      kind: l.kind,
      description: l.description,
      quantity: l.quantity,
      unit: l.unit,
      unit_price_minor: l.unitPriceMinor,
      amount_minor: l.amountMinor,
      plan: l.plan,
      plan_version: l.planVersion,
      from: l.from,
      to: l.to,
    })),
    { ...common, ...blank, kind: 'subtotal', description: 'Subtotal', amount_minor: doc.subtotalMinor },
    { ...common, ...blank, kind: 'total', description: 'Total', amount_minor: doc.totalMinor },
  ];
  return stringify(records, { header: true, columns: [...CSV_COLUMNS], record_delimiter: 'windows', escape_formulas: true });
}

// ---- PDF ---------------------------------------------------------------------------------

/**
 * DejaVu Sans (free licence, shipped in the dejavu-fonts-ttf npm package), embedded as a
 * subset: the PDF renders the same everywhere and never depends on the reader's or the
 * server's system fonts, and covers the accents and scripts tenant names come in.
 */
let pdfkit: Promise<typeof import('pdfkit')> | undefined;
/** PDFKit, loaded by the first PDF: it costs a process start about a quarter of a second of CPU, and most never render one. */
const loadPdfKit = () => (pdfkit ??= import('pdfkit').then((module) => module.default));

const FONT_DIR = join(dirname(createRequire(import.meta.url).resolve('dejavu-fonts-ttf/package.json')), 'ttf');
let fonts: { regular: Buffer; bold: Buffer } | undefined;
function loadFonts() {
  fonts ??= { regular: readFileSync(join(FONT_DIR, 'DejaVuSans.ttf')), bold: readFileSync(join(FONT_DIR, 'DejaVuSans-Bold.ttf')) };
  return fonts;
}

const TITLES: Record<InvoiceDocument['status'], string> = {
  finalized: 'Invoice',
  draft: 'Draft invoice',
  estimate: 'Estimate',
  void: 'Void invoice',
};

const day = (iso: string) => iso.slice(0, 10);

export function invoiceTitle(doc: InvoiceDocument): string {
  return doc.number ? `${TITLES[doc.status]} ${doc.number}` : `${TITLES[doc.status]} ${doc.month}`;
}

/**
 * A one-page-or-more A4 invoice: issuer, customer, number, period, lines, totals and
 * currency. CreationDate and the file ID derive from the document (issuedAt, else the
 * period's end), never from the clock, so rendering is byte-for-byte reproducible.
 */
export async function invoiceToPdf(doc: InvoiceDocument): Promise<Buffer> {
  const PDFDocument = await loadPdfKit();
  const { regular, bold } = loadFonts();
  const stamp = new Date(doc.issuedAt ?? doc.periodTo);
  const pdf = new PDFDocument({
    size: 'A4',
    margin: 50,
    font: regular as unknown as string,
    info: { Title: invoiceTitle(doc), Author: doc.issuer.name, Creator: 'Tenantry', Producer: 'Tenantry', CreationDate: stamp, ModDate: stamp },
    bufferPages: false,
  });
  pdf.registerFont('regular', regular);
  pdf.registerFont('bold', bold);
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    pdf.on('data', (chunk: Buffer) => chunks.push(chunk));
    pdf.on('end', () => resolve(Buffer.concat(chunks)));
    pdf.on('error', reject);
  });

  const left = pdf.page.margins.left;
  const width = pdf.page.width - left - pdf.page.margins.right;
  const money = (minor: number) => formatMoney(minor, doc.currency);

  pdf.font('bold').fontSize(20).text(invoiceTitle(doc), left, 50);
  pdf.moveDown(0.5);
  pdf.font('bold').fontSize(10).text(doc.issuer.name);
  pdf.font('regular');
  for (const lineOfAddress of doc.issuer.address) pdf.text(lineOfAddress);
  pdf.moveDown();

  const facts: Array<[string, string]> = [
    ['Invoice number', doc.number ?? `(none: ${doc.status})`],
    ['Bill to', doc.tenantName ? `${doc.tenantName}${doc.tenantId ? ` (${doc.tenantId})` : ''}` : (doc.tenantId ?? '—')],
    ['Month', doc.month],
    ['Period', `${day(doc.periodFrom)} – ${day(doc.periodTo)} (UTC, end exclusive)`],
    ['Issued', doc.issuedAt ? day(doc.issuedAt) : '—'],
    ['Currency', doc.currency],
    ['Price book', `v${doc.planVersion}`],
  ];
  if (doc.voids) facts.push(['Cancels invoice', doc.voids]);
  if (doc.replaces) facts.push(['Replaces invoice', doc.replaces]);
  for (const [label, value] of facts) {
    const y = pdf.y;
    pdf.font('bold').text(label, left, y, { width: 110 });
    pdf.font('regular').text(value, left + 115, y, { width: width - 115 });
  }
  pdf.moveDown(1.5);

  const columns = [
    { title: 'Description', width: width - 250, align: 'left' as const },
    { title: 'Quantity', width: 70, align: 'right' as const },
    { title: 'Unit price', width: 85, align: 'right' as const },
    { title: 'Amount', width: 95, align: 'right' as const },
  ];
  const row = (cells: string[], font: 'regular' | 'bold') => {
    pdf.font(font).fontSize(9);
    const height = Math.max(...cells.map((c, i) => pdf.heightOfString(c, { width: columns[i]!.width - 6 })));
    if (pdf.y + height > pdf.page.height - pdf.page.margins.bottom - 40) pdf.addPage();
    const y = pdf.y;
    let x = left;
    cells.forEach((cell, i) => {
      pdf.text(cell, x, y, { width: columns[i]!.width - 6, align: columns[i]!.align });
      x += columns[i]!.width;
    });
    pdf.y = y + height + 6;
    pdf.x = left;
  };
  row(columns.map((c) => c.title), 'bold');
  pdf.moveTo(left, pdf.y - 3).lineTo(left + width, pdf.y - 3).lineWidth(0.5).stroke();
  for (const l of doc.lines) row([l.description, `${l.quantity} ${l.unit}`, money(l.unitPriceMinor), money(l.amountMinor)], 'regular');
  pdf.moveTo(left, pdf.y - 3).lineTo(left + width, pdf.y - 3).stroke();
  row(['Subtotal', '', '', money(doc.subtotalMinor)], 'regular');
  row(['Total', '', '', money(doc.totalMinor)], 'bold');

  pdf.moveDown(2);
  pdf
    .font('regular')
    .fontSize(8)
    .text(
      `All amounts in ${doc.currency}. Storage is billed per GiB-month from the time-weighted average; quantities are rounded half-up to 3 decimals and each amount once, per line.`,
      left,
      pdf.y,
      { width },
    );
  pdf.end();
  return done;
}

// ---- HTTP --------------------------------------------------------------------------------

const CONTENT_TYPES: Record<InvoiceFormat, string> = {
  json: 'application/json; charset=utf-8',
  // RFC 4180 registers text/csv with an optional header parameter.
  csv: 'text/csv; charset=utf-8; header=present',
  pdf: 'application/pdf',
};

export function invoiceContentType(format: InvoiceFormat): string {
  return CONTENT_TYPES[format];
}

/** `invoice-INV-2026-000042.pdf`; only [A-Za-z0-9._-], so the header needs no escaping. */
export function invoiceFileName(doc: InvoiceDocument, format: InvoiceFormat): string {
  const stem = doc.number ? `invoice-${doc.number}` : `invoice-${doc.status}-${doc.month}`;
  return `${stem.replace(/[^A-Za-z0-9._-]/g, '_')}.${format}`;
}

/** Downloads (CSV, PDF) are attachments; JSON is shown inline. */
export function invoiceContentDisposition(doc: InvoiceDocument, format: InvoiceFormat): string {
  return `${format === 'json' ? 'inline' : 'attachment'}; filename="${invoiceFileName(doc, format)}"`;
}

/** The bytes and headers of an invoice in a format, for a route to send. */
export async function renderInvoice(doc: InvoiceDocument, format: InvoiceFormat): Promise<{ body: Buffer; headers: Record<string, string> }> {
  const body = format === 'pdf' ? await invoiceToPdf(doc) : Buffer.from(format === 'csv' ? invoiceToCsv(doc) : JSON.stringify(doc), 'utf8');
  return {
    body,
    headers: {
      'content-type': invoiceContentType(format),
      'content-disposition': invoiceContentDisposition(doc, format),
      'content-length': String(body.length),
    },
  };
}
