import { InvoiceDocument, PricingEstimateRequest } from '@tenantry/domain';
import { estimatePrice } from '../services/pricing.js';
import { publicProcedure, router } from '../trpc.js';

/** Public pricing: the calculator behind a pricing page. */
export const pricingRouter = router({
  estimate: publicProcedure
    .meta({
      rest: {
        method: 'POST',
        path: '/pricing/estimate',
        summary: 'Price a month of usage',
        description:
          'The invoice a full month of the given usage would produce on a plan, at the current price book, computed by the same engine as the month close (storage as an average over the month). Public, limited per client address (429 with `Retry-After`).',
        rateLimited: true,
      },
    })
    .input(PricingEstimateRequest)
    .output(InvoiceDocument)
    .mutation(({ ctx, input }) => estimatePrice(ctx.deps, input, ctx.clientIp())),
});
