import { randomUUID } from 'node:crypto';
import type { Db } from '@tenantry/db';
import { NotFoundError, type SignupRequest, type SignupStatus, fromPublicId, normaliseEmail, toPublicId } from '@tenantry/domain';
import { enqueueProvisioning, provisioningRetryPolicy } from '@tenantry/jobs';
import { sql } from 'kysely';
import type { ApiDeps } from '../context.js';
import { withTimeout } from '../timeout.js';
import { hashPassword } from './passwords.js';
import { consumeOrThrow } from './rate-limit.js';

/** How long a signup waits on Redis to enqueue before leaving it to the reconciler. */
const ENQUEUE_TIMEOUT_MS = 1_000;

export interface SignupAccepted {
  signupId: string;
  status: SignupStatus;
}

/**
 * Public signup: limit, hash, record the intent, enqueue. The answer is the same whether
 * or not the email is known — same status, same shape, and a password hash computed
 * either way — so the endpoint cannot be used to list accounts.
 */
export async function submitSignup(deps: ApiDeps, input: SignupRequest, clientIp: string): Promise<SignupAccepted> {
  // Before hashing: argon2 is deliberately expensive and runs on a small thread pool.
  await consumeOrThrow(deps.signupLimiter, clientIp);

  const email = normaliseEmail(input.email);
  const passwordHash = await hashPassword(input.password);
  const intent = await recordSignupIntent(deps.db, {
    email,
    orgName: input.orgName,
    isolation: input.isolation ?? 'schema',
    passwordHash,
  });

  if (intent.status === 'pending' || intent.status === 'provisioning') {
    // Idempotent by job id. If Redis is away the intent is safe in Postgres and the
    // worker's reconciler enqueues it later, so the client still gets its 202.
    try {
      await withTimeout(
        enqueueProvisioning(
          deps.provisioningQueue,
          { signupId: intent.id, generation: intent.generation, normalisedEmail: email },
          provisioningRetryPolicy(deps.config.PROVISION_ATTEMPTS, deps.config.PROVISION_BACKOFF_MS),
        ),
        ENQUEUE_TIMEOUT_MS,
      );
    } catch (err) {
      deps.logger.warn({ err, signupId: intent.id }, 'enqueue failed; the reconciler will pick the signup up');
    }
  }
  return { signupId: toPublicId('sgn', intent.id), status: 'pending' };
}

interface SignupIntent {
  id: string;
  status: SignupStatus;
  generation: number;
}

/**
 * One statement, safe under any concurrency (the unique index on the normalised email
 * decides): a new email inserts a pending signup; a known email changes nothing — unless
 * its earlier signup failed, in which case the new attempt replaces it and bumps the
 * generation so it gets a fresh job id.
 */
async function recordSignupIntent(
  db: Db,
  values: { email: string; orgName: string; isolation: 'schema' | 'database' | 'cluster'; passwordHash: string },
): Promise<SignupIntent> {
  const written = await db
    .insertInto('signups')
    .values({
      email: values.email,
      org_name: values.orgName,
      isolation: values.isolation,
      password_hash: values.passwordHash,
      status: 'pending',
      tenant_id: randomUUID(),
    })
    .onConflict((oc) =>
      oc
        .column('email')
        .doUpdateSet({
          org_name: (eb) => eb.ref('excluded.org_name'),
          isolation: (eb) => eb.ref('excluded.isolation'),
          password_hash: (eb) => eb.ref('excluded.password_hash'),
          tenant_id: (eb) => eb.ref('excluded.tenant_id'),
          status: 'pending',
          generation: sql`signups.generation + 1`,
          last_error: null,
          updated_at: sql`now()`,
        })
        .where('signups.status', '=', 'failed'),
    )
    .returning(['id', 'status', 'generation'])
    .executeTakeFirst();
  if (written) return written;
  // The email was known and its signup is not failed: leave it exactly as it is.
  return db.selectFrom('signups').select(['id', 'status', 'generation']).where('email', '=', values.email).executeTakeFirstOrThrow();
}

export async function getSignupStatus(db: Db, publicSignupId: string) {
  const id = fromPublicId('sgn', publicSignupId);
  const row = id ? await db.selectFrom('signups').select(['id', 'status', 'tenant_id']).where('id', '=', id).executeTakeFirst() : undefined;
  if (!row) throw new NotFoundError('Signup', 'signup_not_found');
  return {
    signupId: publicSignupId,
    status: row.status,
    ...(row.status === 'ready' ? { tenantId: toPublicId('ten', row.tenant_id) } : {}),
  };
}
