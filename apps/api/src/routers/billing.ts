import { BillingStateView, GetTenantRequest, UpdateBillingStateRequest } from '@tenantry/domain';
import { getBillingState, updateBillingState } from '../services/billing-state.js';
import { hostedPlatformProcedure, router } from '../trpc.js';

/** Billing state is hosted-only and platform-only: no tenant token reaches it, not even for its own tenant. */
export const billingRouter = router({
  get: hostedPlatformProcedure
    .meta({ rest: { method: 'GET', path: '/tenants/{id}/billing-state', auth: 'platform' } })
    .input(GetTenantRequest)
    .output(BillingStateView)
    .query(({ ctx, input }) => getBillingState(ctx.deps.db, input.id)),

  update: hostedPlatformProcedure
    .meta({ rest: { method: 'PUT', path: '/tenants/{id}/billing-state', auth: 'platform' } })
    .input(UpdateBillingStateRequest)
    .output(BillingStateView)
    .mutation(({ ctx, input }) => updateBillingState(ctx.deps, ctx.principal, input)),
});
