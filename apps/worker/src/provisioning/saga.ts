import { type Db, type Signup, appendAudit, dropTenantSchema } from '@tenantry/db';
import { type Isolation, tenantSchemaName } from '@tenantry/domain';
import { sql } from 'kysely';
import { PROVISIONING_STEPS, type StepContext } from './steps.js';

export type SagaOutcome = { status: 'ready'; isolation: Isolation; webhookDeliveries: string[] } | { status: 'already_final' | 'superseded' };

/** Thrown between steps when the worker is shutting down: the job is handed back, not failed. */
export class ProvisioningInterrupted extends Error {}

const MAX_ERROR_LENGTH = 500;

/**
 * Provision the tenant of one signup, resuming after the last recorded step. Postgres is
 * the source of truth: running this twice, or concurrently, or after a crash at any point,
 * ends in the same single tenant.
 */
export async function provisionTenant(
  db: Db,
  input: { signupId: string; generation: number },
  signal?: AbortSignal,
  context: StepContext = {},
): Promise<SagaOutcome> {
  const signup = await db.selectFrom('signups').selectAll().where('id', '=', input.signupId).executeTakeFirst();
  if (!signup) throw new Error(`signup ${input.signupId} does not exist`);
  // A job of an earlier attempt of this signup (it failed and was signed up again).
  if (signup.generation !== input.generation) return { status: 'superseded' };
  if (signup.status === 'ready' || signup.status === 'failed') return { status: 'already_final' };

  await db
    .updateTable('signups')
    .set({ status: 'provisioning', updated_at: sql`now()` })
    .where('id', '=', signup.id)
    .where('status', '=', 'pending')
    .execute();

  // Effects outside this database (a tenant database on another server, which CREATE
  // DATABASE cannot make inside a transaction anyway) come first, each idempotent and
  // resumable; the steps' records are still written below, in the one transaction.
  const recorded = new Set(
    (await db.selectFrom('provisioning_steps').select('step').where('tenant_id', '=', signup.tenant_id).execute()).map((r) => r.step),
  );
  for (const step of PROVISIONING_STEPS) {
    if (!step.prepare || recorded.has(step.name)) continue;
    if (signal?.aborted) throw new ProvisioningInterrupted('worker is shutting down');
    await step.prepare(db, signup, context);
  }

  // Every step's own changes are in this database, so they share one transaction: a crash
  // anywhere rolls back to the last commit and the retry resumes from the recorded steps.
  // (It also makes provisioning one commit instead of one per step.) A step with effects
  // outside Postgres — another server, DNS — will need a boundary of its own.
  const webhookDeliveries: string[] = [];
  await db.transaction().execute(async (trx) => {
    // Serialise runs of the same tenant (a redelivered job racing its stalled original):
    // CREATE SCHEMA IF NOT EXISTS is not safe against a concurrent twin.
    await sql`select pg_advisory_xact_lock(hashtextextended(${signup.tenant_id}, 0))`.execute(trx);
    const current = await trx.selectFrom('signups').select(['generation', 'status']).where('id', '=', signup.id).executeTakeFirstOrThrow();
    if (current.generation !== signup.generation || current.status === 'failed' || current.status === 'ready') {
      throw new Error('signup changed under a running saga');
    }
    const done = new Set(
      (await trx.selectFrom('provisioning_steps').select('step').where('tenant_id', '=', signup.tenant_id).execute()).map((r) => r.step),
    );
    for (const step of PROVISIONING_STEPS) {
      if (done.has(step.name)) continue;
      if (signal?.aborted) throw new ProvisioningInterrupted('worker is shutting down');
      await step.run(trx, signup, { announce: (ids) => webhookDeliveries.push(...ids) });
      await trx.insertInto('provisioning_steps').values({ tenant_id: signup.tenant_id, step: step.name }).execute();
    }
  });
  return { status: 'ready', isolation: signup.isolation, webhookDeliveries };
}

/** Note a failed attempt that will be retried, so operators can see why it is slow. */
export async function recordAttemptFailure(db: Db, signupId: string, error: unknown): Promise<void> {
  await db
    .updateTable('signups')
    .set({ last_error: describe(error), updated_at: sql`now()` })
    .where('id', '=', signupId)
    .where('status', 'in', ['pending', 'provisioning'])
    .execute();
}

/**
 * The last attempt failed: remove everything the steps made — schema or tenant database
 * and role, owner user (unless
 * it belongs to another tenant too), billing state, tenant row — and mark the signup
 * failed, all in one transaction (DROP SCHEMA is transactional too). The email is then
 * free to sign up again.
 */
export async function compensate(db: Db, input: { signupId: string; generation: number }, error: unknown, context: StepContext = {}): Promise<void> {
  // The DNS record lives outside this database: remove it first (idempotent), while the
  // tenant row still names the slug; a failure here leaves everything for the next try.
  if (context.dns?.zone) {
    const tenant = await db
      .selectFrom('tenants')
      .innerJoin('signups', 'signups.tenant_id', 'tenants.id')
      .select('tenants.slug')
      .where('signups.id', '=', input.signupId)
      .where('signups.generation', '=', input.generation)
      .executeTakeFirst();
    if (tenant) await context.dns.removeTenantRecord(tenant.slug);
  }
  await db.transaction().execute(async (trx) => {
    const signup: Signup | undefined = await trx.selectFrom('signups').selectAll().where('id', '=', input.signupId).forUpdate().executeTakeFirst();
    // A stale job of an earlier generation must not undo a newer attempt.
    if (!signup || signup.generation !== input.generation || signup.status === 'ready' || signup.status === 'failed') return;
    await sql`select pg_advisory_xact_lock(hashtextextended(${signup.tenant_id}, 0))`.execute(trx);

    await dropTenantSchema(trx, tenantSchemaName(signup.tenant_id));
    if (signup.isolation === 'database') {
      // Not transactional: dropped before the row that records where it was, so a crash here
      // leaves the placement for the next compensation (or retry) to find. Idempotent.
      if (!context.databases) throw new Error('this worker cannot drop database tenants');
      const placed = await trx.selectFrom('tenants').select('database_server').where('id', '=', signup.tenant_id).executeTakeFirst();
      await context.databases.drop(signup.tenant_id, placed?.database_server ?? null);
    }
    if (signup.isolation === 'cluster') {
      // Stop the instance and remove its data directory before the row that names it. Idempotent.
      if (!context.clusters) throw new Error('this worker cannot drop cluster tenants');
      const placed = await trx.selectFrom('tenants').select('cluster_data_dir').where('id', '=', signup.tenant_id).executeTakeFirst();
      await context.clusters.drop(signup.tenant_id, placed?.cluster_data_dir ?? null);
    }
    const owner = await trx.selectFrom('users').select('id').where('email', '=', signup.email).executeTakeFirst();
    await trx.deleteFrom('memberships').where('tenant_id', '=', signup.tenant_id).execute();
    if (owner) {
      await trx
        .deleteFrom('users')
        .where('id', '=', owner.id)
        .where(({ not, exists, selectFrom }) => not(exists(selectFrom('memberships').select('user_id').where('user_id', '=', owner.id))))
        .execute();
    }
    // billing_states, provisioning_steps and sessions go with the tenant row (ON DELETE CASCADE).
    await trx.deleteFrom('tenants').where('id', '=', signup.tenant_id).execute();
    await trx
      .updateTable('signups')
      .set({ status: 'failed', password_hash: null, last_error: describe(error), updated_at: sql`now()` })
      .where('id', '=', signup.id)
      .execute();
    await appendAudit(trx, {
      actor: 'system:worker',
      action: 'tenant.provision_failed',
      tenantId: signup.tenant_id,
      data: { signupId: signup.id, error: describe(error) },
    });
  });
}

function describe(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, MAX_ERROR_LENGTH);
}
