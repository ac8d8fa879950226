import { z } from 'zod';
import { pageLimit } from './paging.js';
import { Email, OrgName, Password } from './signup.js';
import { Isolation, TenantStatus } from './tenant.js';

/** The plans a tenant can be on. (The catalog with capabilities and limits comes with entitlements.) */
export const PlanId = z.enum(['trial', 'free', 'pro', 'enterprise']);
export type PlanId = z.infer<typeof PlanId>;

/** A tenant as the admin API shows it. */
export const TenantView = z.object({
  id: z.string(),
  slug: z.string(),
  name: z.string(),
  status: TenantStatus,
  plan: z.string(),
  isolation: Isolation,
  isDefault: z.boolean(),
  statusReason: z.string().nullable(),
  deleteAfter: z.string().nullable(),
  deletedAt: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type TenantView = z.infer<typeof TenantView>;

/** `ten_…` id or slug: both address a tenant in admin routes. */
export const TenantRef = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z0-9_-]+$/, 'must be a tenant id (ten_…) or slug');

export const CreateTenantRequest = z.strictObject({
  name: OrgName,
  ownerEmail: Email,
  ownerPassword: Password.optional(),
  plan: PlanId.optional(),
  isolation: Isolation.optional(),
});

export const CreateTenantAccepted = z.object({
  tenantId: z.string(),
  status: z.enum(['provisioning', 'active', 'suspended', 'pending_deletion', 'deleted', 'failed']),
});

export const MAX_PAGE_SIZE = 100;

export const ListTenantsRequest = z.strictObject({
  search: z.string().trim().min(1).max(64).optional(),
  plan: PlanId.optional(),
  status: TenantStatus.optional(),
  limit: pageLimit(MAX_PAGE_SIZE, 20),
  cursor: z.string().max(64).optional(),
});

/** A tenant in the list: its view and the storage it uses, for the operator's table. */
export const TenantListItem = TenantView.extend({
  /** The tenant's latest `storageBytes` sample (its database, as the worker measured it); null before the first. */
  storageBytes: z.number().int().nonnegative().nullable(),
});
export type TenantListItem = z.infer<typeof TenantListItem>;

export const TenantPage = z.object({
  items: z.array(TenantListItem),
  nextCursor: z.string().nullable(),
});

export const GetTenantRequest = z.strictObject({ id: TenantRef });

export const UpdateTenantRequest = z
  .strictObject({
    id: TenantRef,
    displayName: OrgName.optional(),
    plan: PlanId.optional(),
  })
  .refine((body) => body.displayName !== undefined || body.plan !== undefined, {
    message: 'give at least one of displayName, plan',
    path: ['displayName'],
  });

export const SuspendTenantRequest = z.strictObject({
  id: TenantRef,
  reason: z.string().trim().min(3, 'must be at least 3 characters').max(500, 'must be at most 500 characters'),
});

export const TenantActionRequest = z.strictObject({
  id: TenantRef,
  reason: z.string().trim().max(500).optional(),
});

export const TenantHealth = z.object({
  tenantId: z.string(),
  /** Active, and its store answered a real query just now. */
  healthy: z.boolean(),
  lifecycle: TenantStatus,
  provisioning: z.object({
    status: z.enum(['pending', 'provisioning', 'ready', 'failed']).nullable(),
    stepsDone: z.array(z.string()),
    lastError: z.string().nullable(),
  }),
  store: z.object({ ok: z.boolean(), latencyMs: z.number(), error: z.string().nullable() }).nullable(),
  dns: z.object({
    status: z.enum(['not_configured', 'ok', 'missing', 'unreachable']),
    /** The tenant's hostname, `<slug>.<TENANT_DNS_ZONE>`; null without per-tenant DNS. */
    name: z.string().nullable(),
  }),
  lastProbe: z
    .object({ at: z.string(), ok: z.boolean(), consecutiveFailures: z.number().int(), lastError: z.string().nullable() })
    .nullable(),
  /** Cluster tenants: each instance and the last failover, as the worker's watch last saw them; null for other models. */
  replication: z
    .object({
      instances: z.array(
        z.object({
          generation: z.number().int(),
          role: z.enum(['primary', 'standby']),
          state: z.string(),
          /** A standby that acknowledges commits (synchronous); null for a primary. */
          synchronous: z.boolean().nullable(),
          lagBytes: z.number().nullable(),
          lagSeconds: z.number().nullable(),
          downSince: z.string().nullable(),
          observedAt: z.string().nullable(),
        }),
      ),
      lastFailover: z
        .object({
          step: z.string(),
          fromGeneration: z.number().int().nullable(),
          toGeneration: z.number().int().nullable(),
          primaryDownSince: z.string(),
          startedAt: z.string(),
          promotedAt: z.string().nullable(),
          switchedAt: z.string().nullable(),
          finishedAt: z.string().nullable(),
          detectionSeconds: z.number(),
          promotionSeconds: z.number().nullable(),
          lastError: z.string().nullable(),
        })
        .nullable(),
    })
    .nullable(),
});
