import { createHash } from 'node:crypto';
import type { BackoffOptions } from 'bullmq';
import { z } from 'zod';

/**
 * The job catalog: one entry per job, shared by the api (producer) and the worker
 * (consumer). Payloads carry ids only — Redis keeps job data in clear text, so no email,
 * password hash or token ever goes into a job.
 */
export const QUEUES = {
  /** Tenant provisioning sagas. */
  provisioning: 'provisioning',
  /** Housekeeping on a schedule: the reconciler, the purge of deleted tenants, the month close. */
  maintenance: 'maintenance',
  /** Outgoing webhook deliveries, one job per (event, endpoint). */
  webhooks: 'webhooks',
  /** Moves of tenants between isolation models, one job per move. */
  moves: 'moves',
} as const;

export const JOBS = {
  provisionTenant: 'provision-tenant',
  reconcileSignups: 'reconcile-signups',
  purgeTenants: 'purge-tenants',
  expireTrials: 'expire-trials',
  probeTenants: 'probe-tenants',
  sampleUsage: 'sample-usage',
  deliverWebhook: 'deliver-webhook',
  reconcileWebhooks: 'reconcile-webhooks',
  closeMonths: 'close-months',
  sweepFiles: 'sweep-files',
  moveTenant: 'move-tenant',
  reconcileMoves: 'reconcile-moves',
} as const;

export const ProvisionTenantPayload = z.object({
  signupId: z.uuid(),
  generation: z.number().int().positive(),
});
export type ProvisionTenantPayload = z.infer<typeof ProvisionTenantPayload>;

/**
 * The job id of a signup's provisioning run. From a hash of the normalised email (no raw
 * email in Redis keys, no ":" which BullMQ forbids, never all digits), plus the signup's
 * generation: while a run is queued or active a repeat enqueue is a no-op, and a signup
 * tried again after failing gets a fresh id that no leftover job can swallow.
 */
export function provisionJobId(normalisedEmail: string, generation: number): string {
  const digest = createHash('sha256').update(normalisedEmail).digest('hex');
  return `prov-${digest}-g${generation}`;
}

export const DeliverWebhookPayload = z.object({ deliveryId: z.uuid() });
export type DeliverWebhookPayload = z.infer<typeof DeliverWebhookPayload>;

/**
 * The job id of a webhook delivery: one per (event, endpoint) for its whole life, so an
 * enqueue while it is queued, delayed for a retry or running adds nothing, and the
 * reconciler can re-enqueue blindly.
 */
export function webhookJobId(deliveryId: string): string {
  return `whd-${deliveryId.replaceAll('-', '')}`;
}

export const MoveTenantPayload = z.object({ moveId: z.uuid() });
export type MoveTenantPayload = z.infer<typeof MoveTenantPayload>;

/**
 * The job id of a move: one per move for its whole life, so the api's enqueue and the
 * reconciler's re-enqueue of an open move add nothing while it is queued or running.
 */
export function moveJobId(moveId: string): string {
  return `move-${moveId.replaceAll('-', '')}`;
}

export interface RetryPolicy {
  attempts: number;
  backoff: BackoffOptions;
}

/** Exponential backoff with jitter, so a burst of failures does not retry in lock-step. */
export function provisioningRetryPolicy(attempts: number, baseDelayMs: number): RetryPolicy {
  return { attempts, backoff: { type: 'exponential', delay: baseDelayMs, jitter: 0.5 } };
}

/**
 * Webhook retries: exponential from `baseDelayMs` (10 s, 20 s, 40 s, … by default about
 * two days over 15 attempts), with jitter so a receiver coming back is not hit by every
 * delivery at once. The attempt count is also enforced from Postgres by the handler.
 */
export function webhookRetryPolicy(attempts: number, baseDelayMs: number): RetryPolicy {
  return { attempts, backoff: { type: 'exponential', delay: baseDelayMs, jitter: 0.5 } };
}

/**
 * Move retries: a step that failed (a target server briefly away, a worker's Postgres
 * blip) is resumed from the state recorded in Postgres; after the last attempt the move
 * is rolled back. Producer and reconciler use the same policy.
 */
export const MOVE_RETRY_POLICY: RetryPolicy = { attempts: 5, backoff: { type: 'exponential', delay: 2_000, jitter: 0.5 } };

/** The longest wait before attempt `attemptsMade + 1` under webhookRetryPolicy (jitter only shortens it). */
export function webhookRetryDelayMs(attemptsMade: number, baseDelayMs: number): number {
  return baseDelayMs * 2 ** Math.max(0, attemptsMade - 1);
}

/**
 * The pub/sub channel on which a billing change is announced, so every api instance drops
 * its cached entitlements for the tenant. Published by the api (admin changes, Stripe) and
 * the worker (trial expiry).
 */
export function entitlementsChannel(prefix: string): string {
  return `${prefix}:entitlements:invalidate`;
}
