import { randomBytes } from 'node:crypto';
import type { Db, Tenant } from '@tenantry/db';
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

/**
 * The tenant a credential acts for, as every tenant call needs it (status, routing,
 * hostname, whether a move pauses its writes). Cached per credential by
 * services/credential-cache.ts, which drops it the moment Postgres announces a change of
 * any of these columns.
 */
export type CredentialTenant = Pick<Tenant, 'id' | 'slug' | 'status' | 'isolation' | 'schema_name' | 'placement_generation' | 'writes_paused_at'>;

const TENANT_COLUMNS = ['tenants.slug', 'tenants.status', 'tenants.isolation', 'tenants.schema_name', 'tenants.placement_generation', 'tenants.writes_paused_at'] as const;

/** A resolved credential: who calls, its tenant, and until when it may (sessions expire; API keys last until revoked). */
export interface ResolvedCredential {
  principal: TenantPrincipal;
  tenant: CredentialTenant;
  expiresAt?: Date;
}

/**
 * Resolve a bearer credential to a tenant principal and its tenant, in one query (one
 * round trip, not two; the credential cache spares most calls even that); 401 when it is
 * missing, unknown, expired or revoked.
 */
export async function authenticateTenant(db: Db, bearer: string | null): Promise<ResolvedCredential> {
  if (!bearer) throw new UnauthorizedError('unauthenticated', 'A bearer token is required');
  const tokenHash = hashToken(bearer);
  if (bearer.startsWith(API_KEY_PREFIX)) {
    const key = await db
      .selectFrom('tenant_api_keys')
      .innerJoin('tenants', 'tenants.id', 'tenant_api_keys.tenant_id')
      .select(['tenant_api_keys.id', 'tenant_api_keys.tenant_id', 'tenant_api_keys.scope', ...TENANT_COLUMNS])
      .where('tenant_api_keys.key_hash', '=', tokenHash)
      .where('tenant_api_keys.revoked_at', 'is', null)
      .executeTakeFirst();
    if (!key) throw new UnauthorizedError('invalid_token', 'The API key is invalid or revoked');
    return {
      principal: { kind: 'api_key', tenantId: key.tenant_id, apiKeyId: key.id, scope: key.scope },
      tenant: { id: key.tenant_id, ...tenantColumnsOf(key) },
    };
  }
  const session = await db
    .selectFrom('sessions')
    .innerJoin('memberships', (join) => join.onRef('memberships.user_id', '=', 'sessions.user_id').onRef('memberships.tenant_id', '=', 'sessions.tenant_id'))
    .innerJoin('tenants', 'tenants.id', 'sessions.tenant_id')
    .select(['sessions.id', 'sessions.user_id', 'sessions.tenant_id', 'sessions.expires_at', 'memberships.role', ...TENANT_COLUMNS])
    .where('sessions.token_hash', '=', tokenHash)
    .where('sessions.expires_at', '>', new Date())
    .executeTakeFirst();
  if (!session) throw new UnauthorizedError('invalid_token', 'The token is invalid or has expired');
  return {
    principal: { kind: 'session', tenantId: session.tenant_id, userId: session.user_id, sessionId: session.id, role: session.role },
    tenant: { id: session.tenant_id, ...tenantColumnsOf(session) },
    expiresAt: session.expires_at,
  };
}

function tenantColumnsOf(row: Omit<CredentialTenant, 'id'>): Omit<CredentialTenant, 'id'> {
  return {
    slug: row.slug,
    status: row.status,
    isolation: row.isolation,
    schema_name: row.schema_name,
    placement_generation: row.placement_generation,
    writes_paused_at: row.writes_paused_at,
  };
}
