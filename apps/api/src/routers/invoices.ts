import {
  CloseMonthRequest,
  CloseMonthResult,
  FileDownload,
  GetTenantRequest,
  InvoiceDocument,
  InvoiceList,
  OwnInvoiceListRequest,
  OwnInvoiceRequest,
  TenantInvoiceListRequest,
  TenantInvoiceRequest,
  VoidInvoiceRequest,
  VoidInvoiceResult,
} from '@tenantry/domain';
import { z } from 'zod';
import { closeBillingMonth, getTenantInvoice, listTenantInvoices, upcomingInvoice, voidTenantInvoice } from '../services/invoices.js';
import { findTenant } from '../services/tenants.js';
import { hostedPlatformProcedure, platformProcedure, router, tenantProcedure } from '../trpc.js';

/** An invoice in the format asked for: the JSON document, or a CSV or PDF file. */
const InvoiceOrFile = z.union([InvoiceDocument, FileDownload]);
const FILES = ['text/csv', 'application/pdf'] as const;

const FORMATS =
  '`format=json` (default) is the canonical document; `csv` (RFC 4180) and `pdf` are rendered from it and sent as a download (`Content-Disposition: attachment`). A finalized invoice\'s PDF is rendered once and kept with its sha256: every download is the same bytes.';
const NUMBERING = 'Numbers are `INV-<year of issue>-<sequence>`, gapless across the installation.';

/** Invoices: what the month close finalized, the live draft, corrections. */
export const invoicesRouter = router({
  list: platformProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/tenants/{id}/invoices',
        summary: "A tenant's invoices",
        description: `The tenant's finalized invoices and voids, newest first (\`limit\`, \`cursor\`). ${NUMBERING} A voided invoice keeps its status and document and names the void that cancels it (\`voidedBy\`).`,
        auth: 'platform',
      },
    })
    .input(TenantInvoiceListRequest)
    .output(InvoiceList)
    .query(async ({ ctx, input }) => listTenantInvoices(ctx.deps, (await findTenant(ctx.deps.db, input.id)).id, input)),

  upcoming: platformProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/tenants/{id}/invoices/upcoming',
        summary: "A tenant's upcoming invoice (this month so far)",
        description:
          "The current month so far as a `draft` (no number), computed by the same code as the month close from the same rollups and plan history: the base fee up to now, usage lines as the final invoice will show them for the same usage. 404 `no_upcoming_invoice` when nothing is billed to the tenant this month (it is still being provisioned, or deleted).",
        auth: 'platform',
      },
    })
    .input(GetTenantRequest)
    .output(InvoiceDocument)
    .query(({ ctx, input }) => upcomingInvoice(ctx.deps, input.id)),

  get: platformProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/tenants/{id}/invoices/{number}',
        summary: "One of a tenant's invoices",
        description: `A finalized invoice or a void of the tenant, by number. ${FORMATS} A number of another tenant is 404, like one that does not exist.`,
        auth: 'platform',
        files: FILES,
      },
    })
    .input(TenantInvoiceRequest)
    .output(InvoiceOrFile)
    .query(async ({ ctx, input }) => getTenantInvoice(ctx.deps, (await findTenant(ctx.deps.db, input.id)).id, input.number, input.format)),

  void: hostedPlatformProcedure
    .meta({
      rest: {
        method: 'POST',
        path: '/tenants/{id}/invoices/{number}/void',
        summary: 'Void an invoice, and issue its correction',
        description:
          'A finalized invoice never changes: a correction is a `void` (the invoice\'s lines negated, under a number of its own, naming it in `voids`) and, unless `replace` is false, a new finalized invoice for the same month that names it in `replaces`, computed from the usage and plan history as they are now. One transaction; audited with the reason; announced as `invoice.voided` (and `invoice.finalized`). 409 if the invoice is a void or voided already. Hosted mode only.',
        auth: 'platform',
      },
    })
    .input(VoidInvoiceRequest)
    .output(VoidInvoiceResult)
    .mutation(({ ctx, input }) => voidTenantInvoice(ctx.deps, ctx.principal, input)),

  close: hostedPlatformProcedure
    .meta({
      rest: {
        method: 'POST',
        path: '/billing/close',
        summary: 'Close a month: finalize its invoices',
        description:
          "Finalizes one invoice for every tenant billed in a past month that has none yet, numbered in the tenants' creation order, each announced as `invoice.finalized`. The worker does this by itself once a month's grace period (`BILLING_CLOSE_GRACE_HOURS` after its end) is over; this closes a month on demand. Idempotent: closing a closed month again changes nothing. A month still within its grace period is 409 `month_in_grace_period` unless `force` (late usage after a forced close is not billed); the current month or a future one is 400. Audited. Hosted mode only.",
        auth: 'platform',
      },
    })
    .input(CloseMonthRequest)
    .output(CloseMonthResult)
    .mutation(({ ctx, input }) => closeBillingMonth(ctx.deps, ctx.principal, input)),

  own: tenantProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/invoices',
        summary: 'My invoices',
        description: `The calling tenant's own finalized invoices and voids, newest first (\`limit\`, \`cursor\`). ${NUMBERING}`,
        auth: 'tenant',
      },
    })
    .input(OwnInvoiceListRequest)
    .output(InvoiceList)
    .query(({ ctx, input }) => listTenantInvoices(ctx.deps, ctx.principal.tenantId, input)),

  ownGet: tenantProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/invoices/{number}',
        summary: 'One of my invoices',
        description: `One of the calling tenant's own invoices, by number. ${FORMATS} Another tenant's number is 404.`,
        auth: 'tenant',
        files: FILES,
      },
    })
    .input(OwnInvoiceRequest)
    .output(InvoiceOrFile)
    .query(({ ctx, input }) => getTenantInvoice(ctx.deps, ctx.principal.tenantId, input.number, input.format)),
});
