import { appendAudit, recordWebhookEvent, tenantEventData } from '@tenantry/db';
import type { Db, TenantUpdate } from '@tenantry/db';
import { nextStatus } from '@tenantry/domain';
import { sql } from 'kysely';
import { type TeardownTools, tearDownTenant } from './teardown.js';

/** At most this many tenants are purged per pass; the next pass takes the rest. */
const BATCH = 100;

/**
 * Purge every tenant whose retention ended by `now`. `now` is a parameter, not read
 * here, so the retention boundary can be driven from outside (tests, a manual run).
 */
export async function purgeDueTenants(
  db: Db,
  now: Date,
  tools: TeardownTools,
  announce: (deliveryIds: string[]) => Promise<void> = async () => undefined,
): Promise<number> {
  const due = await db
    .selectFrom('tenants')
    .select('id')
    .where('status', '=', 'pending_deletion')
    .where('delete_after', '<=', now)
    // A tenant in the middle of a move has storage in two places: purged once the move ends.
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('tenant_moves').select('tenant_moves.id').whereRef('tenant_moves.tenant_id', '=', 'tenants.id').where('tenant_moves.status', 'not in', ['done', 'rolled_back']))),
    )
    .orderBy('delete_after')
    .limit(BATCH)
    .execute();
  let purged = 0;
  for (const { id } of due) {
    const deliveries = await purgeTenant(db, id, now, tools);
    if (deliveries) {
      purged += 1;
      await announce(deliveries);
    }
  }
  return purged;
}

/**
 * Remove everything of one tenant but a tombstone row and its audit trail: its storage
 * (schema, or database and role, or instance — and with it the placement and encrypted
 * passwords on its row), its DNS record, sessions, memberships, the users who belonged to
 * no other tenant, billing state, provisioning records and signup (which frees the
 * owner's email). The teardown is the compensation's (teardown.ts).
 *
 * One transaction, so a purge killed half-way leaves the tenant still pending deletion
 * (and whole, where its storage is a schema), and the next pass does it all again.
 * Re-checks the state under a row lock: a tenant restored meanwhile is left alone.
 * Returns the deliveries of its `tenant.purged` webhook event, or null when nothing was purged.
 */
export async function purgeTenant(db: Db, tenantId: string, now: Date, tools: TeardownTools): Promise<string[] | null> {
  const deliveries: string[] = [];
  const purged = await tearDownTenant(db, tools, {
    async find(q, lock) {
      const query = q.selectFrom('tenants').selectAll().where('id', '=', tenantId);
      const tenant = await (lock ? query.forUpdate() : query).executeTakeFirst();
      if (!tenant || tenant.status !== 'pending_deletion' || !tenant.delete_after || new Date(tenant.delete_after) > now) return undefined;
      const to = nextStatus({ status: tenant.status, statusBeforeDeletion: tenant.status_before_deletion, isDefault: tenant.is_default }, 'purge');
      return { id: tenant.id, isolation: tenant.isolation, row: tenant, from: tenant.status, to, deleteAfter: new Date(tenant.delete_after) };
    },
    async finish(trx, { from, to, deleteAfter }) {
      await trx.deleteFrom('signups').where('tenant_id', '=', tenantId).execute();
      // Every placement column, whatever the model: the encrypted passwords go with what they opened.
      const placement = Object.fromEntries(tools.isolation.placementColumns.map((column) => [column, null])) as TenantUpdate;
      const tombstone = await trx
        .updateTable('tenants')
        .set({
          ...placement,
          status: to,
          status_before_deletion: null,
          deleted_at: sql`now()`,
          updated_at: sql`now()`,
        })
        .where('id', '=', tenantId)
        .returningAll()
        .executeTakeFirstOrThrow();
      await appendAudit(trx, {
        actor: 'system:worker',
        action: 'tenant.purged',
        tenantId,
        data: { from, to, deleteAfter: deleteAfter.toISOString() },
      });
      // Billing systems hear of the purge too: tenant.deleted said the data could still be
      // restored; this says it is gone and nothing more will be billed.
      deliveries.push(...(await recordWebhookEvent(trx, { type: 'tenant.purged', tenantId, data: { tenant: tenantEventData(tombstone) } })));
    },
  });
  return purged ? deliveries : null;
}
