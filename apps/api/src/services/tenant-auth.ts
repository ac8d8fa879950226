import { randomBytes } from 'node:crypto';
import type { Db } from '@tenantry/db';
import { type MemberRole, UnauthorizedError } from '@tenantry/domain';
import { hashToken } from './sessions.js';

const API_KEY_PREFIX = 'tnt_k_';

/**
 * Who is calling a tenant route: a signed-in user (session token), or a program holding
 * one of the tenant's API keys. Either way it acts for exactly one tenant.
 */
export type TenantPrincipal =
  | { kind: 'session'; tenantId: string; userId: string; sessionId: string; role: MemberRole }
  | { kind: 'api_key'; tenantId: string; apiKeyId: string; scope: 'read' | 'write' };

export function newTenantApiKey(): { key: string; keyHash: Buffer } {
  const key = API_KEY_PREFIX + randomBytes(32).toString('base64url');
  return { key, keyHash: hashToken(key) };
}

/** Resolve a bearer credential to a tenant principal; 401 when it is missing, unknown, expired or revoked. */
export async function authenticateTenant(db: Db, bearer: string | null): Promise<TenantPrincipal> {
  if (!bearer) throw new UnauthorizedError('unauthenticated', 'A bearer token is required');
  const tokenHash = hashToken(bearer);
  if (bearer.startsWith(API_KEY_PREFIX)) {
    const key = await db
      .selectFrom('tenant_api_keys')
      .select(['id', 'tenant_id', 'scope'])
      .where('key_hash', '=', tokenHash)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (!key) throw new UnauthorizedError('invalid_token', 'The API key is invalid or revoked');
    return { kind: 'api_key', tenantId: key.tenant_id, apiKeyId: key.id, scope: key.scope };
  }
  const session = await db
    .selectFrom('sessions')
    .innerJoin('memberships', (join) => join.onRef('memberships.user_id', '=', 'sessions.user_id').onRef('memberships.tenant_id', '=', 'sessions.tenant_id'))
    .select(['sessions.id', 'sessions.user_id', 'sessions.tenant_id', 'memberships.role'])
    .where('sessions.token_hash', '=', tokenHash)
    .where('sessions.expires_at', '>', new Date())
    .executeTakeFirst();
  if (!session) throw new UnauthorizedError('invalid_token', 'The token is invalid or has expired');
  return { kind: 'session', tenantId: session.tenant_id, userId: session.user_id, sessionId: session.id, role: session.role };
}
