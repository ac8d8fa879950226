import { type Db, appendAudit } from '@tenantry/db';
import { ForbiddenError, NotFoundError } from '@tenantry/domain';
import { sql } from 'kysely';
import { type TenantPrincipal, newTenantApiKey } from './tenant-auth.js';

/** Only a signed-in owner or admin manages keys: an API key cannot mint or revoke keys. */
function requireTenantAdmin(principal: TenantPrincipal): Extract<TenantPrincipal, { kind: 'session' }> {
  if (principal.kind !== 'session' || (principal.role !== 'owner' && principal.role !== 'admin')) {
    throw new ForbiddenError('tenant_admin_required', "Managing API keys needs a signed-in owner or admin of the tenant");
  }
  return principal;
}

const view = (row: { id: string; name: string; scope: 'read' | 'write'; created_at: Date; revoked_at: Date | string | null }) => ({
  id: row.id,
  name: row.name,
  scope: row.scope,
  createdAt: row.created_at.toISOString(),
  revokedAt: row.revoked_at ? new Date(row.revoked_at).toISOString() : null,
});

/** A new key for the caller's tenant; the key itself is in this answer only, never stored. */
export async function createApiKey(db: Db, principal: TenantPrincipal, input: { name: string; scope: 'read' | 'write' }) {
  const admin = requireTenantAdmin(principal);
  const { key, keyHash } = newTenantApiKey();
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .insertInto('tenant_api_keys')
      .values({ tenant_id: admin.tenantId, name: input.name, scope: input.scope, key_hash: keyHash, created_by: admin.userId })
      .returning(['id', 'name', 'scope', 'created_at', 'revoked_at'])
      .executeTakeFirstOrThrow();
    await appendAudit(trx, {
      actor: `user:${admin.userId}`,
      action: 'api_key.created',
      tenantId: admin.tenantId,
      data: { apiKeyId: row.id, name: row.name, scope: row.scope },
    });
    return { ...view(row), key };
  });
}

export async function listApiKeys(db: Db, principal: TenantPrincipal) {
  const rows = await db
    .selectFrom('tenant_api_keys')
    .select(['id', 'name', 'scope', 'created_at', 'revoked_at'])
    .where('tenant_id', '=', principal.tenantId)
    .orderBy('created_at')
    .execute();
  return { items: rows.map(view) };
}

/** Revoke one of the caller's tenant's keys. Another tenant's key id is 404, like an unknown one. */
export async function revokeApiKey(db: Db, principal: TenantPrincipal, id: string) {
  const admin = requireTenantAdmin(principal);
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .updateTable('tenant_api_keys')
      .set({ revoked_at: sql`coalesce(revoked_at, now())` })
      .where('id', '=', id)
      .where('tenant_id', '=', admin.tenantId)
      .returning(['id', 'name', 'scope', 'created_at', 'revoked_at'])
      .executeTakeFirst();
    if (!row) throw new NotFoundError('API key', 'api_key_not_found');
    await appendAudit(trx, { actor: `user:${admin.userId}`, action: 'api_key.revoked', tenantId: admin.tenantId, data: { apiKeyId: row.id } });
    return view(row);
  });
}
