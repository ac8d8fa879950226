import {
  CreateTenantAccepted,
  CreateTenantRequest,
  GetTenantRequest,
  ListTenantsRequest,
  SuspendTenantRequest,
  TenantActionRequest,
  TenantPage,
  TenantHealth,
  TenantView,
  UpdateTenantRequest,
} from '@tenantry/domain';
import { tenantHealth } from '../services/tenant-health.js';
import { createTenant, getTenant, listTenants, transitionTenant, updateTenant } from '../services/tenants.js';
import { hostedPlatformProcedure, platformProcedure, router } from '../trpc.js';

/**
 * Lifecycle routes are hosted-mode only (404 otherwise), per the contract; reading,
 * creating and renaming tenants is for any deployment with a platform key.
 */
// Database and cluster isolation are checked against the plan in createTenant (403
// capability_missing), then against what this installation can provision (400).
const CreateTenantInput = CreateTenantRequest;

export const tenantsRouter = router({
  create: platformProcedure
    .meta({ rest: { method: 'POST', path: '/tenants', successStatus: 202, auth: 'platform' } })
    .input(CreateTenantInput)
    .output(CreateTenantAccepted)
    .mutation(({ ctx, input }) => createTenant(ctx.deps, ctx.principal, input)),

  list: platformProcedure
    .meta({ rest: { method: 'GET', path: '/tenants', auth: 'platform' } })
    .input(ListTenantsRequest)
    .output(TenantPage)
    .query(({ ctx, input }) => listTenants(ctx.deps.db, input)),

  get: platformProcedure
    .meta({ rest: { method: 'GET', path: '/tenants/{id}', auth: 'platform' } })
    .input(GetTenantRequest)
    .output(TenantView)
    .query(({ ctx, input }) => getTenant(ctx.deps.db, input.id)),

  update: platformProcedure
    .meta({ rest: { method: 'PATCH', path: '/tenants/{id}', auth: 'platform' } })
    .input(UpdateTenantRequest)
    .output(TenantView)
    .mutation(({ ctx, input }) => updateTenant(ctx.deps, ctx.principal, input)),

  health: platformProcedure
    .meta({ rest: { method: 'GET', path: '/tenants/{id}/health', auth: 'platform' } })
    .input(GetTenantRequest)
    .output(TenantHealth)
    .query(({ ctx, input }) => tenantHealth(ctx.deps.db, ctx.deps.tenantStore, ctx.deps.dns, input.id)),

  delete: hostedPlatformProcedure
    .meta({ rest: { method: 'DELETE', path: '/tenants/{id}', auth: 'platform' } })
    .input(TenantActionRequest)
    .output(TenantView)
    .mutation(({ ctx, input }) => transitionTenant(ctx.deps, ctx.principal, { ...input, action: 'delete' })),

  suspend: hostedPlatformProcedure
    .meta({ rest: { method: 'POST', path: '/tenants/{id}/suspend', auth: 'platform' } })
    .input(SuspendTenantRequest)
    .output(TenantView)
    .mutation(({ ctx, input }) => transitionTenant(ctx.deps, ctx.principal, { ...input, action: 'suspend' })),

  unsuspend: hostedPlatformProcedure
    .meta({ rest: { method: 'POST', path: '/tenants/{id}/unsuspend', auth: 'platform' } })
    .input(TenantActionRequest)
    .output(TenantView)
    .mutation(({ ctx, input }) => transitionTenant(ctx.deps, ctx.principal, { ...input, action: 'unsuspend' })),

  restore: hostedPlatformProcedure
    .meta({ rest: { method: 'POST', path: '/tenants/{id}/restore', auth: 'platform' } })
    .input(TenantActionRequest)
    .output(TenantView)
    .mutation(({ ctx, input }) => transitionTenant(ctx.deps, ctx.principal, { ...input, action: 'restore' })),
});
