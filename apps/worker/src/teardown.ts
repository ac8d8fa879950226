import type { DnsProvider } from '@tenantry/dns';
import { type Database, type Db, type IsolationRegistry, type TeardownTarget, lockTenant, removeTenantFileRows } from '@tenantry/db';
import type { FileStorage } from '@tenantry/files';
import type { Isolation } from '@tenantry/domain';
import type { Kysely, Transaction } from 'kysely';

/** What a teardown reaches besides the control-plane database. */
export interface TeardownTools {
  /** The tenant's storage goes through its isolation driver. */
  isolation: IsolationRegistry;
  /** Its <slug>.<zone> record (when DNS is configured). */
  dns?: DnsProvider | undefined;
  /** Its files' bytes. */
  files?: FileStorage | undefined;
}

/** The tenant a teardown removes, and the model its storage was made by. */
export interface TeardownSubject extends TeardownTarget {
  isolation: Isolation;
}

/** What makes one teardown (compensation, purge) different from another. */
export interface Teardown<S extends TeardownSubject> {
  /**
   * The tenant to tear down, or undefined when this teardown no longer applies (a newer
   * signup generation, a tenant restored meanwhile). Called once without `lock` (to find
   * the tenant and its DNS record), then inside the transaction, under the tenant's lock,
   * with `lock`: take row locks and check again.
   */
  find(db: Kysely<Database>, lock: boolean): Promise<S | undefined>;
  /** After storage and rows are gone, in the same transaction: the tenant row's and signup's end, and the audit entry. */
  finish(trx: Transaction<Database>, subject: S): Promise<void>;
}

/**
 * Remove a tenant: its DNS record, its storage (through its isolation driver), its files,
 * and the control-plane rows that hang off it — sessions, memberships, the users who belonged to
 * no other tenant, billing state, step records — then whatever `finish` does. Used by the
 * saga's compensation and by the purge. Returns false when `find` says it no longer applies.
 *
 * The DNS record lives outside this database: it goes first (idempotent), while the
 * tenant row still names the slug; a failure there leaves everything for the next try.
 * The rest is one transaction under the tenant's lock. Storage in the control-plane
 * database (a schema) is dropped in it and rolls back with it; storage elsewhere (a
 * database, an instance) is dropped at once, before the rows that record where it was, so
 * a crash or a rollback after it leaves the placement for the next try, which drops again
 * (idempotently) and finishes.
 */
export async function tearDownTenant<S extends TeardownSubject>(db: Db, tools: TeardownTools, teardown: Teardown<S>): Promise<boolean> {
  const found = await teardown.find(db, false);
  if (!found) return false;
  if (tools.dns?.zone && found.row) await tools.dns.removeTenantRecord(found.row.slug);
  return db.transaction().execute(async (trx) => {
    // The tenant's lock before any row lock, in the order the saga and the drivers take them.
    await lockTenant(trx, found.id);
    const subject = await teardown.find(trx, true);
    if (!subject || subject.id !== found.id) return false;
    await tools.isolation.driver(subject.isolation).drop(trx, subject);
    // Files live outside any transaction: their bytes go at once (idempotently), then the
    // rows that name them, so a rollback leaves rows whose next teardown removes again.
    await tools.files?.removeTenant(subject.id);
    await removeTenantFileRows(trx, subject.id);
    await removeTenantRows(trx, subject.id);
    await teardown.finish(trx, subject);
    return true;
  });
}

async function removeTenantRows(trx: Transaction<Database>, tenantId: string): Promise<void> {
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
}
