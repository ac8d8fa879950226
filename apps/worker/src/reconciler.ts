import type { Db } from '@tenantry/db';
import { type ProvisioningQueue, type RetryPolicy, enqueueProvisioning } from '@tenantry/jobs';
import { sql } from 'kysely';

/** At most this many signups are re-enqueued per pass; the next pass takes the rest. */
const BATCH = 500;

/**
 * Re-enqueue signups stuck in a non-final state: their job was lost (Redis flushed or
 * without persistence) or their worker died in a way stall detection did not cover.
 * Enqueueing is idempotent by job id, so a signup whose job is merely slow is untouched.
 */
export async function reconcileSignups(db: Db, queue: ProvisioningQueue, retry: RetryPolicy, staleAfterMs: number): Promise<number> {
  const stuck = await db
    .selectFrom('signups')
    .select(['id', 'email', 'generation'])
    .where('status', 'in', ['pending', 'provisioning'])
    .where('updated_at', '<', sql<Date>`now() - make_interval(secs => ${staleAfterMs / 1000})`)
    .orderBy('updated_at')
    .limit(BATCH)
    .execute();
  for (const signup of stuck) {
    await enqueueProvisioning(queue, { signupId: signup.id, generation: signup.generation, normalisedEmail: signup.email }, retry);
  }
  return stuck.length;
}
