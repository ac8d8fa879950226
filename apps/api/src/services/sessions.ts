import { createHash, randomBytes } from 'node:crypto';
import type { Db } from '@tenantry/db';
import { UnauthorizedError } from '@tenantry/domain';

/** Session tokens are opaque random strings; only their SHA-256 is stored. */
const TOKEN_PREFIX = 'tnt_s_';

export function newSessionToken(): { token: string; tokenHash: Buffer } {
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  return { token, tokenHash: hashToken(token) };
}

/**
 * SHA-256 (not a slow hash) is right here: the token has 256 bits of entropy, so nothing
 * can be guessed offline, and the lookup must be an indexed equality — which also means
 * no timing-sensitive string comparison happens in our code.
 */
export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export interface TenantSession {
  sessionId: string;
  userId: string;
  tenantId: string;
}

export async function authenticateTenantToken(db: Db, bearer: string | null): Promise<TenantSession> {
  if (!bearer) throw new UnauthorizedError('unauthenticated', 'A bearer token is required');
  const row = await db
    .selectFrom('sessions')
    .select(['id', 'user_id', 'tenant_id'])
    .where('token_hash', '=', hashToken(bearer))
    .where('expires_at', '>', new Date())
    .executeTakeFirst();
  if (!row) throw new UnauthorizedError('invalid_token', 'The token is invalid or has expired');
  return { sessionId: row.id, userId: row.user_id, tenantId: row.tenant_id };
}
