import { randomBytes } from 'node:crypto';
import { type Isolation, slugWithSuffix, slugify } from '@tenantry/domain';
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

/** Tries at a free slug before giving up; each retry adds a random suffix. */
const SLUG_ATTEMPTS = 5;

/**
 * Insert a tenant in status `provisioning` under a unique slug derived from its name
 * ("acme", else "acme-3f9a2c"). Idempotent: if the row already exists (a retried saga),
 * nothing changes.
 */
export async function insertProvisioningTenant(
  db: Kysely<Database>,
  tenant: { id: string; name: string; plan: string; isolation: Isolation },
): Promise<void> {
  const base = slugify(tenant.name);
  for (let attempt = 0; attempt < SLUG_ATTEMPTS; attempt++) {
    const slug = attempt === 0 ? base : slugWithSuffix(base, randomBytes(3).toString('hex'));
    // One round trip in the usual cases: the row is inserted, or it is already there (the
    // api wrote it with the intent; a retried saga). The CTE's select sees the table as the
    // statement began, so exactly one of the two parts answers.
    const found = await db
      .with('inserted', (qb) =>
        qb
          .insertInto('tenants')
          .values({
            id: tenant.id,
            slug,
            name: tenant.name,
            status: 'provisioning',
            plan: tenant.plan,
            isolation: tenant.isolation,
            // Where its data lives is written by its isolation driver when it provisions.
            schema_name: null,
          })
          .onConflict((oc) => oc.doNothing())
          .returning('id'),
      )
      .selectFrom('inserted')
      .select('id')
      .unionAll(db.selectFrom('tenants').select('id').where('id', '=', tenant.id))
      .executeTakeFirst();
    if (found) return;
    // Neither: the slug is taken, or a transaction that committed the row while this
    // statement waited on it — which only a new statement sees.
    const exists = await db.selectFrom('tenants').select('id').where('id', '=', tenant.id).executeTakeFirst();
    if (exists) return;
  }
  throw new Error(`no free slug for ${JSON.stringify(base)} after ${SLUG_ATTEMPTS} tries`);
}
