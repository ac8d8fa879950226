import { randomBytes, randomUUID } from 'node:crypto';
import { type Server, createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { insertProvisioningTenant } from '@tenantry/db';
import { type SubscriptionState, toPublicId } from '@tenantry/domain';
import { sql } from 'kysely';
import Stripe from 'stripe';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { type StripeWebhookDeps, createStripeWebhookHandler } from '../apps/api/src/http/stripe-webhook.js';
import { startApi } from './support/apps.js';
import { type TestDatabase, createTestDatabase } from './support/database.js';
import { redisPrefix } from './support/redis.js';

/**
 * The Stripe webhook handler on a server of its own, over a real database; every request
 * is signed by the stripe package's own test helper, as Stripe signs its deliveries.
 */
const SECRET = `whsec_${randomBytes(24).toString('hex')}`;
const PATH = '/v1/billing/stripe/webhook';
const NOW_S = () => Math.floor(Date.now() / 1000);

let database: TestDatabase;
let server: Server;
let baseUrl: string;
const onBillingChanged = vi.fn<(tenantId: string) => Promise<void>>(async () => undefined);
const logger = { info: vi.fn(), warn: vi.fn(), error: vi.fn(), debug: vi.fn() };

beforeAll(async () => {
  database = await createTestDatabase();
  const handler = createStripeWebhookHandler({ db: database.db, webhookSecret: SECRET, logger: logger as unknown as StripeWebhookDeps['logger'], onBillingChanged });
  server = createServer((req, res) => {
    if (new URL(req.url ?? '/', 'http://localhost').pathname === PATH) void handler(req, res);
    else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => {
    server?.close(() => resolve());
    server?.closeAllConnections();
  });
  await database?.drop();
});

beforeEach(() => {
  onBillingChanged.mockClear();
  logger.warn.mockClear();
});

interface TenantFixture {
  id: string;
  publicId: string;
}

/** A tenant with a billing_states row in the given state, made directly. */
async function tenantIn(state: SubscriptionState, options: { previous?: Exclude<SubscriptionState, 'suspended'>; lastEventAt?: Date } = {}) {
  const id = randomUUID();
  await insertProvisioningTenant(database.db, { id, name: `Stripe ${state} ${id.slice(0, 6)}`, plan: 'trial', isolation: 'schema' });
  await database.db
    .insertInto('billing_states')
    .values({
      tenant_id: id,
      plan: 'trial',
      subscription_state: state,
      trial_ends_at: null,
      capabilities: null,
      limits: null,
      state_before_suspension: state === 'suspended' ? (options.previous ?? 'active') : null,
      last_event_at: options.lastEventAt ?? null,
    })
    .execute();
  return { id, publicId: toPublicId('ten', id) } satisfies TenantFixture;
}

/** A Stripe event as Stripe sends it (the fields a subscription event carries that matter here). */
function subscriptionEvent(options: {
  status: string;
  tenant?: string | null;
  type?: string;
  created?: number;
  metadata?: Record<string, string>;
  lookupKeys?: Array<string | null>;
  id?: string;
}) {
  const metadata: Record<string, string> = { ...(options.tenant ? { tenant_id: options.tenant } : {}), ...options.metadata };
  return {
    id: options.id ?? `evt_${randomBytes(12).toString('hex')}`,
    object: 'event',
    api_version: '2026-10-28.endive',
    created: options.created ?? NOW_S(),
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type: options.type ?? 'customer.subscription.updated',
    data: {
      object: {
        id: `sub_${randomBytes(8).toString('hex')}`,
        object: 'subscription',
        status: options.status,
        customer: 'cus_test',
        metadata,
        items: {
          object: 'list',
          data: (options.lookupKeys ?? [null]).map((key) => ({ id: `si_${randomBytes(6).toString('hex')}`, price: { id: 'price_x', lookup_key: key } })),
        },
      },
    },
  };
}

async function deliver(payload: string, header?: string | null) {
  const signature = header === undefined ? Stripe.webhooks.generateTestHeaderString({ payload, secret: SECRET }) : header;
  const res = await fetch(baseUrl + PATH, {
    method: 'POST',
    headers: { 'content-type': 'application/json; charset=utf-8', ...(signature === null ? {} : { 'stripe-signature': signature }) },
    body: payload,
  });
  const text = await res.text();
  let body: any;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = text;
  }
  return { status: res.status, body };
}

const send = (event: ReturnType<typeof subscriptionEvent>) => deliver(JSON.stringify(event));

/** Everything an event could change about a tenant. */
async function snapshot(tenantId: string) {
  const [billing, tenant, audit, events] = await Promise.all([
    database.db.selectFrom('billing_states').selectAll().where('tenant_id', '=', tenantId).executeTakeFirst(),
    database.db.selectFrom('tenants').select(['plan', 'updated_at']).where('id', '=', tenantId).executeTakeFirst(),
    database.db.selectFrom('audit_log').select(['actor', 'action', 'data']).where('tenant_id', '=', tenantId).orderBy('chain_seq').execute(),
    database.db.selectFrom('billing_events').selectAll().where('tenant_id', '=', tenantId).orderBy('received_at').execute(),
  ]);
  return { billing, tenant, audit: audit.filter((a) => a.action.startsWith('billing')), events };
}

const eventRow = (eventId: string) => database.db.selectFrom('billing_events').selectAll().where('event_id', '=', eventId).executeTakeFirst();
const allEventCount = async () =>
  Number((await database.db.selectFrom('billing_events').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

describe('stripe subscription status → subscription state', () => {
  // [Stripe status, event type, tenant's state before, state after, (the state it was suspended from)]
  const table: Array<[string, string, SubscriptionState, SubscriptionState, Exclude<SubscriptionState, 'suspended'>?]> = [
    ['trialing', 'customer.subscription.created', 'trial', 'trial'],
    ['active', 'customer.subscription.updated', 'trial', 'active'],
    ['past_due', 'customer.subscription.updated', 'active', 'grace'],
    ['active', 'customer.subscription.updated', 'grace', 'active'],
    ['unpaid', 'customer.subscription.updated', 'grace', 'expired'],
    ['canceled', 'customer.subscription.deleted', 'grace', 'expired'],
    ['canceled', 'customer.subscription.deleted', 'trial', 'expired'],
    ['paused', 'customer.subscription.paused', 'active', 'suspended'],
    ['active', 'customer.subscription.resumed', 'suspended', 'active', 'active'],
    ['trialing', 'customer.subscription.trial_will_end', 'trial', 'trial'],
  ];

  it.each(table)('%s (%s): %s → %s', async (status, type, from, to, previous) => {
    const tenant = await tenantIn(from, { previous });
    const event = subscriptionEvent({ status, type, tenant: tenant.publicId });
    const res = await send(event);
    expect([res.status, res.body]).toEqual([200, { received: true }]);

    const after = await snapshot(tenant.id);
    expect(after.billing?.subscription_state).toBe(to);
    expect(after.billing?.last_event_at?.getTime()).toBe(event.created * 1000);
    expect(after.events).toMatchObject([{ event_id: event.id, type, outcome: 'applied', tenant_id: tenant.id }]);
    expect(after.events[0]?.occurred_at.getTime()).toBe(event.created * 1000);
    expect(after.audit).toHaveLength(1);
    expect(after.audit[0]).toMatchObject({
      actor: 'stripe:webhook',
      action: 'billing_state.updated',
      data: { source: 'stripe', eventId: event.id, before: { subscriptionState: from }, after: { subscriptionState: to } },
    });
    expect(onBillingChanged.mock.calls).toEqual([[tenant.id]]);
  });

  it('pausing remembers the state paused from', async () => {
    const tenant = await tenantIn('grace');
    await send(subscriptionEvent({ status: 'paused', type: 'customer.subscription.paused', tenant: tenant.publicId }));
    const { billing } = await snapshot(tenant.id);
    expect([billing?.subscription_state, billing?.state_before_suspension]).toEqual(['suspended', 'grace']);
  });

  it.each(['incomplete', 'incomplete_expired', 'some_future_status'])('%s: recorded as ignored_status, nothing else changes', async (status) => {
    const tenant = await tenantIn('trial');
    const before = await snapshot(tenant.id);
    const event = subscriptionEvent({ status, tenant: tenant.publicId });
    const res = await send(event);
    expect([res.status, res.body]).toEqual([200, { received: true }]);
    const after = await snapshot(tenant.id);
    expect(after.billing).toEqual(before.billing);
    expect(after.audit).toEqual([]);
    expect(await eventRow(event.id)).toMatchObject({ outcome: 'ignored_status', tenant_id: tenant.id });
    expect(onBillingChanged).not.toHaveBeenCalled();
  });
});

describe('plan', () => {
  it('metadata.plan sets the plan (billing state and tenant row)', async () => {
    const tenant = await tenantIn('trial');
    await send(subscriptionEvent({ status: 'active', tenant: tenant.publicId, metadata: { plan: 'pro' }, lookupKeys: ['enterprise'] }));
    const after = await snapshot(tenant.id);
    expect([after.billing?.plan, after.tenant?.plan, after.billing?.subscription_state]).toEqual(['pro', 'pro', 'active']);
    expect(after.audit[0]?.data).toMatchObject({ before: { plan: 'trial' }, after: { plan: 'pro' } });
  });

  it("without metadata.plan, the price's lookup_key, when the items name one plan", async () => {
    const tenant = await tenantIn('trial');
    await send(subscriptionEvent({ status: 'active', tenant: tenant.publicId, lookupKeys: ['enterprise', 'seats_addon', 'enterprise'] }));
    expect((await snapshot(tenant.id)).billing?.plan).toBe('enterprise');
  });

  it('a value that is not a plan id, or items naming two plans, leave the plan alone', async () => {
    const tenant = await tenantIn('trial');
    await send(subscriptionEvent({ status: 'active', tenant: tenant.publicId, metadata: { plan: 'gold' }, lookupKeys: ['pro', 'enterprise'] }));
    const after = await snapshot(tenant.id);
    expect([after.billing?.plan, after.tenant?.plan, after.billing?.subscription_state]).toEqual(['trial', 'trial', 'active']);
  });
});

describe('signature', () => {
  /** Deliver what `build` makes for a fresh tenant; expect 400 and no change at all. */
  async function expectRefused(build: (tenantPublicId: string) => { payload: string; header: string | null }) {
    const tenant = await tenantIn('active');
    const { payload, header } = build(tenant.publicId);
    const before = await snapshot(tenant.id);
    const eventsBefore = await allEventCount();
    const res = await deliver(payload, header);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'invalid_signature' });
    expect(typeof res.body.message).toBe('string');
    const after = await snapshot(tenant.id);
    expect(after).toEqual(before);
    expect(after.audit).toEqual([]);
    expect(await allEventCount()).toBe(eventsBefore);
    expect(onBillingChanged).not.toHaveBeenCalled();
    return res;
  }
  const pastDue = (tenant: string) => JSON.stringify(subscriptionEvent({ status: 'past_due', tenant }));

  it('signed with another secret → 400 invalid_signature, nothing changes', async () => {
    await expectRefused((tenant) => {
      const payload = pastDue(tenant);
      return { payload, header: Stripe.webhooks.generateTestHeaderString({ payload, secret: 'whsec_not_ours' }) };
    });
  });

  it('a payload changed after signing → 400', async () => {
    await expectRefused((tenant) => {
      const signed = JSON.stringify(subscriptionEvent({ status: 'active', tenant }));
      const header = Stripe.webhooks.generateTestHeaderString({ payload: signed, secret: SECRET });
      return { payload: signed.replace('"active"', '"past_due"'), header };
    });
  });

  it('no Stripe-Signature header → 400', async () => {
    await expectRefused((tenant) => ({ payload: pastDue(tenant), header: null }));
  });

  it('a garbled header → 400', async () => {
    await expectRefused((tenant) => ({ payload: pastDue(tenant), header: 'not-a-signature' }));
  });

  it('a signature older than the 300 s tolerance → 400; within it, accepted', async () => {
    let sent = '';
    const res = await expectRefused((tenant) => {
      sent = pastDue(tenant);
      return { payload: sent, header: Stripe.webhooks.generateTestHeaderString({ payload: sent, secret: SECRET, timestamp: NOW_S() - 301 }) };
    });
    expect(res.body.message).toMatch(/tolerance/i);
    const recent = Stripe.webhooks.generateTestHeaderString({ payload: sent, secret: SECRET, timestamp: NOW_S() - 250 });
    expect((await deliver(sent, recent)).status).toBe(200);
  });

  it('a correctly signed body that is not JSON → 400 invalid_json', async () => {
    const body = 'this is not json';
    const res = await deliver(body);
    expect([res.status, res.body.code]).toEqual([400, 'invalid_json']);
  });

  it('a correctly signed JSON body that is not an event → 400 invalid_event', async () => {
    const res = await deliver(JSON.stringify({ hello: 'world' }));
    expect([res.status, res.body.code]).toEqual([400, 'invalid_event']);
  });

  it('a body over 1 MiB → 413, nothing read', async () => {
    const big = JSON.stringify({ pad: 'x'.repeat(1024 * 1024) });
    const res = await deliver(big);
    expect([res.status, res.body.code]).toEqual([413, 'payload_too_large']);
  });

  it('a streamed (chunked) body over 1 MiB → 413 too, and the answer still arrives', async () => {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(baseUrl + PATH, { method: 'POST', headers: { 'stripe-signature': 't=1,v1=x' } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      const chunk = Buffer.alloc(64 * 1024, 'x');
      let sent = 0;
      const pump = () => {
        while (sent < 2 * 1024 * 1024) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
    expect([status, JSON.parse(body).code]).toEqual([413, 'payload_too_large']);
  });

  it('only POST', async () => {
    const res = await fetch(baseUrl + PATH);
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
  });
});

describe('idempotency and ordering', () => {
  it('a replayed event id changes nothing: duplicate:true, one audit row, one event row', async () => {
    const tenant = await tenantIn('active');
    const event = subscriptionEvent({ status: 'past_due', tenant: tenant.publicId });
    const first = await send(event);
    expect([first.status, first.body]).toEqual([200, { received: true }]);
    const afterFirst = await snapshot(tenant.id);

    const again = await send(event);
    expect([again.status, again.body]).toEqual([200, { received: true, duplicate: true }]);
    const afterReplay = await snapshot(tenant.id);
    expect(afterReplay).toEqual(afterFirst);
    expect(afterReplay.audit).toHaveLength(1);
    expect(afterReplay.events).toHaveLength(1);
    expect(onBillingChanged).toHaveBeenCalledTimes(1);
  });

  it('the same event id with a different body (a replay with other content) is still a duplicate', async () => {
    const tenant = await tenantIn('active');
    const event = subscriptionEvent({ status: 'past_due', tenant: tenant.publicId });
    await send(event);
    const forged = { ...event, data: { object: { ...event.data.object, status: 'canceled' } } };
    expect((await send(forged)).body).toEqual({ received: true, duplicate: true });
    expect((await snapshot(tenant.id)).billing?.subscription_state).toBe('grace');
  });

  it('concurrent deliveries of one event apply it once', async () => {
    const tenant = await tenantIn('active');
    const event = subscriptionEvent({ status: 'past_due', tenant: tenant.publicId });
    const results = await Promise.all(Array.from({ length: 6 }, () => send(event)));
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(results.filter((r) => r.body.duplicate === true)).toHaveLength(5);
    const after = await snapshot(tenant.id);
    expect([after.audit.length, after.events.length]).toEqual([1, 1]);
  });

  it('out of order: an older past_due after a newer active does not regress the state (ignored_stale)', async () => {
    const tenant = await tenantIn('trial');
    const newer = subscriptionEvent({ status: 'active', tenant: tenant.publicId, created: NOW_S() });
    const older = subscriptionEvent({ status: 'past_due', tenant: tenant.publicId, created: NOW_S() - 60 });
    expect((await send(newer)).status).toBe(200);
    onBillingChanged.mockClear();

    const res = await send(older);
    expect([res.status, res.body]).toEqual([200, { received: true }]);
    const after = await snapshot(tenant.id);
    expect(after.billing?.subscription_state).toBe('active');
    expect(after.billing?.last_event_at?.getTime()).toBe(newer.created * 1000);
    expect(await eventRow(older.id)).toMatchObject({ outcome: 'ignored_stale', tenant_id: tenant.id });
    expect(after.audit).toHaveLength(1);
    expect(onBillingChanged).not.toHaveBeenCalled();
  });

  it('an illegal transition (active → trial) answers 200, changes nothing, outcome ignored_illegal, logs a warning', async () => {
    const tenant = await tenantIn('active');
    const before = await snapshot(tenant.id);
    const event = subscriptionEvent({ status: 'trialing', tenant: tenant.publicId, metadata: { plan: 'pro' } });
    const res = await send(event);
    expect([res.status, res.body]).toEqual([200, { received: true }]);
    const after = await snapshot(tenant.id);
    expect(after.billing).toEqual(before.billing);
    expect(after.tenant).toEqual(before.tenant);
    expect(after.audit).toEqual([]);
    expect(await eventRow(event.id)).toMatchObject({ outcome: 'ignored_illegal', tenant_id: tenant.id });
    expect(logger.warn).toHaveBeenCalledWith(
      expect.objectContaining({ eventId: event.id, tenantId: tenant.id, from: 'active', to: 'trial' }),
      expect.stringContaining('illegal'),
    );
    expect(onBillingChanged).not.toHaveBeenCalled();
    // Its replay is a duplicate, not another attempt.
    expect((await send(event)).body).toEqual({ received: true, duplicate: true });
  });

  it('a database failure answers 500 and rolls the event row back, so the retry is processed', async () => {
    const tenant = await tenantIn('active');
    await sql
      .raw(`
        create function test_refuse_billing_update() returns trigger language plpgsql as $$
        begin raise exception 'injected failure'; end $$;
        create trigger refuse_billing_update before update on billing_states
          for each row when (old.tenant_id = '${tenant.id}') execute function test_refuse_billing_update();`)
      .execute(database.db);
    const event = subscriptionEvent({ status: 'past_due', tenant: tenant.publicId });
    try {
      const failed = await send(event);
      expect([failed.status, failed.body]).toEqual([500, { code: 'internal_error', message: 'Internal server error' }]);
      expect(await eventRow(event.id)).toBeUndefined();
      expect((await snapshot(tenant.id)).audit).toEqual([]);
    } finally {
      await sql.raw('drop trigger refuse_billing_update on billing_states; drop function test_refuse_billing_update();').execute(database.db);
    }
    const retried = await send(event);
    expect([retried.status, retried.body]).toEqual([200, { received: true }]);
    expect((await snapshot(tenant.id)).billing?.subscription_state).toBe('grace');
    expect(await eventRow(event.id)).toMatchObject({ outcome: 'applied' });
  });

  it('a failing cache invalidation after commit still answers 200 (the change is committed)', async () => {
    const tenant = await tenantIn('active');
    onBillingChanged.mockRejectedValueOnce(new Error('redis down'));
    const res = await send(subscriptionEvent({ status: 'past_due', tenant: tenant.publicId }));
    expect([res.status, res.body]).toEqual([200, { received: true }]);
    expect((await snapshot(tenant.id)).billing?.subscription_state).toBe('grace');
  });
});

describe('events that are not applied', () => {
  it.each([
    ['a tenant that does not exist', () => toPublicId('ten', randomUUID())],
    ['no metadata.tenant_id', () => null],
    ['a tenant_id that is not a tenant public id', () => 'acme-corp'],
    ['a signup id instead of a tenant id', () => toPublicId('sgn', randomUUID())],
  ])('%s → 200, ignored_unknown_tenant, nothing changes', async (_label, tenantRef) => {
    const bystander = await tenantIn('active');
    const before = await snapshot(bystander.id);
    const event = subscriptionEvent({ status: 'canceled', type: 'customer.subscription.deleted', tenant: tenantRef() });
    const res = await send(event);
    expect([res.status, res.body]).toEqual([200, { received: true }]);
    expect(await eventRow(event.id)).toMatchObject({ outcome: 'ignored_unknown_tenant', tenant_id: null });
    expect(await snapshot(bystander.id)).toEqual(before);
    expect(onBillingChanged).not.toHaveBeenCalled();
  });

  it('an event type not handled → 200, recorded as ignored_type, nothing changes', async () => {
    const tenant = await tenantIn('active');
    const before = await snapshot(tenant.id);
    const event = subscriptionEvent({ status: 'canceled', type: 'invoice.paid', tenant: tenant.publicId });
    const res = await send(event);
    expect([res.status, res.body]).toEqual([200, { received: true }]);
    expect(await eventRow(event.id)).toMatchObject({ outcome: 'ignored_type', type: 'invoice.paid', tenant_id: null });
    expect(await snapshot(tenant.id)).toEqual(before);
  });
});

describe('mounted in the api', () => {
  it('without STRIPE_WEBHOOK_SECRET the route does not exist: 404 not_found', async () => {
    const api = await startApi({ DATABASE_URL: database.url, REDIS_PREFIX: redisPrefix() });
    try {
      const res = await fetch(`${api.baseUrl}${PATH}`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
      expect([res.status, ((await res.json()) as { code: string }).code]).toEqual([404, 'not_found']);
    } finally {
      await api.close();
    }
  });

  // Unskip once app.ts mounts createStripeWebhookHandler when STRIPE_WEBHOOK_SECRET is set.
  it('with STRIPE_WEBHOOK_SECRET it verifies and applies through the real api', async () => {
    const api = await startApi({ DATABASE_URL: database.url, REDIS_PREFIX: redisPrefix(), STRIPE_WEBHOOK_SECRET: SECRET });
    try {
      const tenant = await tenantIn('trial');
      const payload = JSON.stringify(subscriptionEvent({ status: 'active', tenant: tenant.publicId, metadata: { plan: 'pro' } }));
      const unsigned = await fetch(`${api.baseUrl}${PATH}`, { method: 'POST', body: payload });
      expect([unsigned.status, ((await unsigned.json()) as { code: string }).code]).toEqual([400, 'invalid_signature']);
      const signed = await fetch(`${api.baseUrl}${PATH}`, {
        method: 'POST',
        body: payload,
        headers: { 'content-type': 'application/json', 'stripe-signature': Stripe.webhooks.generateTestHeaderString({ payload, secret: SECRET }) },
      });
      expect([signed.status, await signed.json()]).toEqual([200, { received: true }]);
      const { billing } = await snapshot(tenant.id);
      expect([billing?.subscription_state, billing?.plan]).toEqual(['active', 'pro']);
    } finally {
      await api.close();
    }
  });
});
