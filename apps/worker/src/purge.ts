import type { DnsProvider } from '@tenantry/dns';
import { type Db, type LocalClusterProvisioner, type TenantDatabaseProvisioner, appendAudit, dropTenantSchema, recordWebhookEvent, tenantEventData } from '@tenantry/db';
import { nextStatus } from '@tenantry/domain';
import { sql } from 'kysely';

/** At most this many tenants are purged per pass; the next pass takes the rest. */
const BATCH = 100;

/**
 * Purge every tenant whose retention ended by `now`. `now` is a parameter, not read
 * here, so the retention boundary can be driven from outside (tests, a manual run).
 */
export async function purgeDueTenants(
  db: Db,
  now: Date,
  databases?: TenantDatabaseProvisioner,
  dns?: DnsProvider,
  clusters?: LocalClusterProvisioner,
  announce: (deliveryIds: string[]) => Promise<void> = async () => undefined,
): Promise<number> {
  const due = await db
    .selectFrom('tenants')
    .select('id')
    .where('status', '=', 'pending_deletion')
    .where('delete_after', '<=', now)
    .orderBy('delete_after')
    .limit(BATCH)
    .execute();
  let purged = 0;
  for (const { id } of due) {
    const deliveries = await purgeTenant(db, id, now, databases, dns, clusters);
    if (deliveries) {
      purged += 1;
      await announce(deliveries);
    }
  }
  return purged;
}

/**
 * Remove everything of one tenant but a tombstone row and its audit trail: its schema (or
 * its database, role and encrypted role password),
 * sessions, memberships, the users who belonged to no other tenant, billing state,
 * provisioning records and signup (which frees the owner's email).
 *
 * One transaction — DROP SCHEMA is transactional — so a purge killed half-way leaves the
 * tenant whole and still pending deletion, and the next pass does it all again. Re-checks
 * the state under a row lock: a tenant restored meanwhile is left alone. Returns the
 * deliveries of its `tenant.purged` webhook event, or null when nothing was purged.
 */
export async function purgeTenant(
  db: Db,
  tenantId: string,
  now: Date,
  databases?: TenantDatabaseProvisioner,
  dns?: DnsProvider,
  clusters?: LocalClusterProvisioner,
): Promise<string[] | null> {
  if (dns?.zone) {
    // Outside this database, so first and idempotently; the tombstone keeps the slug.
    const due = await db
      .selectFrom('tenants')
      .select('slug')
      .where('id', '=', tenantId)
      .where('status', '=', 'pending_deletion')
      .where('delete_after', '<=', now)
      .executeTakeFirst();
    if (!due) return null;
    await dns.removeTenantRecord(due.slug);
  }
  return db.transaction().execute(async (trx) => {
    const tenant = await trx.selectFrom('tenants').selectAll().where('id', '=', tenantId).forUpdate().executeTakeFirst();
    if (!tenant || tenant.status !== 'pending_deletion' || !tenant.delete_after || new Date(tenant.delete_after) > now) return null;
    const to = nextStatus({ status: tenant.status, statusBeforeDeletion: tenant.status_before_deletion, isDefault: tenant.is_default }, 'purge');

    if (tenant.schema_name) await dropTenantSchema(trx, tenant.schema_name);
    if (tenant.isolation === 'database') {
      // DROP DATABASE is not transactional and runs on the tenant's server: if this
      // transaction then fails, the tenant is still pending deletion with its placement,
      // and the next pass drops again (IF EXISTS) and finishes.
      if (!databases) throw new Error('this worker cannot drop database tenants');
      await databases.drop(tenantId, tenant.database_server);
    }
    if (tenant.isolation === 'cluster') {
      // Like DROP DATABASE: stop the instance and remove its directory first (idempotent);
      // a failure after it leaves the tenant pending deletion for the next pass.
      if (!clusters) throw new Error('this worker cannot drop cluster tenants');
      await clusters.drop(tenantId, tenant.cluster_data_dir);
    }
    const members = await trx.selectFrom('memberships').select('user_id').where('tenant_id', '=', tenantId).execute();
    await trx.deleteFrom('sessions').where('tenant_id', '=', tenantId).execute();
    await trx.deleteFrom('memberships').where('tenant_id', '=', tenantId).execute();
    if (members.length > 0) {
      await trx
        .deleteFrom('users')
        .where(
          'id',
          'in',
          members.map((m) => m.user_id),
        )
        .where(({ not, exists, selectFrom }) => not(exists(selectFrom('memberships').select('user_id').whereRef('memberships.user_id', '=', 'users.id'))))
        .execute();
    }
    await trx.deleteFrom('billing_states').where('tenant_id', '=', tenantId).execute();
    await trx.deleteFrom('provisioning_steps').where('tenant_id', '=', tenantId).execute();
    await trx.deleteFrom('signups').where('tenant_id', '=', tenantId).execute();
    const purged = await trx
      .updateTable('tenants')
      .set({
        status: to,
        schema_name: null,
        // The encrypted password goes with the database it opened.
        database_server: null,
        database_name: null,
        database_role: null,
        database_password_enc: null,
        cluster_data_dir: null,
        cluster_port: null,
        cluster_admin_password_enc: null,
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
      data: { from: tenant.status, to, deleteAfter: new Date(tenant.delete_after).toISOString() },
    });
    // Billing systems hear of the purge too: tenant.deleted said the data could still be
    // restored; this says it is gone and nothing more will be billed.
    return recordWebhookEvent(trx, { type: 'tenant.purged', tenantId, data: { tenant: tenantEventData(purged) } });
  });
}
