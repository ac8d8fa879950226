import { z } from 'zod';
import { ConflictError } from './lifecycle.js';
import { type Isolation, SubscriptionState } from './tenant.js';
import { PlanId } from './tenants-api.js';

/** What a plan can switch on. Names are stable: they appear in 403 codes and in licenses. */
export const Capability = z.enum(['isolation.database', 'isolation.cluster', 'realtime', 'files', 'api_keys']);
export type Capability = z.infer<typeof Capability>;

const count = z.number().int().nonnegative();

/** How much of each metered resource a tenant may use. */
export const Limits = z.strictObject({
  /** The tenant's database, as the storageBytes meter measures it. */
  storageBytes: count,
  /** All its files together (the fileStorageBytes meter). */
  fileStorageBytes: count,
  /** One file. */
  fileBytes: count,
  apiRequestsPerMinute: count,
  realtimeConnections: count,
  members: count,
});
export type Limits = z.infer<typeof Limits>;

export interface PlanDefinition {
  capabilities: readonly Capability[];
  limits: Limits;
  /** Whether usage is metered for billing (paid plans). */
  metersEnabled: boolean;
  /**
   * Streaming standbys of a cluster tenant on this plan, when more than the installation's
   * TENANT_CLUSTER_REPLICAS (a plan may raise it, never lower it). Unset: the installation's.
   */
  clusterReplicas?: number;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/**
 * The plan catalog. A tenant's billing state names a plan and may override its
 * capabilities and limits (an enterprise deal); `planVersion` lets a catalog change be
 * rolled out to tenants deliberately.
 */
export const PLAN_CATALOG: Readonly<Record<PlanId, PlanDefinition>> = {
  trial: {
    capabilities: ['files'],
    limits: { storageBytes: 1 * GiB, fileStorageBytes: 1 * GiB, fileBytes: 10 * MiB, apiRequestsPerMinute: 600, realtimeConnections: 10, members: 5 },
    metersEnabled: false,
  },
  free: {
    capabilities: ['files'],
    limits: { storageBytes: 500 * MiB, fileStorageBytes: 1 * GiB, fileBytes: 5 * MiB, apiRequestsPerMinute: 300, realtimeConnections: 5, members: 3 },
    metersEnabled: false,
  },
  pro: {
    capabilities: ['files', 'realtime', 'api_keys', 'isolation.database'],
    limits: { storageBytes: 50 * GiB, fileStorageBytes: 100 * GiB, fileBytes: 100 * MiB, apiRequestsPerMinute: 6_000, realtimeConnections: 500, members: 50 },
    metersEnabled: true,
  },
  enterprise: {
    capabilities: ['files', 'realtime', 'api_keys', 'isolation.database', 'isolation.cluster'],
    limits: { storageBytes: 1024 * GiB, fileStorageBytes: 10 * 1024 * GiB, fileBytes: 1 * GiB, apiRequestsPerMinute: 60_000, realtimeConnections: 10_000, members: 10_000 },
    metersEnabled: true,
  },
};

/** Isolation models every plan includes; any other needs the plan's `isolation.<model>` capability. */
const ISOLATION_IN_EVERY_PLAN: readonly Isolation[] = ['schema'];

/** Whether a catalog plan may use an isolation model. */
export function planHasIsolation(plan: string, isolation: Isolation): boolean {
  const definition = PLAN_CATALOG[plan as PlanId];
  return capabilitiesAllowIsolation(definition?.capabilities ?? [], isolation);
}

/** Whether a tenant's capabilities (its plan's, or its overrides) include an isolation model. */
export function capabilitiesAllowIsolation(capabilities: readonly string[], isolation: Isolation): boolean {
  return ISOLATION_IN_EVERY_PLAN.includes(isolation) || capabilities.includes(`isolation.${isolation}`);
}

/** The entitlements a trial gets; also what is served when billing state cannot be read (fail-open). */
export const TRIAL_DEFAULTS = PLAN_CATALOG.trial;

/**
 * Subscription states: trial → active | expired; active → grace; grace → active | expired;
 * any → suspended; suspended → the state it was suspended from. Staying in a state is not
 * a transition (and always allowed).
 *
 * One addition to that design: expired → active, a renewal. Without it a trial that ran out
 * could never become a paying customer, nor could a subscription Stripe marked unpaid be
 * revived when the invoice is finally paid. What stays illegal is moving backwards into
 * trial or grace, and leaving suspended for anything but where it came from.
 */
const SUBSCRIPTION_TRANSITIONS: Record<SubscriptionState, readonly SubscriptionState[]> = {
  trial: ['active', 'expired', 'suspended'],
  active: ['grace', 'suspended'],
  grace: ['active', 'expired', 'suspended'],
  expired: ['active', 'suspended'],
  suspended: [],
};

export class IllegalSubscriptionTransitionError extends ConflictError {
  constructor(
    readonly from: SubscriptionState,
    readonly to: SubscriptionState,
  ) {
    super('illegal_subscription_transition', `A subscription cannot go from ${from} to ${to}`);
  }
}

/** Check `from → to`; `previous` is the state a suspended subscription was suspended from. */
export function assertSubscriptionTransition(from: SubscriptionState, to: SubscriptionState, previous: SubscriptionState | null): void {
  if (from === to) return;
  const allowed = from === 'suspended' ? [previous ?? 'active'] : SUBSCRIPTION_TRANSITIONS[from];
  if (!allowed.includes(to)) throw new IllegalSubscriptionTransitionError(from, to);
}

/** States in which a tenant may read but not write. */
export function isReadOnly(state: SubscriptionState): boolean {
  return state === 'expired' || state === 'suspended';
}

/** What a tenant may do now: the answer of every EntitlementSource. */
export const Entitlements = z.object({
  plan: z.string(),
  planVersion: z.number().int().positive(),
  subscriptionState: SubscriptionState,
  capabilities: z.array(Capability),
  limits: Limits,
  metersEnabled: z.boolean(),
});
export type Entitlements = z.infer<typeof Entitlements>;

/** Resolve a plan plus optional overrides into entitlements. */
export function entitlementsOf(state: {
  plan: string;
  planVersion: number;
  subscriptionState: SubscriptionState;
  capabilities?: readonly Capability[] | null;
  limits?: Partial<Limits> | null;
}): Entitlements {
  const plan = PLAN_CATALOG[state.plan as PlanId] ?? TRIAL_DEFAULTS;
  return {
    plan: state.plan,
    planVersion: state.planVersion,
    subscriptionState: state.subscriptionState,
    capabilities: [...(state.capabilities ?? plan.capabilities)],
    limits: { ...plan.limits, ...(state.limits ?? {}) },
    metersEnabled: plan.metersEnabled,
  };
}

/** The admin view and update of a tenant's billing state (camelCase on the wire). */
export const BillingStateView = z.object({
  tenantId: z.string(),
  plan: PlanId,
  subscriptionState: SubscriptionState,
  trialEndsAt: z.string().nullable(),
  planVersion: z.number().int().positive(),
  capabilities: z.array(Capability).nullable(),
  limits: Limits.partial().nullable(),
  effective: Entitlements,
  updatedAt: z.string(),
});

export const UpdateBillingStateRequest = z
  .strictObject({
    id: z.string().min(1).max(64),
    plan: PlanId.optional(),
    subscriptionState: SubscriptionState.optional(),
    /** Replace the plan's capabilities; null returns to the plan's. */
    capabilities: z.array(Capability).max(20).nullable().optional(),
    /** Override some limits; null returns to the plan's. */
    limits: Limits.partial().nullable().optional(),
    planVersion: z.number().int().positive().optional(),
  })
  .refine((b) => Object.keys(b).some((k) => k !== 'id'), { message: 'give at least one field to change', path: ['plan'] });
