import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Db } from '@tenantry/db';
import { IllegalSubscriptionTransitionError, NotFoundError, PlanId, type SubscriptionState, fromPublicId } from '@tenantry/domain';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import { type BillingChange, applyBillingChange } from '../services/billing.js';
import { toWireError } from '../errors.js';
import { withTimeout } from '../timeout.js';
import { sendJson } from './respond.js';

/** Largest webhook body accepted; Stripe's events are far smaller. */
export const STRIPE_WEBHOOK_MAX_BODY_BYTES = 1024 * 1024;

/** How long the post-commit cache invalidation may hold up the answer to Stripe. */
const INVALIDATION_TIMEOUT_MS = 2_000;

/** The subscription events handled: each carries the subscription as it is at `event.created`. */
export const HANDLED_STRIPE_EVENT_TYPES: ReadonlySet<string> = new Set([
  'customer.subscription.created',
  'customer.subscription.updated',
  'customer.subscription.deleted',
  'customer.subscription.paused',
  'customer.subscription.resumed',
  'customer.subscription.trial_will_end',
]);

/**
 * Stripe subscription status → our subscription state. `incomplete` (first payment not yet
 * made) and `incomplete_expired` (it never was) say nothing about an existing tenant's
 * access: they are recorded and ignored, as is any status Stripe adds later.
 */
export const STRIPE_STATUS_TO_STATE: Readonly<Record<string, SubscriptionState>> = {
  trialing: 'trial',
  active: 'active',
  past_due: 'grace',
  unpaid: 'expired',
  canceled: 'expired',
  paused: 'suspended',
};

/** What became of an event; stored in billing_events.outcome. */
export type StripeEventOutcome =
  | 'applied'
  | 'ignored_stale'
  | 'ignored_illegal'
  | 'ignored_unknown_tenant'
  | 'ignored_type'
  | 'ignored_status';

export interface StripeWebhookDeps {
  db: Db;
  /** The endpoint's signing secret (whsec_…). */
  webhookSecret: string;
  logger: Logger;
  /** Called after commit when an event changed a tenant's billing state (entitlement caches). */
  onBillingChanged: (tenantId: string) => Promise<void> | void;
}

class RequestError extends Error {
  constructor(
    readonly status: 400 | 405 | 413,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * `POST /v1/billing/stripe/webhook`: Stripe subscription events → tenants' billing state.
 *
 * The signature is checked over the raw body (Stripe-Signature, default 300 s tolerance);
 * nothing is read from an unsigned request. Each event is processed once, in one
 * transaction: its billing_events row (event id primary key) is inserted first, so a replay
 * — even a concurrent one, which waits on the first delivery's row — answers
 * `{received: true, duplicate: true}` and changes nothing. The change goes through
 * applyBillingChange (audited; an event older than the last one applied is skipped).
 * Events that cannot or must not be applied still answer 200 with their outcome recorded:
 * Stripe retries every non-2xx for days, and a retry would not fare better. Only a failure
 * on our side (database) answers 500; the event's row rolled back with the transaction,
 * so Stripe's retry is processed afresh.
 *
 * The tenant is `subscription.metadata.tenant_id` (our public id, `ten_…`). The plan, when
 * given, is `subscription.metadata.plan`, else the price `lookup_key` of the
 * subscription's items when they name exactly one plan; a value that is not a plan id is
 * ignored and the plan left as it is.
 */
export function createStripeWebhookHandler(deps: StripeWebhookDeps): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const { db, webhookSecret, logger } = deps;

  return async function handleStripeWebhook(req, res) {
    try {
      if (req.method !== 'POST') throw new RequestError(405, 'method_not_allowed', `${req.method} is not allowed here`);
      const body = await readRawBody(req, STRIPE_WEBHOOK_MAX_BODY_BYTES);
      const event = await verifiedEvent(body, req.headers['stripe-signature'], webhookSecret, logger);

      const result = await processEvent(db, logger, event);
      if (result.duplicate) {
        logger.info({ eventId: event.id, type: event.type }, 'stripe event already processed');
        sendJson(res, 200, { received: true, duplicate: true });
        return;
      }
      logger.info({ eventId: event.id, type: event.type, tenantId: result.tenantId, outcome: result.outcome }, 'stripe event processed');
      if (result.outcome === 'applied' && result.tenantId) {
        // After commit only: an instance reloading earlier would cache the old state. The
        // change is committed either way, so a failure here is logged, not retried.
        try {
          await withTimeout(Promise.resolve(deps.onBillingChanged(result.tenantId)), INVALIDATION_TIMEOUT_MS);
        } catch (err) {
          logger.error({ err, tenantId: result.tenantId, eventId: event.id }, 'billing cache invalidation failed after stripe event');
        }
      }
      sendJson(res, 200, { received: true });
    } catch (err) {
      if (err instanceof RequestError) {
        const headers: Record<string, string> = {};
        if (err.status === 405) headers.allow = 'POST';
        // The rest of an oversized body is not read: close rather than drain it.
        if (err.status === 413) headers.connection = 'close';
        if (!res.headersSent) sendJson(res, err.status, { code: err.code, message: err.message }, headers);
        return;
      }
      // Postgres away is a 503 (Stripe retries either way); anything else is our bug, a 500.
      const wire = toWireError(err);
      logger.error({ err }, 'stripe webhook failed');
      if (!res.headersSent) sendJson(res, wire.status, wire.body, wire.headers);
    }
  };
}

/**
 * The body, byte for byte (the signature covers the exact bytes). Past the limit, reading
 * stops without destroying the request, so the 413 can still be sent (then the connection
 * is closed).
 */
function readRawBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  const tooLarge = () => new RequestError(413, 'payload_too_large', `The body exceeds ${limitBytes} bytes`);
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limitBytes) return Promise.reject(tooLarge());
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limitBytes) {
        cleanup();
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    // The client went away mid-body: nobody is left to answer, and nothing was read.
    const incomplete = () => {
      cleanup();
      reject(new RequestError(400, 'incomplete_body', 'The body ended early'));
    };
    const onError = incomplete;
    const onClose = incomplete;
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

let stripe: Promise<typeof import('stripe')> | undefined;
/**
 * The Stripe SDK, loaded by the first webhook: only its signature check is used, and
 * loading it costs an api start about a fifth of a second of CPU, also where no Stripe
 * account is connected.
 */
const loadStripe = () => (stripe ??= import('stripe'));

/** The fields of an event envelope the handler relies on. */
interface VerifiedEvent {
  id: string;
  type: string;
  /** Unix seconds. */
  created: number;
  object: unknown;
}

async function verifiedEvent(body: Buffer, header: string | string[] | undefined, secret: string, logger: Logger): Promise<VerifiedEvent> {
  if (typeof header !== 'string' || header === '') {
    throw new RequestError(400, 'invalid_signature', 'The Stripe-Signature header is missing');
  }
  const { default: Stripe } = await loadStripe();
  let event: unknown;
  try {
    event = await Stripe.webhooks.constructEventAsync(body, header, secret);
  } catch (err) {
    if (err instanceof Stripe.errors.StripeSignatureVerificationError) {
      const reason = err.message.split('\n')[0]?.trim() ?? 'verification failed';
      logger.warn({ reason }, 'stripe webhook with a bad signature refused');
      throw new RequestError(400, 'invalid_signature', `The Stripe signature does not verify: ${reason}`);
    }
    // The signature verified (it is checked before the body is parsed), but the body is not JSON.
    if (err instanceof SyntaxError) throw new RequestError(400, 'invalid_json', 'The body is not valid JSON');
    throw new RequestError(400, 'invalid_event', err instanceof Error ? err.message : 'The body is not a Stripe event');
  }
  const e = event as { id?: unknown; type?: unknown; created?: unknown; data?: { object?: unknown } } | null;
  if (
    typeof e !== 'object' ||
    e === null ||
    typeof e.id !== 'string' ||
    e.id.length === 0 ||
    e.id.length > 255 ||
    typeof e.type !== 'string' ||
    typeof e.created !== 'number' ||
    !Number.isSafeInteger(e.created) ||
    e.created <= 0
  ) {
    throw new RequestError(400, 'invalid_event', 'The body is not a Stripe event (id, type, created)');
  }
  return { id: e.id, type: e.type, created: e.created, object: typeof e.data === 'object' && e.data !== null ? e.data.object : undefined };
}

/** The parts of a Stripe subscription the handler reads, taken leniently. */
function subscriptionFields(object: unknown): { status: string | null; metadata: Record<string, unknown>; lookupKeys: string[] } {
  const sub = (typeof object === 'object' && object !== null ? object : {}) as {
    status?: unknown;
    metadata?: unknown;
    items?: { data?: unknown };
  };
  const metadata = typeof sub.metadata === 'object' && sub.metadata !== null ? (sub.metadata as Record<string, unknown>) : {};
  const items = typeof sub.items === 'object' && sub.items !== null && Array.isArray(sub.items.data) ? sub.items.data : [];
  const lookupKeys = items
    .map((item: unknown) => (item as { price?: { lookup_key?: unknown } } | null)?.price?.lookup_key)
    .filter((key): key is string => typeof key === 'string');
  return { status: typeof sub.status === 'string' ? sub.status : null, metadata, lookupKeys };
}

/** `metadata.plan` if it is a plan id, else the one plan id the items' lookup keys name. */
function planOf(metadata: Record<string, unknown>, lookupKeys: string[]): PlanId | undefined {
  const fromMetadata = PlanId.safeParse(metadata.plan);
  if (fromMetadata.success) return fromMetadata.data;
  const named = new Set(lookupKeys.flatMap((key) => (PlanId.safeParse(key).success ? [key as PlanId] : [])));
  return named.size === 1 ? [...named][0] : undefined;
}

type ProcessResult = { duplicate: true } | { duplicate: false; outcome: StripeEventOutcome; tenantId: string | null };

async function processEvent(db: Db, logger: Logger, event: VerifiedEvent): Promise<ProcessResult> {
  const occurredAt = new Date(event.created * 1000);
  return db.transaction().execute(async (trx): Promise<ProcessResult> => {
    // First, so a concurrent delivery of the same event waits here for this one to commit
    // (then finds the row) or roll back (then processes it).
    const inserted = await trx
      .insertInto('billing_events')
      .values({ event_id: event.id, type: event.type, tenant_id: null, occurred_at: occurredAt, outcome: 'processing' })
      .onConflict((oc) => oc.column('event_id').doNothing())
      .returning('event_id')
      .executeTakeFirst();
    if (!inserted) return { duplicate: true };

    const decided = await decide(trx, logger, event, occurredAt);
    await trx
      .updateTable('billing_events')
      .set({ outcome: decided.outcome, tenant_id: decided.tenantId })
      .where('event_id', '=', event.id)
      .execute();
    return { duplicate: false, ...decided };
  });
}

async function decide(
  trx: Parameters<typeof applyBillingChange>[0],
  logger: Logger,
  event: VerifiedEvent,
  occurredAt: Date,
): Promise<{ outcome: StripeEventOutcome; tenantId: string | null }> {
  if (!HANDLED_STRIPE_EVENT_TYPES.has(event.type)) return { outcome: 'ignored_type', tenantId: null };

  const { status, metadata, lookupKeys } = subscriptionFields(event.object);
  const tenantId = typeof metadata.tenant_id === 'string' ? fromPublicId('ten', metadata.tenant_id) : null;
  const known = tenantId
    ? await trx.selectFrom('billing_states').select('tenant_id').where('tenant_id', '=', tenantId).executeTakeFirst()
    : undefined;
  if (!tenantId || !known) {
    logger.warn({ eventId: event.id, type: event.type }, 'stripe event for no known tenant (subscription metadata.tenant_id)');
    return { outcome: 'ignored_unknown_tenant', tenantId: null };
  }

  const state = status !== null ? STRIPE_STATUS_TO_STATE[status] : undefined;
  if (!state) return { outcome: 'ignored_status', tenantId };

  const change: BillingChange = { subscriptionState: state, plan: planOf(metadata, lookupKeys) };
  // A savepoint, so a refused change can never leave part of itself behind in the
  // transaction that records the event.
  await sql`savepoint stripe_event`.execute(trx);
  try {
    const result = await applyBillingChange(trx, tenantId, change, { actor: 'stripe:webhook', source: 'stripe', eventId: event.id }, occurredAt);
    await sql`release savepoint stripe_event`.execute(trx);
    return { outcome: result.applied ? 'applied' : 'ignored_stale', tenantId };
  } catch (err) {
    if (err instanceof IllegalSubscriptionTransitionError) {
      await sql`rollback to savepoint stripe_event`.execute(trx);
      logger.warn(
        { eventId: event.id, type: event.type, tenantId, from: err.from, to: err.to, stripeStatus: status },
        'stripe event asks for an illegal subscription transition; ignored',
      );
      return { outcome: 'ignored_illegal', tenantId };
    }
    if (err instanceof NotFoundError) {
      // The billing state vanished between the check above and the change.
      await sql`rollback to savepoint stripe_event`.execute(trx);
      return { outcome: 'ignored_unknown_tenant', tenantId: null };
    }
    throw err;
  }
}
