import type { Db } from '@tenantry/db';
import { NotFoundError, type SignupRequest, type SignupStatus, TRIAL_PLAN, fromPublicId, normaliseEmail, toPublicId } from '@tenantry/domain';
import type { ApiDeps } from '../context.js';
import { rateLimitKeyOf } from '../http/client-address.js';
import { hashPassword } from './passwords.js';
import { consumeOrThrow } from './rate-limit.js';
import { enqueueIntent, recordTenantIntent } from './tenant-intents.js';

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
  await consumeOrThrow(deps.signupLimiter, rateLimitKeyOf(clientIp), () => deps.metrics.rateLimited.inc({ limiter: 'signup' }));

  const email = normaliseEmail(input.email);
  const passwordHash = await hashPassword(input.password);
  const intent = await recordTenantIntent(deps.db, {
    email,
    orgName: input.orgName,
    isolation: input.isolation ?? 'schema',
    plan: TRIAL_PLAN,
    passwordHash,
    source: 'signup',
    actor: 'public:signup',
  });
  await enqueueIntent(deps, intent, email);
  return { signupId: toPublicId('sgn', intent.signupId), status: 'pending' };
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
