import type { Db } from '@tenantry/db';
import { type MoveQueue, enqueueMove } from '@tenantry/jobs';
import { sql } from 'kysely';

/** At most this many moves are re-enqueued per pass. */
const BATCH = 100;

/**
 * Re-enqueue open moves nobody has advanced for `staleAfterMs`: their job was lost (Redis
 * flushed), failed for good on a step that must go forward (a switched move whose source
 * could not be dropped yet), or the api could not enqueue it. Enqueueing is idempotent
 * by job id, so a move whose job is merely queued or running is untouched.
 */
export async function reconcileMoves(db: Db, queue: MoveQueue, staleAfterMs: number): Promise<number> {
  const stuck = await db
    .selectFrom('tenant_moves')
    .select('id')
    .where('status', 'not in', ['done', 'rolled_back'])
    .where('updated_at', '<', sql<Date>`now() - make_interval(secs => ${staleAfterMs / 1000})`)
    .orderBy('updated_at')
    .limit(BATCH)
    .execute();
  for (const move of stuck) await enqueueMove(queue, move.id);
  return stuck.length;
}
