import {
  type Capability,
  type Limits,
  NotFoundError,
  type PlanId,
  type SubscriptionState,
  assertSubscriptionTransition,
} from '@tenantry/domain';
import { type Selectable, type Transaction, sql } from 'kysely';
import { appendAudit } from './audit.js';
import type { Database } from './schema.js';

type BillingRow = Selectable<Database['billing_states']>;

export interface BillingChange {
  plan?: PlanId | undefined;
  subscriptionState?: SubscriptionState | undefined;
  /** null: back to the plan's capabilities. */
  capabilities?: Capability[] | null | undefined;
  /** null: back to the plan's limits. */
  limits?: Partial<Limits> | null | undefined;
  planVersion?: number | undefined;
}

export type BillingChangeResult =
  | { applied: true; before: BillingRow; after: BillingRow }
  /** An external event older than the newest one applied: state never moves backwards. */
  | { applied: false; reason: 'stale'; current: BillingRow };

/**
 * Apply a change to a tenant's billing state inside the caller's transaction, with its
 * audit entry (actor, before, after). The subscription state moves only along the
 * state machine (typed error otherwise). With `occurredAt` (an external billing event),
 * a change older than the last one applied is skipped, so out-of-order delivery cannot
 * regress the state. Callers invalidate entitlement caches after commit.
 */
export async function applyBillingChange(
  trx: Transaction<Database>,
  tenantId: string,
  change: BillingChange,
  audit: { actor: string; source: 'admin' | 'stripe' | 'trial_expiry'; eventId?: string },
  occurredAt?: Date,
): Promise<BillingChangeResult> {
  const before = await trx.selectFrom('billing_states').selectAll().where('tenant_id', '=', tenantId).forUpdate().executeTakeFirst();
  if (!before) throw new NotFoundError('Billing state', 'billing_state_not_found');
  if (occurredAt && before.last_event_at && occurredAt <= new Date(before.last_event_at)) {
    return { applied: false, reason: 'stale', current: before };
  }

  const from = before.subscription_state;
  const to = change.subscriptionState ?? from;
  assertSubscriptionTransition(from, to, before.state_before_suspension);
  const stateBeforeSuspension = to === 'suspended' ? (from === 'suspended' ? before.state_before_suspension : from) : null;

  const after = await trx
    .updateTable('billing_states')
    .set({
      ...(change.plan !== undefined ? { plan: change.plan } : {}),
      subscription_state: to,
      state_before_suspension: stateBeforeSuspension as BillingRow['state_before_suspension'],
      ...(change.capabilities !== undefined ? { capabilities: change.capabilities === null ? null : JSON.stringify(change.capabilities) } : {}),
      ...(change.limits !== undefined ? { limits: change.limits === null ? null : JSON.stringify(change.limits) } : {}),
      ...(change.planVersion !== undefined ? { plan_version: change.planVersion } : {}),
      ...(occurredAt ? { last_event_at: occurredAt } : {}),
      updated_at: sql`now()`,
    })
    .where('tenant_id', '=', tenantId)
    .returningAll()
    .executeTakeFirstOrThrow();
  if (change.plan !== undefined) {
    // The tenant row shows the plan in listings; keep them equal.
    await trx.updateTable('tenants').set({ plan: change.plan, updated_at: sql`now()` }).where('id', '=', tenantId).execute();
  }
  await appendAudit(trx, {
    actor: audit.actor,
    action: 'billing_state.updated',
    tenantId,
    data: { source: audit.source, ...(audit.eventId ? { eventId: audit.eventId } : {}), before: auditView(before), after: auditView(after) },
  });
  return { applied: true, before, after };
}

function auditView(row: BillingRow) {
  return {
    plan: row.plan,
    subscriptionState: row.subscription_state,
    capabilities: row.capabilities,
    limits: row.limits,
    planVersion: row.plan_version,
  };
}

