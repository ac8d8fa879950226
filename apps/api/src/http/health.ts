import type { Db } from '@tenantry/db';
import type { RedisClient } from '@tenantry/jobs';
import { sql } from 'kysely';
import { withTimeout } from '../timeout.js';

const PROBE_TIMEOUT_MS = 1_000;


export interface Readiness {
  ready: boolean;
  checks: { postgres: 'ok' | 'down'; redis: 'ok' | 'down' };
}

/** Ready = both stores answer within a second. Load balancers stop routing to us otherwise. */
export async function checkReadiness(db: Db, redis: RedisClient): Promise<Readiness> {
  const [postgres, redisCheck] = await Promise.allSettled([
    withTimeout(sql`select 1`.execute(db), PROBE_TIMEOUT_MS),
    withTimeout(redis.ping(), PROBE_TIMEOUT_MS),
  ]);
  const checks = {
    postgres: postgres.status === 'fulfilled' ? 'ok' : 'down',
    redis: redisCheck.status === 'fulfilled' ? 'ok' : 'down',
  } as const;
  return { ready: checks.postgres === 'ok' && checks.redis === 'ok', checks };
}
