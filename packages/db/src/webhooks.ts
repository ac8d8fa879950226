import { type WebhookEventType, toPublicId } from '@tenantry/domain';
import { type Kysely, sql } from 'kysely';
import type { Database, Tenant } from './schema.js';

export interface WebhookEvent {
  type: WebhookEventType;
  tenantId: string | null;
  data: Record<string, unknown>;
}

/**
 * Put an event in the outbox, with one delivery per enabled endpoint subscribed to its
 * type. Pass the transaction that makes the change the event announces: the event is
 * then never lost (it commits with the change) and never announced for a change that
 * rolled back. Returns the deliveries to enqueue once the transaction has committed (a
 * reconciler enqueues them anyway if that never happens).
 */
export async function recordWebhookEvent(trx: Kysely<Database>, event: WebhookEvent): Promise<string[]> {
  // One statement: the event (a data-modifying CTE, so it is inserted even when no
  // endpoint wants it) and a delivery to every enabled endpoint subscribed to its type.
  const deliveries = await trx
    .with('event', (qb) =>
      qb
        .insertInto('webhook_events')
        .values({
          type: event.type,
          tenant_id: event.tenantId,
          // The body of every delivery of this event, fixed now so each retry sends the same one.
          payload: sql`jsonb_build_object('type', ${event.type}::text, 'timestamp', to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'data', ${JSON.stringify(event.data)}::jsonb)` as unknown as string,
        })
        .returning('id'),
    )
    .insertInto('webhook_deliveries')
    .columns(['event_id', 'endpoint_id'])
    .expression((eb) =>
      eb
        .selectFrom(['event', 'webhook_endpoints'])
        .select(['event.id as event_id', 'webhook_endpoints.id'])
        .where('webhook_endpoints.status', '=', 'enabled')
        .where((w) => w.or([w('webhook_endpoints.events', 'is', null), w(sql`${event.type}::text`, '=', sql`any(webhook_endpoints.events)`)])),
    )
    .returning('id')
    .execute();
  return deliveries.map((d) => d.id);
}

/** How a tenant appears in webhook events: who it is and where it stands, never its data. */
export function tenantEventData(row: Tenant): Record<string, unknown> {
  return {
    id: toPublicId('ten', row.id),
    slug: row.slug,
    name: row.name,
    plan: row.plan,
    status: row.status,
    isolation: row.isolation,
    createdAt: row.created_at.toISOString(),
  };
}
