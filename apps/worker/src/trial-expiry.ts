import { type Db, applyBillingChange } from '@tenantry/db';

const BATCH = 500;

/**
 * Move trials whose end has passed (by `now`) to `expired`: read-only until a plan is
 * bought. Idempotent — a second pass finds nothing — and each tenant is changed in its own
 * transaction with its audit entry; `announce` tells the api instances after the commit.
 */
export async function expireTrials(db: Db, now: Date, announce: (tenantId: string) => Promise<unknown>): Promise<number> {
  const due = await db
    .selectFrom('billing_states')
    .select('tenant_id')
    .where('subscription_state', '=', 'trial')
    .where('trial_ends_at', '<=', now)
    .orderBy('trial_ends_at')
    .limit(BATCH)
    .execute();
  let expired = 0;
  for (const { tenant_id: tenantId } of due) {
    const changed = await db.transaction().execute(async (trx) => {
      // Re-check under the row lock: an operator may have changed it since the scan.
      const still = await trx
        .selectFrom('billing_states')
        .select('tenant_id')
        .where('tenant_id', '=', tenantId)
        .where('subscription_state', '=', 'trial')
        .where('trial_ends_at', '<=', now)
        .forUpdate()
        .executeTakeFirst();
      if (!still) return false;
      await applyBillingChange(trx, tenantId, { subscriptionState: 'expired' }, { actor: 'system:worker', source: 'trial_expiry' });
      return true;
    });
    if (changed) {
      expired += 1;
      await announce(tenantId).catch(() => undefined);
    }
  }
  return expired;
}
