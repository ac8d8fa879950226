import { Queue } from 'bullmq';
import {
  type DeliverWebhookPayload,
  JOBS,
  MOVE_RETRY_POLICY,
  type MoveTenantPayload,
  type ProvisionTenantPayload,
  QUEUES,
  type RetryPolicy,
  moveJobId,
  provisionJobId,
  webhookJobId,
} from './catalog.js';
import { type RedisClient, type RedisSettings, queuePrefix } from './redis.js';

export type ProvisioningQueue = Queue<ProvisionTenantPayload>;

/** The provisioning queue as a producer sees it (the api, and the reconciler). */
export function createProvisioningQueue(connection: RedisClient, settings: RedisSettings): ProvisioningQueue {
  return new Queue<ProvisionTenantPayload>(QUEUES.provisioning, { connection, prefix: queuePrefix(settings), skipWaitingForReady: true });
}

export interface ProvisionRequest {
  signupId: string;
  generation: number;
  normalisedEmail: string;
}

/**
 * Enqueue a provisioning run. Idempotent: the job id is deterministic, so a second call
 * while the run is queued, delayed or active adds nothing. Finished jobs are removed so
 * the id never blocks a later, legitimate run (PITFALLS: BullMQ ignores re-adds silently).
 */
export async function enqueueProvisioning(queue: ProvisioningQueue, request: ProvisionRequest, retry: RetryPolicy): Promise<void> {
  await queue.add(
    JOBS.provisionTenant,
    { signupId: request.signupId, generation: request.generation },
    {
      jobId: provisionJobId(request.normalisedEmail, request.generation),
      attempts: retry.attempts,
      backoff: retry.backoff,
      removeOnComplete: true,
      removeOnFail: true,
    },
  );
}

export type WebhookQueue = Queue<DeliverWebhookPayload>;

/** The webhook delivery queue (producers: the api and the worker's reconciler and saga). */
export function createWebhookQueue(connection: RedisClient, settings: RedisSettings): WebhookQueue {
  return new Queue<DeliverWebhookPayload>(QUEUES.webhooks, { connection, prefix: queuePrefix(settings), skipWaitingForReady: true });
}

/**
 * Enqueue deliveries. Idempotent per delivery (its job id is fixed), so the reconciler may
 * call it for anything pending. Finished jobs are removed: a delivery is final in Postgres.
 */
export async function enqueueWebhookDeliveries(queue: WebhookQueue, deliveryIds: readonly string[], retry: RetryPolicy): Promise<void> {
  if (deliveryIds.length === 0) return;
  await queue.addBulk(
    deliveryIds.map((deliveryId) => ({
      name: JOBS.deliverWebhook,
      data: { deliveryId },
      opts: { jobId: webhookJobId(deliveryId), attempts: retry.attempts, backoff: retry.backoff, removeOnComplete: true, removeOnFail: true },
    })),
  );
}

export type MoveQueue = Queue<MoveTenantPayload>;

/** The move queue (producers: the api, and the worker's reconciler). */
export function createMoveQueue(connection: RedisClient, settings: RedisSettings): MoveQueue {
  return new Queue<MoveTenantPayload>(QUEUES.moves, { connection, prefix: queuePrefix(settings), skipWaitingForReady: true });
}

/**
 * Enqueue a move's state machine. Idempotent by job id; finished jobs are removed so the
 * reconciler can enqueue an open move again whose job failed for good or was lost.
 */
export async function enqueueMove(queue: MoveQueue, moveId: string): Promise<void> {
  await queue.add(
    JOBS.moveTenant,
    { moveId },
    { jobId: moveJobId(moveId), attempts: MOVE_RETRY_POLICY.attempts, backoff: MOVE_RETRY_POLICY.backoff, removeOnComplete: true, removeOnFail: true },
  );
}
