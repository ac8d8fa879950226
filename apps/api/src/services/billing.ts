import type { Database } from '@tenantry/db';
import { type Capability, type Limits, type PlanId, entitlementsOf, toPublicId } from '@tenantry/domain';
import type { Selectable } from 'kysely';

type BillingRow = Selectable<Database['billing_states']>;

// The change itself lives in @tenantry/db: the worker (trial expiry) makes changes too.
export { applyBillingChange, type BillingChange, type BillingChangeResult } from '@tenantry/db';

export function toBillingStateView(row: BillingRow) {
  return {
    tenantId: toPublicId('ten', row.tenant_id),
    plan: row.plan as PlanId,
    subscriptionState: row.subscription_state,
    trialEndsAt: row.trial_ends_at ? new Date(row.trial_ends_at).toISOString() : null,
    planVersion: row.plan_version,
    capabilities: (row.capabilities as Capability[] | null) ?? null,
    limits: (row.limits as Partial<Limits> | null) ?? null,
    effective: entitlementsOf({
      plan: row.plan,
      planVersion: row.plan_version,
      subscriptionState: row.subscription_state,
      capabilities: row.capabilities as Capability[] | null,
      limits: row.limits as Partial<Limits> | null,
    }),
    updatedAt: row.updated_at.toISOString(),
  };
}
