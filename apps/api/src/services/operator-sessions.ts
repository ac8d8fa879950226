import { createHmac, timingSafeEqual } from 'node:crypto';
import { appendAudit } from '@tenantry/db';
import { ForbiddenError, UnauthorizedError } from '@tenantry/domain';
import { sql } from 'kysely';
import type { ApiDeps, RequestContext } from '../context.js';
import { type PlatformPrincipal, authenticatePlatform } from './platform-keys.js';
import { hashToken, newSessionToken } from './sessions.js';

/**
 * Operator sessions: the dashboard exchanges a platform key, once, for a short-lived
 * session held in an HttpOnly cookie, so the key itself never stays in the browser.
 *
 * `__Host-` makes the browser refuse the cookie unless it is Secure, host-only and Path=/,
 * so no sibling subdomain can plant or shadow it. SameSite=Strict keeps it off cross-site
 * requests; the CSRF token below is the second, independent guard on writes.
 */
export const OPERATOR_COOKIE = '__Host-tenantry_operator';
export const CSRF_HEADER = 'x-csrf-token';

const TOKEN_PREFIX = 'tnt_o_';
const CSRF_LABEL = 'tenantry operator csrf v1';

export interface OperatorSessionView {
  keyId: string;
  expiresAt: string;
  csrfToken: string;
}

/**
 * The synchronizer token of a session, derived from the session token rather than stored:
 * only the cookie's holder can compute it, the page learns it from `operator.session`, and
 * nothing secret about it sits in the database.
 */
export function csrfTokenOf(sessionToken: string): string {
  return createHmac('sha256', sessionToken).update(CSRF_LABEL).digest('base64url');
}

function csrfMatches(sessionToken: string, presented: string | null): boolean {
  if (!presented) return false;
  const expected = Buffer.from(csrfTokenOf(sessionToken));
  const given = Buffer.from(presented);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export function sessionCookie(token: string, ttlSeconds: number): string {
  return `${OPERATOR_COOKIE}=${token}; Path=/; Max-Age=${ttlSeconds}; HttpOnly; Secure; SameSite=Strict`;
}

export const CLEARED_SESSION_COOKIE = `${OPERATOR_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict`;

const sessionEnded = () => new UnauthorizedError('session_expired', 'The operator session has expired or was ended: sign in again');

/**
 * Sign in: the bearer must be a platform key itself (never a session, so a session cannot
 * prolong itself). Expired sessions are swept on the way, in the same transaction.
 */
export async function signInOperator(deps: ApiDeps, bearer: string | null): Promise<{ token: string; view: OperatorSessionView }> {
  const principal = await authenticatePlatform(deps, bearer);
  const { token, tokenHash } = newSessionToken(TOKEN_PREFIX);
  const expiresAt = new Date(Date.now() + deps.config.OPERATOR_SESSION_TTL_MINUTES * 60_000);
  await deps.db.transaction().execute(async (trx) => {
    await trx.deleteFrom('operator_sessions').where('expires_at', '<=', sql<Date>`now()`).execute();
    const row = await trx
      .insertInto('operator_sessions')
      .values({ token_hash: tokenHash, key_id: principal.keyId, key_hash: hashToken(bearer!), expires_at: expiresAt })
      .returning('id')
      .executeTakeFirstOrThrow();
    await appendAudit(trx, {
      actor: `platform:${principal.keyId}`,
      action: 'operator_session.created',
      data: { sessionId: row.id, keyId: principal.keyId, expiresAt: expiresAt.toISOString() },
    });
  });
  return { token, view: { keyId: principal.keyId, expiresAt: expiresAt.toISOString(), csrfToken: csrfTokenOf(token) } };
}

interface OperatorSession {
  id: string;
  keyId: string;
  expiresAt: Date;
}

/** The live session of a cookie: unexpired, and its platform key still configured or stored unrevoked. */
async function findOperatorSession(deps: ApiDeps, token: string): Promise<OperatorSession | null> {
  const row = await deps.db
    .selectFrom('operator_sessions as s')
    .leftJoin('platform_keys as k', (join) => join.onRef('k.key_hash', '=', 's.key_hash').on('k.revoked_at', 'is', null))
    .select(['s.id', 's.key_id', 's.key_hash', 's.expires_at', 'k.id as storedKeyId'])
    .where('s.token_hash', '=', hashToken(token))
    .where('s.expires_at', '>', sql<Date>`now()`)
    .executeTakeFirst();
  if (!row) return null;
  const keyActive = row.storedKeyId !== null || deps.platformKeyHashes.some((hash) => hash.equals(row.key_hash));
  return keyActive ? { id: row.id, keyId: row.key_id, expiresAt: row.expires_at } : null;
}

/** The session of this request's cookie, for the dashboard to learn its CSRF token and expiry after a reload. */
export async function currentOperatorSession(ctx: RequestContext): Promise<OperatorSessionView> {
  const token = ctx.operatorToken;
  const session = token ? await findOperatorSession(ctx.deps, token) : null;
  if (!token || !session) {
    if (token) ctx.responseHeaders['set-cookie'] = CLEARED_SESSION_COOKIE;
    throw token ? sessionEnded() : new UnauthorizedError('unauthenticated', 'No operator session: sign in with a platform key');
  }
  return { keyId: session.keyId, expiresAt: session.expiresAt.toISOString(), csrfToken: csrfTokenOf(token) };
}

/**
 * Who is calling a platform route. A bearer credential is judged as a platform key (as
 * before sessions existed); without one, the operator session cookie stands in for the key
 * it came from, with exactly its rights — and a write must carry the session's CSRF token.
 */
export async function authenticateOperator(ctx: RequestContext, type: 'query' | 'mutation' | 'subscription'): Promise<PlatformPrincipal> {
  const token = ctx.operatorToken;
  if (ctx.bearer || !token) return authenticatePlatform(ctx.deps, ctx.bearer);
  const session = await findOperatorSession(ctx.deps, token);
  if (!session) {
    ctx.responseHeaders['set-cookie'] = CLEARED_SESSION_COOKIE;
    throw sessionEnded();
  }
  if (type !== 'query' && !csrfMatches(token, ctx.csrfToken)) {
    throw new ForbiddenError('csrf_token_invalid', `A write with the operator session needs its CSRF token in the ${CSRF_HEADER} header`);
  }
  return { keyId: session.keyId, sessionId: session.id };
}

/** Sign out: the session is deleted (and audited); the cookie is cleared either way. */
export async function signOutOperator(ctx: RequestContext): Promise<{ signedOut: true }> {
  const principal = await authenticateOperator(ctx, 'mutation');
  ctx.responseHeaders['set-cookie'] = CLEARED_SESSION_COOKIE;
  if (!principal.sessionId) throw new ForbiddenError('operator_session_required', 'Sign out ends an operator session: call it with the session cookie');
  const sessionId = principal.sessionId;
  await ctx.deps.db.transaction().execute(async (trx) => {
    await trx.deleteFrom('operator_sessions').where('id', '=', sessionId).execute();
    await appendAudit(trx, {
      actor: `platform:${principal.keyId}`,
      action: 'operator_session.ended',
      data: { sessionId, keyId: principal.keyId, reason: 'signed_out' },
    });
  });
  return { signedOut: true };
}
