import { type Db, appendAudit, decryptSecret } from '@tenantry/db';
import { toPublicId } from '@tenantry/domain';
import { type WebhookQueue, type RetryPolicy, enqueueWebhookDeliveries, webhookRetryDelayMs } from '@tenantry/jobs';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import { Webhook } from 'standardwebhooks';
import { type Resolver, postWebhook } from './http.js';

/** The secret's AAD; must match the api's webhookSecretAad. */
const secretAad = (endpointId: string) => `webhook-endpoint:${endpointId}`;

const MAX_ERROR_LENGTH = 500;

export interface DeliveryOptions {
  db: Db;
  /** The installation key that opens endpoint secrets; without it nothing can be signed. */
  /** The installation key: opens the endpoints' signing secrets. */
  secretKey: Buffer;
  allowPrivate: boolean;
  timeoutMs: number;
  maxAttempts: number;
  backoffMs: number;
  disableAfterMs: number;
  logger: Logger;
  resolver?: Resolver;
}

export type DeliveryOutcome = 'delivered' | 'retry' | 'failed' | 'cancelled' | 'gone' | 'already_final';

/** An attempt failed and another will come (BullMQ retries the job with backoff). */
export class DeliveryAttemptFailed extends Error {}

/**
 * One attempt at one delivery. Postgres is the record: the attempt (status code, error,
 * duration) is written whatever happens, with the delivery's new state, in one
 * transaction; an endpoint failing without a break for `disableAfterMs` is disabled there
 * too. The `webhook-id` is the delivery's id, the same on every attempt, so receivers
 * can deduplicate an at-least-once stream.
 */
export async function deliverWebhook(options: DeliveryOptions, deliveryId: string): Promise<DeliveryOutcome> {
  const { db } = options;
  const delivery = await db
    .selectFrom('webhook_deliveries as d')
    .innerJoin('webhook_endpoints as e', 'e.id', 'd.endpoint_id')
    .innerJoin('webhook_events as v', 'v.id', 'd.event_id')
    .select(['d.id', 'd.status', 'd.attempts', 'd.endpoint_id', 'e.url', 'e.status as endpoint_status', 'e.secret_enc', 'v.payload', 'v.type'])
    .where('d.id', '=', deliveryId)
    .executeTakeFirst();
  // The endpoint was deleted (its deliveries went with it).
  if (!delivery) return 'gone';
  if (delivery.status !== 'pending') return 'already_final';
  if (delivery.endpoint_status === 'disabled') {
    await db.updateTable('webhook_deliveries').set({ status: 'cancelled' }).where('id', '=', deliveryId).where('status', '=', 'pending').execute();
    return 'cancelled';
  }
  if (delivery.attempts >= options.maxAttempts) {
    // Its last attempt's job was lost before it could say so (Redis flushed, worker killed).
    await db.updateTable('webhook_deliveries').set({ status: 'failed' }).where('id', '=', deliveryId).where('status', '=', 'pending').execute();
    return 'failed';
  }
  const secret = decryptSecret(options.secretKey, delivery.secret_enc, secretAad(delivery.endpoint_id));

  const body = JSON.stringify(delivery.payload);
  const messageId = toPublicId('msg', delivery.id);
  const timestamp = new Date();
  const headers = {
    'webhook-id': messageId,
    'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
    'webhook-signature': new Webhook(secret).sign(messageId, timestamp, body),
  };
  const started = performance.now();
  let statusCode: number | null = null;
  let error: string | null = null;
  try {
    statusCode = (await postWebhook(delivery.url, headers, body, { allowPrivate: options.allowPrivate, timeoutMs: options.timeoutMs, resolver: options.resolver })).status;
    if (statusCode >= 300 && statusCode < 400) error = `answered ${statusCode}: redirects are not followed`;
    else if (statusCode < 200 || statusCode >= 300) error = `answered ${statusCode}`;
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
  }
  const durationMs = Math.round(performance.now() - started);
  const attempt = delivery.attempts + 1;
  const ok = error === null;
  const final = !ok && attempt >= options.maxAttempts;

  const disabled = await db.transaction().execute(async (trx) => {
    await trx
      .insertInto('webhook_attempts')
      .values({ delivery_id: deliveryId, attempt, status_code: statusCode, error: error?.slice(0, MAX_ERROR_LENGTH) ?? null, duration_ms: durationMs })
      .execute();
    await trx
      .updateTable('webhook_deliveries')
      .set({
        attempts: attempt,
        last_attempt_at: sql`now()`,
        status: ok ? 'delivered' : final ? 'failed' : 'pending',
        ...(ok ? { delivered_at: sql`now()` } : {}),
        // When the retry is due at the latest; the reconciler re-enqueues it if it is not there by then.
        ...(!ok && !final ? { next_attempt_at: sql`now() + make_interval(secs => ${webhookRetryDelayMs(attempt, options.backoffMs) / 1000})` } : {}),
      })
      .where('id', '=', deliveryId)
      // Cancelled meanwhile (its endpoint was disabled): it stays cancelled.
      .where('status', '=', 'pending')
      .execute();
    if (ok) {
      await trx.updateTable('webhook_endpoints').set({ failing_since: null }).where('id', '=', delivery.endpoint_id).where('failing_since', 'is not', null).execute();
      return false;
    }
    const endpoint = await trx
      .updateTable('webhook_endpoints')
      .set({ failing_since: sql`coalesce(failing_since, now())` })
      .where('id', '=', delivery.endpoint_id)
      .returning(['status', sql<boolean>`now() - failing_since >= make_interval(secs => ${options.disableAfterMs / 1000})`.as('overdue'), 'failing_since'])
      .executeTakeFirst();
    if (!endpoint || endpoint.status !== 'enabled' || !endpoint.overdue) return false;
    const reason = `every attempt failed since ${new Date(endpoint.failing_since!).toISOString()} (last: ${error!.slice(0, 200)})`;
    await trx.updateTable('webhook_endpoints').set({ status: 'disabled', disabled_reason: reason, updated_at: sql`now()` }).where('id', '=', delivery.endpoint_id).execute();
    await trx.updateTable('webhook_deliveries').set({ status: 'cancelled' }).where('endpoint_id', '=', delivery.endpoint_id).where('status', '=', 'pending').execute();
    await appendAudit(trx, {
      actor: 'system:worker',
      action: 'webhook.disabled',
      data: { endpointId: toPublicId('whe', delivery.endpoint_id), url: delivery.url, reason },
    });
    return true;
  });

  // Never the secret, the signature or the body: ids, status and timing only.
  const fields = { deliveryId, endpointId: toPublicId('whe', delivery.endpoint_id), type: delivery.type, attempt, statusCode, durationMs };
  if (ok) {
    options.logger.info(fields, 'webhook delivered');
    return 'delivered';
  }
  options.logger.warn({ ...fields, error, final, endpointDisabled: disabled }, 'webhook attempt failed');
  if (final || disabled) return disabled ? 'cancelled' : 'failed';
  throw new DeliveryAttemptFailed(`attempt ${attempt} of ${deliveryId} failed: ${error}`);
}

/** At most this many deliveries are re-enqueued per pass; the next pass takes the rest. */
const RECONCILE_BATCH = 1_000;

/** How far past due a pending delivery must be before it counts as lost (queue latency, jitter). */
const RECONCILE_SLACK_SECONDS = 30;

/**
 * Re-enqueue pending deliveries that are due but evidently not queued: their job was lost
 * (Redis flushed), or never added (the enqueue after commit failed). Enqueueing is
 * idempotent by job id, so a delivery whose job is merely waiting is untouched.
 */
export async function reconcileWebhookDeliveries(db: Db, queue: WebhookQueue, retry: RetryPolicy, slackSeconds = RECONCILE_SLACK_SECONDS): Promise<number> {
  const due = await db
    .selectFrom('webhook_deliveries')
    .select('id')
    .where('status', '=', 'pending')
    .where('next_attempt_at', '<=', sql<Date>`now() - make_interval(secs => ${slackSeconds})`)
    .orderBy('next_attempt_at')
    .limit(RECONCILE_BATCH)
    .execute();
  await enqueueWebhookDeliveries(
    queue,
    due.map((d) => d.id),
    retry,
  );
  return due.length;
}
