import type { Db } from '@tenantry/db';
import { NotFoundError, fromPublicId } from '@tenantry/domain';
import type { ApiDeps } from '../context.js';
import { type BillingChange, applyBillingChange, toBillingStateView } from './billing.js';
import type { PlatformPrincipal } from './platform-keys.js';

async function tenantIdOf(db: Db, ref: string): Promise<string> {
  const id = fromPublicId('ten', ref);
  const row = await db
    .selectFrom('tenants')
    .select('id')
    .where(id ? 'id' : 'slug', '=', id ?? ref)
    .where('status', '!=', 'deleted')
    .executeTakeFirst();
  if (!row) throw new NotFoundError('Tenant', 'tenant_not_found');
  return row.id;
}

export async function getBillingState(db: Db, ref: string) {
  const tenantId = await tenantIdOf(db, ref);
  const row = await db.selectFrom('billing_states').selectAll().where('tenant_id', '=', tenantId).executeTakeFirst();
  if (!row) throw new NotFoundError('Billing state', 'billing_state_not_found');
  return toBillingStateView(row);
}

/** An operator overrides a tenant's billing state; every api instance sees it within a second. */
export async function updateBillingState(deps: ApiDeps, principal: PlatformPrincipal, input: BillingChange & { id: string }) {
  const tenantId = await tenantIdOf(deps.db, input.id);
  const { id: _ref, ...change } = input;
  const result = await deps.db
    .transaction()
    .execute((trx) => applyBillingChange(trx, tenantId, change, { actor: `platform:${principal.keyId}`, source: 'admin' }));
  // Only after commit: an instance reloading before it would cache the old state.
  await deps.onBillingChanged(tenantId);
  return toBillingStateView(result.applied ? result.after : result.current);
}
