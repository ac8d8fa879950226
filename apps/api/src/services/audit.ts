import type { Db } from '@tenantry/db';
import { ValidationError, fromPublicId, toPublicId } from '@tenantry/domain';

/** Newest first, keyset on the chain sequence. */
export async function listAudit(db: Db, input: { tenantId?: string | undefined; limit: number; cursor?: string | undefined }) {
  let query = db.selectFrom('audit_log').select(['id', 'chain_seq', 'at', 'actor', 'action', 'tenant_id', 'data', 'hash']);
  if (input.tenantId) {
    const tenantId = fromPublicId('ten', input.tenantId);
    if (!tenantId) throw new ValidationError([{ field: 'tenantId', message: 'must be a tenant id (ten_…)' }]);
    query = query.where('tenant_id', '=', tenantId);
  }
  if (input.cursor) {
    if (!/^\d{1,19}$/.test(input.cursor)) throw new ValidationError([{ field: 'cursor', message: 'is not a cursor this api issued' }]);
    query = query.where('chain_seq', '<', input.cursor);
  }
  const rows = await query.orderBy('chain_seq', 'desc').limit(input.limit + 1).execute();
  const page = rows.slice(0, input.limit);
  return {
    items: page.map((r) => ({
      id: r.id,
      seq: Number(r.chain_seq),
      at: r.at.toISOString(),
      actor: r.actor,
      action: r.action,
      tenantId: r.tenant_id ? toPublicId('ten', r.tenant_id) : null,
      data: r.data,
      hash: Buffer.from(r.hash).toString('hex'),
    })),
    nextCursor: rows.length > input.limit ? (page.at(-1)?.chain_seq ?? null) : null,
  };
}
