import { randomBytes, randomUUID } from 'node:crypto';
import { type Db, appendAudit, encryptSecret } from '@tenantry/db';
import {
  NotFoundError,
  UnsafeWebhookTargetError,
  ValidationError,
  type WebhookEndpointView,
  type WebhookEventType,
  checkWebhookUrl,
  fromPublicId,
  toPublicId,
} from '@tenantry/domain';
import { enqueueWebhookDeliveries, webhookRetryPolicy } from '@tenantry/jobs';
import type { ApiDeps } from '../context.js';
import { withTimeout } from '../timeout.js';
import type { PlatformPrincipal } from './platform-keys.js';

const ENQUEUE_TIMEOUT_MS = 2_000;

/** Bytes of a signing secret (Standard Webhooks asks for 24–64). */
const SECRET_BYTES = 32;

/** The AAD a secret is sealed with: a sealed secret copied onto another endpoint's row does not open. */
export const webhookSecretAad = (endpointId: string) => `webhook-endpoint:${endpointId}`;

interface EndpointRow {
  id: string;
  url: string;
  description: string | null;
  events: string[] | null;
  status: 'enabled' | 'disabled';
  disabled_reason: string | null;
  failing_since: Date | null;
  created_at: Date;
}

const VIEW_COLUMNS = ['id', 'url', 'description', 'events', 'status', 'disabled_reason', 'failing_since', 'created_at'] as const;

function toView(row: EndpointRow): WebhookEndpointView {
  return {
    id: toPublicId('whe', row.id),
    url: row.url,
    events: (row.events as WebhookEventType[] | null) ?? null,
    description: row.description,
    status: row.status,
    disabledReason: row.disabled_reason,
    failingSince: row.failing_since ? new Date(row.failing_since).toISOString() : null,
    createdAt: row.created_at.toISOString(),
  };
}

/**
 * Register an endpoint. The signing secret is generated here, returned once, and stored
 * only sealed with the installation key.
 */
export async function createWebhookEndpoint(
  deps: ApiDeps,
  principal: PlatformPrincipal,
  input: { url: string; events?: WebhookEventType[] | undefined; description?: string | undefined },
) {
  let url: URL;
  try {
    url = checkWebhookUrl(input.url, deps.config.WEBHOOK_ALLOW_PRIVATE_TARGETS);
  } catch (err) {
    if (err instanceof UnsafeWebhookTargetError) throw new ValidationError([{ field: 'url', message: err.message }]);
    throw err;
  }
  const id = randomUUID();
  const secret = `whsec_${randomBytes(SECRET_BYTES).toString('base64')}`;
  const events = input.events ? [...new Set(input.events)] : null;
  const row = await deps.db.transaction().execute(async (trx) => {
    const inserted = await trx
      .insertInto('webhook_endpoints')
      .values({
        id,
        url: url.toString(),
        description: input.description || null,
        events,
        secret_enc: encryptSecret(deps.secretKey, secret, webhookSecretAad(id)),
        created_by: `platform:${principal.keyId}`,
      })
      .returning(VIEW_COLUMNS)
      .executeTakeFirstOrThrow();
    await appendAudit(trx, {
      actor: `platform:${principal.keyId}`,
      action: 'webhook.created',
      data: { endpointId: toPublicId('whe', id), url: inserted.url, events },
    });
    return inserted;
  });
  return { ...toView(row), secret };
}

export async function listWebhookEndpoints(db: Db) {
  const rows = await db.selectFrom('webhook_endpoints').select(VIEW_COLUMNS).orderBy('created_at').orderBy('id').execute();
  return { items: rows.map(toView) };
}

/** Remove an endpoint; its pending deliveries go with it (nothing more is sent to it). */
export async function deleteWebhookEndpoint(deps: ApiDeps, principal: PlatformPrincipal, publicId: string) {
  const id = fromPublicId('whe', publicId);
  const row = await deps.db.transaction().execute(async (trx) => {
    const deleted = id ? await trx.deleteFrom('webhook_endpoints').where('id', '=', id).returning(VIEW_COLUMNS).executeTakeFirst() : undefined;
    if (!deleted) throw new NotFoundError('Webhook endpoint', 'webhook_not_found');
    await appendAudit(trx, { actor: `platform:${principal.keyId}`, action: 'webhook.deleted', data: { endpointId: publicId, url: deleted.url } });
    return deleted;
  });
  return toView(row);
}

/**
 * Hand committed deliveries to the queue. Best effort by design: the outbox rows are
 * already committed, so if Redis is away the worker's reconciler sends them later.
 */
export async function enqueueDeliveries(deps: ApiDeps, deliveryIds: readonly string[]): Promise<void> {
  if (deliveryIds.length === 0) return;
  try {
    await withTimeout(
      enqueueWebhookDeliveries(deps.webhookQueue, deliveryIds, webhookRetryPolicy(deps.config.WEBHOOK_ATTEMPTS, deps.config.WEBHOOK_BACKOFF_MS)),
      ENQUEUE_TIMEOUT_MS,
    );
  } catch (err) {
    deps.logger.warn({ err: (err as Error).message, deliveries: deliveryIds.length }, 'webhook enqueue failed; the reconciler will send them');
  }
}
