import { BillingStateView, GetTenantRequest, UpdateBillingStateRequest } from '@tenantry/domain';
import { getBillingState, updateBillingState } from '../services/billing-state.js';
import { hostedPlatformProcedure, router } from '../trpc.js';

/** Billing state is hosted-only and platform-only: no tenant token reaches it, not even for its own tenant. */
export const billingRouter = router({
  get: hostedPlatformProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/tenants/{id}/billing-state',
        summary: "Read a tenant's billing state",
        description: "The tenant's plan, subscription state, overrides of capabilities and limits, and the effective entitlements they resolve to. Hosted mode only.",
        auth: 'platform',
      },
    })
    .input(GetTenantRequest)
    .output(BillingStateView)
    .query(({ ctx, input }) => getBillingState(ctx.deps.db, input.id)),

  update: hostedPlatformProcedure
    .meta({
      rest: {
        method: 'PUT',
        path: '/tenants/{id}/billing-state',
        summary: "Change a tenant's billing state",
        description: "Changes the plan, the subscription state (only along the allowed transitions: 409 otherwise), or per-tenant overrides of capabilities and limits (the operator's \"edit quotas\"). Every api instance sees the change within a second. Audited with before and after. Hosted mode only.",
        auth: 'platform',
      },
    })
    .input(UpdateBillingStateRequest)
    .output(BillingStateView)
    .mutation(({ ctx, input }) => updateBillingState(ctx.deps, ctx.principal, input)),
});
