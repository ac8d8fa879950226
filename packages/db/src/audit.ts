import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface AuditEntry {
  /** Who did it: `system:worker`, `public:signup`, `user:<uuid>`, `platform:<key id>`. */
  actor: string;
  /** What happened, `noun.verb`: `tenant.provisioned`, `signup.failed`, `session.created`. */
  action: string;
  tenantId?: string | null;
  data?: Record<string, unknown>;
}

/**
 * Append to the audit log. Pass the transaction that makes the change, so the change and
 * its record commit or roll back together. Never pass secrets in `data`.
 */
export async function appendAudit(db: Kysely<Database>, entry: AuditEntry): Promise<void> {
  await db
    .insertInto('audit_log')
    .values({
      actor: entry.actor,
      action: entry.action,
      tenant_id: entry.tenantId ?? null,
      data: JSON.stringify(entry.data ?? {}),
    })
    .execute();
}
