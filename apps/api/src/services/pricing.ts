import type { InvoiceDocument, PricingEstimateRequest } from '@tenantry/domain';
import { estimateInvoice } from '@tenantry/invoices';
import type { ApiDeps } from '../context.js';
import { consumeOrThrow } from './rate-limit.js';
import { rateLimitKeyOf } from '../http/client-address.js';

/** The pricing calculator: what a month of `usage` costs on a plan, by the month close's own engine. */
export async function estimatePrice(deps: ApiDeps, input: PricingEstimateRequest, clientIp: string): Promise<InvoiceDocument> {
  await consumeOrThrow(deps.pricingLimiter, rateLimitKeyOf(clientIp), () => deps.metrics.rateLimited.inc({ limiter: 'pricing' }));
  return estimateInvoice({
    plan: input.plan,
    usage: input.usage,
    now: new Date(),
    currency: deps.config.INVOICE_CURRENCY,
    issuer: { name: deps.config.INVOICE_ISSUER_NAME, address: deps.config.INVOICE_ISSUER_ADDRESS },
  });
}
