import { InvoiceDocument, PricingEstimateRequest } from '@tenantry/domain';
import { estimatePrice } from '../services/pricing.js';
import { publicProcedure, router } from '../trpc.js';

/** Public pricing: the calculator behind a pricing page. */
export const pricingRouter = router({
  estimate: publicProcedure
    .meta({ rest: { method: 'POST', path: '/pricing/estimate', rateLimited: true } })
    .input(PricingEstimateRequest)
    .output(InvoiceDocument)
    .mutation(({ ctx, input }) => estimatePrice(ctx.deps, input, ctx.clientIp)),
});
