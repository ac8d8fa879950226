import { type Kysely, sql } from 'kysely';

/**
 * An installation upgraded to invoicing bills its existing tenants from the upgrade, not
 * from their creation.
 *
 * The invoices migration (2026-12-01T1400) seeded each existing tenant's plan history with
 * one row dated from the tenant's creation, since nothing older was recorded. The first
 * month close after the upgrade then billed the whole month before it — base fees for time
 * in which the installation sent no invoices and metered nothing. This moves each such
 * seed row to the moment that migration ran (Kysely records it in kysely_migration), so
 * billed time starts there: months before the upgrade have no billable time and get no
 * invoice, and the month of the upgrade is prorated from it.
 *
 * A seed row is a tenant's first history row dated exactly at its creation and before the
 * upgrade: rows written by the triggers carry clock_timestamp() taken after the tenant's
 * insert began, so never equal its created_at. It never moves past the tenant's next row
 * (a clock skew between the migrating process and Postgres must not reorder a history).
 * A fresh installation has no tenants when the invoices migration runs: nothing moves.
 * Invoices already finalized before this ran are not touched (they never change); void them
 * as docs/billing.md says.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    update tenant_billing_history h
    set at = least(
      upgrade.at,
      coalesce((select min(later.at) from tenant_billing_history later where later.tenant_id = h.tenant_id and later.id <> h.id), 'infinity')
    )
    from tenants t,
      (select timestamp::timestamptz as at from kysely_migration where name = '2026-12-01T1400_invoices') upgrade
    where t.id = h.tenant_id
      and h.at = t.created_at
      and h.at < upgrade.at
      and h.id = (select first.id from tenant_billing_history first where first.tenant_id = h.tenant_id order by first.at, first.id limit 1)`.execute(db);
}

/** Seed rows moved to the upgrade go back to their tenant's creation. */
export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    update tenant_billing_history h
    set at = t.created_at
    from tenants t,
      (select timestamp::timestamptz as at from kysely_migration where name = '2026-12-01T1400_invoices') upgrade
    where t.id = h.tenant_id
      and h.at = upgrade.at
      and t.created_at < upgrade.at
      and h.id = (select first.id from tenant_billing_history first where first.tenant_id = h.tenant_id order by first.at, first.id limit 1)`.execute(db);
}
