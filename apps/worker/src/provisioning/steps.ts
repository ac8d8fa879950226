import type { DnsProvider } from '@tenantry/dns';
import { type Db, type IsolationRegistry, type Signup, appendAudit, insertProvisioningTenant, recordWebhookEvent, tenantEventData } from '@tenantry/db';
import { TRIAL_DAYS, TRIAL_PLAN } from '@tenantry/domain';
import { type Transaction, sql } from 'kysely';
import type { Database } from '@tenantry/db';

type Trx = Transaction<Database>;

/** What steps may need besides the control-plane database. */
export interface StepContext {
  /** The isolation drivers: the storage step provisions through the tenant's. */
  isolation: IsolationRegistry;
  /** Makes the tenant's <slug>.<zone> record (when DNS is configured). */
  dns?: DnsProvider | undefined;
}

/** What a step leaves for after the saga's commit: webhook deliveries to enqueue. */
export interface StepEffects {
  announce(deliveryIds: readonly string[]): void;
}

export interface ProvisioningStep {
  name: string;
  /**
   * Effects that cannot run inside the saga's transaction (CREATE DATABASE, another
   * server): run before it, on every attempt until the step is recorded, so they must be
   * idempotent on their own and leave something the next attempt can resume from.
   */
  prepare?(db: Db, signup: Signup, context: StepContext): Promise<void>;
  run(trx: Trx, signup: Signup, effects: StepEffects, context: StepContext): Promise<void>;
}

function provisioningTenant(signup: Signup) {
  return { id: signup.tenant_id, name: signup.org_name, plan: signup.plan, isolation: signup.isolation };
}

/**
 * The saga, in order. Each step commits together with the row that records it (see
 * saga.ts), so a step is either done and recorded or neither; and each is written to be
 * harmless if it runs again anyway (IF NOT EXISTS, ON CONFLICT DO NOTHING).
 */
export const PROVISIONING_STEPS: ProvisioningStep[] = [
  {
    // The api creates the row with the intent; this covers intents recorded without one.
    name: 'tenant_row',
    async run(trx, signup) {
      await insertProvisioningTenant(trx, provisioningTenant(signup));
    },
  },
  {
    // The tenant's schema, database or instance, made by its isolation driver. Storage
    // elsewhere (a database, an instance) cannot join the saga's transaction, so it is made
    // before it, like every such effect; the driver is idempotent and resumes after a
    // crash, so prepare may run again until recorded. A schema lives in this database and
    // is made in the transaction itself (the driver's provisionIn).
    name: 'storage',
    async prepare(_db, signup, context) {
      const driver = context.isolation.driver(signup.isolation);
      if (!driver.provisionIn) await driver.provision(provisioningTenant(signup));
    },
    async run(trx, signup, _effects, context) {
      await context.isolation.driver(signup.isolation).provisionIn?.(trx, provisioningTenant(signup));
    },
  },
  {
    name: 'owner_user',
    async run(trx, signup) {
      // A signup always carries a hash; an operator may create a tenant whose owner has none yet.
      if (!signup.password_hash && signup.source === 'signup') throw new Error('signup has no password hash to create the owner from');
      // One statement. A user who already exists keeps their password: the conflict's
      // update rewrites the email with itself, only so that RETURNING yields their id too
      // (DO NOTHING returns no row, and a select in the same statement could not see a
      // user a concurrent transaction has just committed).
      await trx
        .with('owner', (qb) =>
          qb
            .insertInto('users')
            .values({ email: signup.email, password_hash: signup.password_hash ?? null })
            .onConflict((oc) => oc.column('email').doUpdateSet({ email: (eb) => eb.ref('excluded.email') }))
            .returning('id'),
        )
        .insertInto('memberships')
        .columns(['user_id', 'tenant_id', 'role'])
        .expression((eb) => eb.selectFrom('owner').select(['owner.id', sql<string>`${signup.tenant_id}::uuid`.as('tenant_id'), sql.lit('owner').as('role')]))
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
          plan: signup.plan,
          // A trial runs TRIAL_DAYS; a tenant an operator put on a paid plan starts active.
          subscription_state: signup.plan === TRIAL_PLAN ? 'trial' : 'active',
          trial_ends_at: signup.plan === TRIAL_PLAN ? sql<Date>`now() + make_interval(days => ${TRIAL_DAYS})` : null,
        })
        .onConflict((oc) => oc.column('tenant_id').doNothing())
        .execute();
    },
  },
  {
    // The tenant's <slug>.<zone> record, in the DNS service (outside this database, hence
    // prepare); skipped when DNS is not configured. Idempotent: a REPLACE of one RRset.
    name: 'dns_record',
    async prepare(db, signup, context) {
      if (!context.dns?.zone) return;
      await insertProvisioningTenant(db, provisioningTenant(signup));
      const { slug } = await db.selectFrom('tenants').select('slug').where('id', '=', signup.tenant_id).executeTakeFirstOrThrow();
      await context.dns.ensureTenantRecord(slug);
    },
    async run() {},
  },
  {
    name: 'activate',
    async run(trx, signup, effects) {
      const activated = await trx
        .updateTable('tenants')
        .set({ status: 'active', updated_at: sql`now()` })
        .where('id', '=', signup.tenant_id)
        .where('status', '=', 'provisioning')
        .returningAll()
        .executeTakeFirst();
      // Announced to billing systems with the activation itself: a saga that rolls back
      // announces nothing, one that commits cannot lose the event.
      if (activated) effects.announce(await recordWebhookEvent(trx, { type: 'tenant.provisioned', tenantId: activated.id, data: { tenant: tenantEventData(activated) } }));
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
        data: { signupId: signup.id, source: signup.source, isolation: signup.isolation, plan: signup.plan },
      });
    },
  },
];

