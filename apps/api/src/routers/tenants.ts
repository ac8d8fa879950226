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
    .meta({
      rest: {
        method: 'POST',
        path: '/tenants',
        summary: 'Create a tenant',
        description: 'Queues the provisioning of a tenant with its owner, like signup but on any plan and isolation model the plan allows (403 `capability_missing` otherwise). Idempotent by owner email. Audited.',
        successStatus: 202,
        auth: 'platform',
      },
    })
    .input(CreateTenantInput)
    .output(CreateTenantAccepted)
    .mutation(({ ctx, input }) => createTenant(ctx.deps, ctx.principal, input)),

  list: platformProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/tenants',
        summary: 'List tenants',
        description: 'Lists tenants with search (name or slug, case-insensitive substring), plan and status filters, and keyset pagination (`cursor` from `nextCursor`): no item is lost or repeated while tenants are created. Each item carries `storageBytes`, the tenant\'s latest database storage sample (null before the first).',
        auth: 'platform',
      },
    })
    .input(ListTenantsRequest)
    .output(TenantPage)
    .query(({ ctx, input }) => listTenants(ctx.deps.db, input)),

  get: platformProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/tenants/{id}',
        summary: 'Read a tenant',
        description: 'One tenant by id (`ten_\u2026`) or slug.',
        auth: 'platform',
      },
    })
    .input(GetTenantRequest)
    .output(TenantView)
    .query(({ ctx, input }) => getTenant(ctx.deps.db, input.id)),

  update: platformProcedure
    .meta({
      rest: {
        method: 'PATCH',
        path: '/tenants/{id}',
        summary: 'Rename a tenant or change its plan',
        description: "Changes a tenant's display name, or its plan. Audited with before and after.",
        auth: 'platform',
      },
    })
    .input(UpdateTenantRequest)
    .output(TenantView)
    .mutation(({ ctx, input }) => updateTenant(ctx.deps, ctx.principal, input)),

  health: platformProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/tenants/{id}/health',
        summary: "A tenant's health",
        description: "The tenant's store health (probed now), its last recorded probes, its DNS name and whether the record resolves; for a cluster tenant, each instance (primary or standby: state, replication lag in bytes and seconds) and the last failover.",
        auth: 'platform',
      },
    })
    .input(GetTenantRequest)
    .output(TenantHealth)
    .query(({ ctx, input }) => tenantHealth(ctx.deps.db, ctx.deps.tenantStore, ctx.deps.dns, input.id)),

  delete: hostedPlatformProcedure
    .meta({
      rest: {
        method: 'DELETE',
        path: '/tenants/{id}',
        summary: 'Delete a tenant',
        description: 'Soft-deletes a tenant: it becomes `pending_deletion`, its credentials stop working, and its data is kept for the retention period, restorable, before the worker purges it. The default tenant cannot be deleted. Audited. Hosted mode only.',
        auth: 'platform',
      },
    })
    .input(TenantActionRequest)
    .output(TenantView)
    .mutation(({ ctx, input }) => transitionTenant(ctx.deps, ctx.principal, { ...input, action: 'delete' })),

  suspend: hostedPlatformProcedure
    .meta({
      rest: {
        method: 'POST',
        path: '/tenants/{id}/suspend',
        summary: 'Suspend a tenant',
        description: 'Suspends a tenant with a reason: its tenant calls answer 403 `tenant_suspended` until unsuspended; sessions and keys are kept. Audited. Hosted mode only.',
        auth: 'platform',
      },
    })
    .input(SuspendTenantRequest)
    .output(TenantView)
    .mutation(({ ctx, input }) => transitionTenant(ctx.deps, ctx.principal, { ...input, action: 'suspend' })),

  unsuspend: hostedPlatformProcedure
    .meta({
      rest: {
        method: 'POST',
        path: '/tenants/{id}/unsuspend',
        summary: 'Unsuspend a tenant',
        description: 'Gives a suspended tenant its access back. Audited. Hosted mode only.',
        auth: 'platform',
      },
    })
    .input(TenantActionRequest)
    .output(TenantView)
    .mutation(({ ctx, input }) => transitionTenant(ctx.deps, ctx.principal, { ...input, action: 'unsuspend' })),

  restore: hostedPlatformProcedure
    .meta({
      rest: {
        method: 'POST',
        path: '/tenants/{id}/restore',
        summary: 'Restore a deleted tenant',
        description: 'Takes a tenant out of `pending_deletion`, back to the state it was deleted from, within the retention period. Audited. Hosted mode only.',
        auth: 'platform',
      },
    })
    .input(TenantActionRequest)
    .output(TenantView)
    .mutation(({ ctx, input }) => transitionTenant(ctx.deps, ctx.principal, { ...input, action: 'restore' })),
});
