import { createHash } from 'node:crypto';
import { type Db, appendAudit } from '@tenantry/db';
import { ForbiddenError, NotFoundError, UnauthorizedError, normaliseEmail, tenantAccessRefusal, toPublicId } from '@tenantry/domain';
import type { ApiDeps } from '../context.js';
import { verifyPassword } from './passwords.js';
import { rateLimitKeyOf } from '../http/client-address.js';
import { LOGIN_LIMITS, consumeOrThrow } from './rate-limit.js';
import { newSessionToken } from './sessions.js';
import type { TenantPrincipal } from './tenant-auth.js';

const INVALID_CREDENTIALS = () => new UnauthorizedError('invalid_credentials', 'The email or password is incorrect');

/**
 * Password login → an opaque session token for the user's tenant. Unknown email and wrong
 * password are the same error after the same amount of work. Every limiter is consulted
 * before the password is hashed (each call of a tRPC batch on its own); see
 * createLoginLimiters for what each one stops.
 */
export async function login(deps: ApiDeps, input: { email: string; password: string }, clientIp: string) {
  const { db, loginLimiters: limiters } = deps;
  const email = normaliseEmail(input.email);
  // Hashes and network keys only: no raw addresses in Redis keys.
  const account = createHash('sha256').update(email).digest('hex');
  const address = rateLimitKeyOf(clientIp);
  const accountAndAddress = `${account}:${address}`;
  const limited = (limiter: string) => () => deps.metrics.rateLimited.inc({ limiter });
  await consumeOrThrow(limiters.perAddress, address, limited('login_ip'));
  await consumeOrThrow(limiters.perAccountAndAddress, accountAndAddress, limited('login'));
  const failures = await limiters.accountFailures.get(account).catch(() => null);
  if (failures && failures.consumedPoints >= LOGIN_LIMITS.accountFailuresBeforeSlowdown && !(await limiters.isKnownAddress(account, address))) {
    await consumeOrThrow(limiters.accountSlowdown, account, limited('login_account'));
  }

  const user = await db.selectFrom('users').select(['id', 'password_hash']).where('email', '=', email).executeTakeFirst();
  if (!(await verifyPassword(user?.password_hash ?? null, input.password)) || !user) {
    await limiters.accountFailures.penalty(account, 1).catch(() => undefined);
    throw INVALID_CREDENTIALS();
  }
  // A success: this address may keep trying this account without the slowdown, and its
  // attempt does not count against its budget across accounts.
  await Promise.all([
    limiters.perAccountAndAddress.delete(accountAndAddress).catch(() => undefined),
    limiters.accountFailures.delete(account).catch(() => undefined),
    limiters.perAddress.reward(address, 1).catch(() => undefined),
    limiters.rememberAddress(account, address),
  ]);

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

/** End the caller's session (audited). The row's removal is what every instance's credential cache hears of. */
export async function logout(db: Db, principal: TenantPrincipal): Promise<void> {
  if (principal.kind !== 'session') throw new ForbiddenError('session_required', 'Only a session can log out; revoke an API key instead');
  await db.transaction().execute(async (trx) => {
    await trx.deleteFrom('sessions').where('id', '=', principal.sessionId).execute();
    await appendAudit(trx, { actor: `user:${principal.userId}`, action: 'session.revoked', tenantId: principal.tenantId, data: { sessionId: principal.sessionId, reason: 'logout' } });
  });
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
