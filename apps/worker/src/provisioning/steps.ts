import { randomBytes } from 'node:crypto';
import { type Signup, appendAudit, provisionTenantSchema } from '@tenantry/db';
import { TRIAL_DAYS, TRIAL_PLAN, slugWithSuffix, slugify, tenantSchemaName } from '@tenantry/domain';
import { type Transaction, sql } from 'kysely';
import type { Database } from '@tenantry/db';

type Trx = Transaction<Database>;

export interface ProvisioningStep {
  name: string;
  run(trx: Trx, signup: Signup): Promise<void>;
}

/** Tries at a unique slug before giving up; each retry adds a random suffix. */
const SLUG_ATTEMPTS = 5;

/**
 * The saga, in order. Each step commits together with the row that records it (see
 * saga.ts), so a step is either done and recorded or neither; and each is written to be
 * harmless if it runs again anyway (IF NOT EXISTS, ON CONFLICT DO NOTHING).
 */
export const PROVISIONING_STEPS: ProvisioningStep[] = [
  {
    name: 'tenant_row',
    async run(trx, signup) {
      const base = slugify(signup.org_name);
      for (let attempt = 0; attempt < SLUG_ATTEMPTS; attempt++) {
        const slug = attempt === 0 ? base : slugWithSuffix(base, randomBytes(3).toString('hex'));
        const inserted = await trx
          .insertInto('tenants')
          .values({
            id: signup.tenant_id,
            slug,
            name: signup.org_name,
            status: 'provisioning',
            plan: TRIAL_PLAN,
            isolation: signup.isolation,
            schema_name: tenantSchemaName(signup.tenant_id),
          })
          .onConflict((oc) => oc.doNothing())
          .returning('id')
          .executeTakeFirst();
        if (inserted) return;
        const mine = await trx.selectFrom('tenants').select('id').where('id', '=', signup.tenant_id).executeTakeFirst();
        if (mine) return;
      }
      throw new Error(`no free slug for ${JSON.stringify(base)} after ${SLUG_ATTEMPTS} tries`);
    },
  },
  {
    name: 'storage',
    async run(trx, signup) {
      await provisionTenantSchema(trx, tenantSchemaName(signup.tenant_id));
    },
  },
  {
    name: 'owner_user',
    async run(trx, signup) {
      if (!signup.password_hash) throw new Error('signup has no password hash to create the owner from');
      await trx
        .insertInto('users')
        .values({ email: signup.email, password_hash: signup.password_hash })
        .onConflict((oc) => oc.column('email').doNothing())
        .execute();
      const user = await trx.selectFrom('users').select('id').where('email', '=', signup.email).executeTakeFirstOrThrow();
      await trx
        .insertInto('memberships')
        .values({ user_id: user.id, tenant_id: signup.tenant_id, role: 'owner' })
        .onConflict((oc) => oc.columns(['user_id', 'tenant_id']).doNothing())
        .execute();
    },
  },
  {
    name: 'trial_billing',
    async run(trx, signup) {
      await trx
        .insertInto('billing_states')
        .values({
          tenant_id: signup.tenant_id,
          plan: TRIAL_PLAN,
          subscription_state: 'trial',
          trial_ends_at: sql<Date>`now() + make_interval(days => ${TRIAL_DAYS})`,
        })
        .onConflict((oc) => oc.column('tenant_id').doNothing())
        .execute();
    },
  },
  {
    name: 'activate',
    async run(trx, signup) {
      await trx
        .updateTable('tenants')
        .set({ status: 'active', updated_at: sql`now()` })
        .where('id', '=', signup.tenant_id)
        .where('status', '=', 'provisioning')
        .execute();
      // The owner now holds the password hash; the signup no longer needs a copy.
      await trx
        .updateTable('signups')
        .set({ status: 'ready', password_hash: null, last_error: null, updated_at: sql`now()` })
        .where('id', '=', signup.id)
        .execute();
      await appendAudit(trx, {
        actor: 'system:worker',
        action: 'tenant.provisioned',
        tenantId: signup.tenant_id,
        data: { signupId: signup.id, isolation: signup.isolation, plan: TRIAL_PLAN },
      });
    },
  },
];

