import { type Db, type Tenant, appendAudit, latestGaugeOf, recordWebhookEvent, tenantEventData } from '@tenantry/db';
import {
  ForbiddenError,
  type Isolation,
  type LifecycleAction,
  NotFoundError,
  type PlanId,
  type TenantView,
  ValidationError,
  type WebhookEventType,
  fromPublicId,
  nextStatus,
  normaliseEmail,
  planHasIsolation,
  toPublicId,
} from '@tenantry/domain';
import { type Transaction, sql } from 'kysely';
import type { Database } from '@tenantry/db';
import type { ApiDeps } from '../context.js';
import { hashPassword } from './passwords.js';
import { enqueueDeliveries } from './webhooks.js';
import type { PlatformPrincipal } from './platform-keys.js';
import { enqueueIntent, recordTenantIntent } from './tenant-intents.js';

const actorOf = (principal: PlatformPrincipal) => `platform:${principal.keyId}`;

/** The webhook event each lifecycle action announces to billing systems. */
const WEBHOOK_EVENT: Record<Exclude<LifecycleAction, 'purge'>, WebhookEventType> = {
  suspend: 'tenant.suspended',
  unsuspend: 'tenant.unsuspended',
  delete: 'tenant.deleted',
  restore: 'tenant.restored',
};

const AUDIT_ACTION: Record<Exclude<LifecycleAction, 'purge'>, string> = {
  suspend: 'tenant.suspended',
  unsuspend: 'tenant.unsuspended',
  delete: 'tenant.deletion_scheduled',
  restore: 'tenant.restored',
};

export function toTenantView(row: Tenant): TenantView {
  return {
    id: toPublicId('ten', row.id),
    slug: row.slug,
    name: row.name,
    status: row.status,
    plan: row.plan,
    isolation: row.isolation,
    isDefault: row.is_default,
    statusReason: row.status_reason,
    deleteAfter: row.delete_after ? new Date(row.delete_after).toISOString() : null,
    deletedAt: row.deleted_at ? new Date(row.deleted_at).toISOString() : null,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

/** A tenant by `ten_…` id or by slug; 404 `tenant_not_found` otherwise. */
export async function findTenant(db: Db | Transaction<Database>, ref: string, options: { lock?: boolean } = {}): Promise<Tenant> {
  const id = fromPublicId('ten', ref);
  let query = db.selectFrom('tenants').selectAll();
  query = id ? query.where('id', '=', id) : query.where('slug', '=', ref);
  if (options.lock) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  if (!row) throw new NotFoundError('Tenant', 'tenant_not_found');
  return row;
}

export async function getTenant(db: Db, ref: string): Promise<TenantView> {
  return toTenantView(await findTenant(db, ref));
}

/** Opaque cursors: the seq of the last item, so a tampered one can only move within the list. */
function encodeCursor(seq: string): string {
  return Buffer.from(`s${seq}`).toString('base64url');
}

function decodeCursor(cursor: string): string {
  const decoded = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!/^s\d{1,19}$/.test(decoded)) throw new ValidationError([{ field: 'cursor', message: 'is not a cursor this api issued' }]);
  return decoded.slice(1);
}

/** LIKE pattern matching `text` anywhere, with the user's % and _ taken literally. */
function containsPattern(text: string): string {
  return `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * Keyset pagination in creation order (seq): stable under concurrent inserts — new tenants
 * land after every existing page boundary — and each page is an index range scan.
 * Search matches name or slug, case-insensitively, as prefix or substring (trigram indexes).
 */
export async function listTenants(
  db: Db,
  input: { search?: string | undefined; plan?: PlanId | undefined; status?: Tenant['status'] | undefined; limit: number; cursor?: string | undefined },
) {
  let query = db.selectFrom('tenants').selectAll();
  if (input.search) {
    const pattern = containsPattern(input.search);
    query = query.where((eb) => eb.or([eb(sql`lower(name)`, 'like', pattern), eb('slug', 'like', pattern)]));
  }
  if (input.plan) query = query.where('plan', '=', input.plan);
  if (input.status) query = query.where('status', '=', input.status);
  if (input.cursor) query = query.where('seq', '>', decodeCursor(input.cursor));
  const rows = await query
    .orderBy('seq')
    .limit(input.limit + 1)
    .execute();
  const page = rows.slice(0, input.limit);
  const last = page.at(-1);
  const storage = await latestGaugeOf(db, 'storageBytes', page.map((row) => row.id));
  return {
    items: page.map((row) => ({ ...toTenantView(row), storageBytes: storage.get(row.id) ?? null })),
    nextCursor: rows.length > input.limit && last ? encodeCursor(last.seq) : null,
  };
}

/** An operator creates a tenant: the same intent and queued saga as public signup, idempotent by owner email. */
export async function createTenant(
  deps: ApiDeps,
  principal: PlatformPrincipal,
  input: { name: string; ownerEmail: string; ownerPassword?: string | undefined; plan?: PlanId | undefined; isolation?: Isolation | undefined },
) {
  const isolation = input.isolation ?? 'schema';
  const plan = input.plan ?? 'trial';
  // Before anything is written: the plan must include the isolation model, and this
  // installation must be able to make tenants of it (its driver says why not).
  if (!planHasIsolation(plan, isolation)) {
    throw new ForbiddenError('capability_missing', `The plan "${plan}" does not include "isolation.${isolation}"`);
  }
  const unavailable = deps.isolation.unavailable(isolation);
  if (unavailable) throw new ValidationError([{ field: 'isolation', message: unavailable }]);
  const email = normaliseEmail(input.ownerEmail);
  const intent = await recordTenantIntent(deps.db, {
    email,
    orgName: input.name,
    isolation,
    plan,
    passwordHash: input.ownerPassword ? await hashPassword(input.ownerPassword) : null,
    source: 'platform',
    actor: actorOf(principal),
  });
  await enqueueIntent(deps, intent, email);
  if (intent.status === 'failed') return { tenantId: toPublicId('ten', intent.tenantId), status: 'failed' as const };
  // A tenant this call recorded is provisioning; one of a known owner email is wherever it stands now.
  const tenant = intent.created ? undefined : await deps.db.selectFrom('tenants').select('status').where('id', '=', intent.tenantId).executeTakeFirst();
  return { tenantId: toPublicId('ten', intent.tenantId), status: tenant?.status ?? ('provisioning' as const) };
}

export async function updateTenant(
  deps: ApiDeps,
  principal: PlatformPrincipal,
  input: { id: string; displayName?: string | undefined; plan?: PlanId | undefined },
): Promise<TenantView> {
  return deps.db.transaction().execute(async (trx) => {
    const before = await findTenant(trx, input.id, { lock: true });
    if (before.status === 'deleted') throw new NotFoundError('Tenant', 'tenant_not_found');
    const changes = {
      ...(input.displayName !== undefined ? { name: input.displayName } : {}),
      ...(input.plan !== undefined ? { plan: input.plan } : {}),
    };
    const after = await trx
      .updateTable('tenants')
      .set({ ...changes, updated_at: sql`now()` })
      .where('id', '=', before.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    if (input.plan !== undefined) {
      await trx.updateTable('billing_states').set({ plan: input.plan, updated_at: sql`now()` }).where('tenant_id', '=', before.id).execute();
    }
    await appendAudit(trx, {
      actor: actorOf(principal),
      action: 'tenant.updated',
      tenantId: before.id,
      data: { before: { name: before.name, plan: before.plan }, after: { name: after.name, plan: after.plan } },
    });
    return toTenantView(after);
  });
}

/**
 * Move a tenant through its lifecycle (see @tenantry/domain lifecycle.ts). The row is
 * locked, the transition checked, applied and audited — actor, reason, from, to — in one
 * transaction.
 */
export async function transitionTenant(
  deps: ApiDeps,
  principal: PlatformPrincipal,
  input: { id: string; action: Exclude<LifecycleAction, 'purge'>; reason?: string | undefined },
): Promise<TenantView> {
  const { view, from, deliveries, tenantId } = await deps.db.transaction().execute(async (trx) => {
    const tenant = await findTenant(trx, input.id, { lock: true });
    const from = tenant.status;
    const to = nextStatus({ status: from, statusBeforeDeletion: tenant.status_before_deletion, isDefault: tenant.is_default }, input.action);
    const retentionDays = deps.config.TENANT_DATA_RETENTION_DAYS;
    const lifecycle =
      input.action === 'delete'
        ? {
            status_before_deletion: from as 'active' | 'suspended',
            delete_after: sql<Date>`now() + make_interval(days => ${retentionDays})`,
          }
        : input.action === 'restore'
          ? { status_before_deletion: null, delete_after: null }
          : {};
    const after = await trx
      .updateTable('tenants')
      .set({
        status: to,
        // The reason shown with the status: kept while suspended or pending deletion.
        status_reason: to === 'active' ? null : (input.reason ?? null),
        ...lifecycle,
        updated_at: sql`now()`,
      })
      .where('id', '=', tenant.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await appendAudit(trx, {
      actor: actorOf(principal),
      action: AUDIT_ACTION[input.action],
      tenantId: tenant.id,
      data: { from, to, reason: input.reason ?? null, ...(after.delete_after ? { deleteAfter: new Date(after.delete_after).toISOString() } : {}) },
    });
    const view = toTenantView(after);
    const deliveries = await recordWebhookEvent(trx, {
      type: WEBHOOK_EVENT[input.action],
      tenantId: tenant.id,
      data: {
        tenant: tenantEventData(after),
        previousStatus: from,
        reason: input.reason ?? null,
        ...(view.deleteAfter ? { deleteAfter: view.deleteAfter } : {}),
      },
    });
    return { view, from, deliveries, tenantId: tenant.id };
  });
  // This instance honours the new status from its next call on; the others when Postgres's
  // announcement reaches them (milliseconds).
  deps.credentials.invalidateTenant(tenantId);
  await enqueueDeliveries(deps, deliveries);
  // Streams of a tenant no longer served close on every instance now, not at their next check.
  await deps.realtime.requestRecheck(tenantId);
  deps.metrics.lifecycleTransitions.inc({ from, to: view.status });
  return view;
}
