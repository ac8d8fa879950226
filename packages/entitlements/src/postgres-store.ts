import type { Db } from '@tenantry/db';
import { Capability, Limits, SubscriptionState } from '@tenantry/domain';
import type { BillingRecord, BillingStore } from './database-source.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const LIMIT_KEYS = Object.keys(Limits.shape) as (keyof Limits)[];

/**
 * Billing state from the control-plane database: one primary-key lookup on
 * billing_states per load.
 */
export class PostgresBillingStore implements BillingStore {
  constructor(private readonly db: Db) {}

  async load(tenantId: string): Promise<BillingRecord | null> {
    // Not a tenant id at all: no billing state. Letting Postgres reject it (22P02) would
    // count as a store failure and put every tenant on the fallback path.
    if (!UUID.test(tenantId)) return null;
    const row = await this.db
      .selectFrom('billing_states')
      .select(['plan', 'plan_version', 'subscription_state', 'capabilities', 'limits'])
      .where('tenant_id', '=', tenantId)
      .executeTakeFirst();
    if (!row) return null;
    return {
      plan: row.plan,
      planVersion: row.plan_version,
      // The column has a check constraint; parse anyway so a surprise is loud.
      subscriptionState: SubscriptionState.parse(row.subscription_state),
      capabilities: row.capabilities === null ? null : knownCapabilities(row.capabilities),
      limits: row.limits === null ? null : knownLimits(row.limits),
    };
  }
}

/**
 * Overrides written by a newer version may name capabilities or limits this one does not
 * know: those are dropped (nothing here could enforce them), the rest is kept.
 */
function knownCapabilities(value: unknown): Capability[] {
  if (!Array.isArray(value)) return [];
  return value.filter((c): c is Capability => Capability.safeParse(c).success);
}

function knownLimits(value: unknown): Partial<Limits> {
  const out: Partial<Limits> = {};
  if (typeof value !== 'object' || value === null) return out;
  for (const key of LIMIT_KEYS) {
    const v = (value as Record<string, unknown>)[key];
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0) out[key] = v;
  }
  return out;
}
