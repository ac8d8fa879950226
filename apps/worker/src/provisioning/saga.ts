import { type Db, type Signup, appendAudit, lockTenant } from '@tenantry/db';
import type { Isolation } from '@tenantry/domain';
import { sql } from 'kysely';
import { type TeardownSubject, type TeardownTools, tearDownTenant } from '../teardown.js';
import { PROVISIONING_STEPS, type StepContext } from './steps.js';

export type SagaOutcome = { status: 'ready'; isolation: Isolation; webhookDeliveries: string[] } | { status: 'already_final' | 'superseded' };

/** Thrown between steps when the worker is shutting down: the job is handed back, not failed. */
export class ProvisioningInterrupted extends Error {}

const MAX_ERROR_LENGTH = 500;

/** The names of the saga steps recorded for a signup's tenant, as a column of a query on `signups`. */
const recordedSteps = sql<string[]>`array(select step from provisioning_steps where provisioning_steps.tenant_id = signups.tenant_id)`;

/**
 * Provision the tenant of one signup, resuming after the last recorded step. Postgres is
 * the source of truth: running this twice, or concurrently, or after a crash at any point,
 * ends in the same single tenant.
 */
export async function provisionTenant(
  db: Db,
  input: { signupId: string; generation: number },
  signal: AbortSignal | undefined,
  context: StepContext,
): Promise<SagaOutcome> {
  // One round trip: the signup, the steps already recorded, and (in a data-modifying CTE,
  // which Postgres runs whether or not the query reads it) the claim pending → provisioning.
  // The select sees the row as it was before the claim, as a separate read before it would.
  const found = await db
    .with('claim', (qb) =>
      qb
        .updateTable('signups')
        .set({ status: 'provisioning', updated_at: sql`now()` })
        .where('id', '=', input.signupId)
        .where('generation', '=', input.generation)
        .where('status', '=', 'pending'),
    )
    .selectFrom('signups')
    .selectAll('signups')
    .select(recordedSteps.as('recorded_steps'))
    .where('id', '=', input.signupId)
    .executeTakeFirst();
  if (!found) throw new Error(`signup ${input.signupId} does not exist`);
  const { recorded_steps, ...signup } = found;
  // A job of an earlier attempt of this signup (it failed and was signed up again).
  if (signup.generation !== input.generation) return { status: 'superseded' };
  if (signup.status === 'ready' || signup.status === 'failed') return { status: 'already_final' };

  // Effects outside this transaction (the tenant's storage on another database or server,
  // the DNS record) come first, each idempotent and resumable; the steps' records are
  // still written below, in the one transaction.
  const recorded = new Set(recorded_steps);
  for (const step of PROVISIONING_STEPS) {
    if (!step.prepare || recorded.has(step.name)) continue;
    if (signal?.aborted) throw new ProvisioningInterrupted('worker is shutting down');
    await step.prepare(db, signup, context);
  }

  // The rest of every step is in this database, so they share one transaction: a crash
  // anywhere rolls back to the last commit and the retry resumes from the recorded steps.
  // (It also makes provisioning one commit instead of one per step.)
  const webhookDeliveries: string[] = [];
  await db.transaction().execute(async (trx) => {
    // Serialise runs of the same tenant (a redelivered job racing its stalled original).
    await lockTenant(trx, signup.tenant_id);
    // After the lock, in a statement of its own: its snapshot must not predate the lock.
    const current = await trx
      .selectFrom('signups')
      .select(['generation', 'status'])
      .select(recordedSteps.as('recorded_steps'))
      .where('id', '=', signup.id)
      .executeTakeFirstOrThrow();
    if (current.generation !== signup.generation || current.status === 'failed' || current.status === 'ready') {
      throw new Error('signup changed under a running saga');
    }
    const done = new Set(current.recorded_steps);
    const pending = PROVISIONING_STEPS.filter((step) => !done.has(step.name));
    // Recorded in one insert, in the same transaction as the steps, so a step that fails
    // rolls its record back with it. Before the steps, not after: the last step's audit
    // entry takes the audit chain's head row, which every audited transaction then waits
    // for until this one commits, so nothing should come between that entry and the commit.
    if (pending.length > 0) await trx.insertInto('provisioning_steps').values(pending.map((step) => ({ tenant_id: signup.tenant_id, step: step.name }))).execute();
    for (const step of pending) {
      if (signal?.aborted) throw new ProvisioningInterrupted('worker is shutting down');
      await step.run(trx, signup, { announce: (ids) => webhookDeliveries.push(...ids) }, context);
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
 * The last attempt failed: remove everything the steps made — the tenant's storage
 * (through its isolation driver), DNS record, owner user (unless it belongs to another
 * tenant too), billing state, tenant row — and mark the signup failed, with the same
 * teardown as the purge (teardown.ts). The email is then free to sign up again.
 */
export async function compensate(db: Db, input: { signupId: string; generation: number }, error: unknown, tools: TeardownTools): Promise<void> {
  await tearDownTenant<TeardownSubject & { signup: Signup }>(db, tools, {
    async find(q, lock) {
      const query = q.selectFrom('signups').selectAll().where('id', '=', input.signupId);
      const signup = await (lock ? query.forUpdate() : query).executeTakeFirst();
      // A stale job of an earlier generation must not undo a newer attempt.
      if (!signup || signup.generation !== input.generation || signup.status === 'ready' || signup.status === 'failed') return undefined;
      const row = await q.selectFrom('tenants').selectAll().where('id', '=', signup.tenant_id).executeTakeFirst();
      return { id: signup.tenant_id, isolation: signup.isolation, row, signup };
    },
    async finish(trx, { id, signup }) {
      await trx.deleteFrom('tenants').where('id', '=', id).execute();
      await trx
        .updateTable('signups')
        .set({ status: 'failed', password_hash: null, last_error: describe(error), updated_at: sql`now()` })
        .where('id', '=', signup.id)
        .execute();
      await appendAudit(trx, {
        actor: 'system:worker',
        action: 'tenant.provision_failed',
        tenantId: id,
        data: { signupId: signup.id, error: describe(error) },
      });
    },
  });
}

function describe(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, MAX_ERROR_LENGTH);
}
