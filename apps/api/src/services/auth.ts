import { createHash } from 'node:crypto';
import { type Db, appendAudit } from '@tenantry/db';
import { ForbiddenError, NotFoundError, UnauthorizedError, normaliseEmail, tenantAccessRefusal, toPublicId } from '@tenantry/domain';
import type { ApiDeps } from '../context.js';
import { verifyPassword } from './passwords.js';
import { consumeOrThrow } from './rate-limit.js';
import { newSessionToken } from './sessions.js';
import type { TenantPrincipal } from './tenant-auth.js';

const INVALID_CREDENTIALS = () => new UnauthorizedError('invalid_credentials', 'The email or password is incorrect');

/**
 * Password login → an opaque session token for the user's tenant. Unknown email and wrong
 * password are the same error after the same amount of work. Attempts are limited per
 * email and client IP; a successful login clears the count.
 */
export async function login(deps: ApiDeps, input: { email: string; password: string }, clientIp: string) {
  const { db } = deps;
  const email = normaliseEmail(input.email);
  // Hash the email: no raw addresses in Redis keys.
  const limiterKey = `${createHash('sha256').update(email).digest('hex')}:${clientIp}`;
  await consumeOrThrow(deps.loginLimiter, limiterKey, () => deps.metrics.rateLimited.inc({ limiter: 'login' }));
  const user = await db.selectFrom('users').select(['id', 'password_hash']).where('email', '=', email).executeTakeFirst();
  if (!(await verifyPassword(user?.password_hash ?? null, input.password)) || !user) throw INVALID_CREDENTIALS();

  // Owners first, then the oldest membership: a user of several tenants lands in their own.
  const membership = await db
    .selectFrom('memberships')
    .innerJoin('tenants', 'tenants.id', 'memberships.tenant_id')
    .select(['tenants.id as tenantId', 'tenants.status'])
    .where('memberships.user_id', '=', user.id)
    .orderBy((eb) => eb.case().when('memberships.role', '=', 'owner').then(0).else(1).end())
    .orderBy('memberships.created_at')
    .executeTakeFirst();
  if (!membership) throw INVALID_CREDENTIALS();
  const refusal = tenantAccessRefusal(membership.status);
  if (refusal) throw new ForbiddenError(refusal.code, refusal.message);

  const { token, tokenHash } = newSessionToken();
  await deps.loginLimiter.delete(limiterKey).catch(() => undefined);
  const expiresAt = new Date(Date.now() + deps.config.SESSION_TTL_HOURS * 3_600_000);
  await db.transaction().execute(async (trx) => {
    const session = await trx
      .insertInto('sessions')
      .values({ token_hash: tokenHash, user_id: user.id, tenant_id: membership.tenantId, expires_at: expiresAt })
      .returning('id')
      .executeTakeFirstOrThrow();
    await appendAudit(trx, {
      actor: `user:${user.id}`,
      action: 'session.created',
      tenantId: membership.tenantId,
      data: { sessionId: session.id, expiresAt: expiresAt.toISOString() },
    });
  });
  return { token, expiresAt: expiresAt.toISOString(), tenantId: toPublicId('ten', membership.tenantId) };
}

export async function me(db: Db, principal: TenantPrincipal) {
  if (principal.kind !== 'session') throw new ForbiddenError('session_required', 'This route is about a signed-in user; API keys have none');
  const session = principal;
  const row = await db
    .selectFrom('memberships')
    .innerJoin('users', 'users.id', 'memberships.user_id')
    .innerJoin('tenants', 'tenants.id', 'memberships.tenant_id')
    .select([
      'users.id as userId',
      'users.email',
      'memberships.role',
      'tenants.id as tenantId',
      'tenants.slug',
      'tenants.name',
      'tenants.status',
      'tenants.plan',
      'tenants.isolation',
    ])
    .where('memberships.user_id', '=', session.userId)
    .where('memberships.tenant_id', '=', session.tenantId)
    .executeTakeFirst();
  if (!row) throw new NotFoundError('Membership', 'membership_not_found');
  return {
    user: { id: toPublicId('usr', row.userId), email: row.email, role: row.role },
    tenant: {
      id: toPublicId('ten', row.tenantId),
      slug: row.slug,
      name: row.name,
      status: row.status,
      plan: row.plan,
      isolation: row.isolation,
    },
  };
}
