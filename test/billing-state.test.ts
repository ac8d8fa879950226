import { fromPublicId } from '@tenantry/domain';
import { beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_KEY, startApi } from './support/apps.js';
import { request } from './support/http.js';
import { useStack } from './support/stack.js';

const stack = useStack();
let tenantId: string;
let token: string;

beforeAll(async () => {
  ({ tenantId, token } = await stack.signUpTenant({ orgName: 'Billing Subject' }));
});

const path = () => `/v1/tenants/${tenantId}/billing-state`;

async function snapshot() {
  const db = stack.database.db;
  const uuid = fromPublicId('ten', tenantId)!;
  return {
    billing: await db.selectFrom('billing_states').selectAll().where('tenant_id', '=', uuid).executeTakeFirstOrThrow(),
    audit: (await db.selectFrom('audit_log').select('id').where('tenant_id', '=', uuid).execute()).length,
  };
}

describe('GET /v1/tenants/{id}/billing-state', () => {
  it('shows the trial a signup starts with and what it entitles', async () => {
    const res = await stack.admin('GET', path());
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      tenantId,
      plan: 'trial',
      subscriptionState: 'trial',
      planVersion: 1,
      capabilities: null,
      limits: null,
      effective: { plan: 'trial', subscriptionState: 'trial', capabilities: ['files'], metersEnabled: false },
    });
    expect(new Date(res.body.trialEndsAt).getTime()).toBeGreaterThan(Date.now());
  });
});

describe('PUT /v1/tenants/{id}/billing-state', () => {
  const invalid: Array<[string, Record<string, unknown>, string]> = [
    ['unknown plan', { plan: 'platinum' }, 'plan'],
    ['unknown subscription state', { subscriptionState: 'paused' }, 'subscriptionState'],
    ['unknown capability', { capabilities: ['teleport'] }, 'capabilities.0'],
    ['negative limit', { limits: { members: -1 } }, 'limits.members'],
    ['unknown limit', { limits: { seats: 3 } }, 'limits'],
    ['fractional limit', { limits: { members: 2.5 } }, 'limits.members'],
    ['planVersion 0', { planVersion: 0 }, 'planVersion'],
    ['snake_case field', { subscription_state: 'active' }, '(body)'],
    ['nothing to change', {}, 'plan'],
  ];

  it.each(invalid)('%s → 400 naming %s, nothing changes', async (_name, body, field) => {
    const before = await snapshot();
    const res = await stack.admin('PUT', path(), { body });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    expect(res.body.fields.map((f: { field: string }) => f.field)).toContain(field);
    expect(await snapshot()).toEqual(before);
  });

  it('needs a platform key; a tenant token is refused, even for its own tenant', async () => {
    expect((await request(stack.api.baseUrl, 'PUT', path(), { body: { plan: 'pro' } })).status).toBe(401);
    const own = await request(stack.api.baseUrl, 'PUT', path(), { body: { plan: 'enterprise' }, token });
    expect([own.status, own.body.code]).toEqual([403, 'platform_key_required']);
    const read = await request(stack.api.baseUrl, 'GET', path(), { token });
    expect(read.status).toBe(403);
  });

  it('changes plan, state and overrides, audited with actor, before and after', async () => {
    const res = await stack.admin('PUT', path(), {
      body: { plan: 'pro', subscriptionState: 'active', limits: { members: 75 }, planVersion: 2 },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ plan: 'pro', subscriptionState: 'active', planVersion: 2, limits: { members: 75 } });
    expect(res.body.effective.capabilities).toContain('api_keys');
    expect(res.body.effective.limits.members).toBe(75);
    const audit = await stack.database.db
      .selectFrom('audit_log')
      .select(['actor', 'action', 'data'])
      .where('tenant_id', '=', fromPublicId('ten', tenantId)!)
      .where('action', '=', 'billing_state.updated')
      .orderBy('chain_seq', 'desc')
      .executeTakeFirstOrThrow();
    expect(audit.actor).toBe('platform:env:1');
    expect(audit.data).toMatchObject({
      source: 'admin',
      before: { plan: 'trial', subscriptionState: 'trial', limits: null, planVersion: 1 },
      after: { plan: 'pro', subscriptionState: 'active', limits: { members: 75 }, planVersion: 2 },
    });
    // The tenant listing shows the plan too.
    expect((await stack.admin('GET', `/v1/tenants/${tenantId}`)).body.plan).toBe('pro');
  });

  it('moves only along the subscription state machine: an illegal move is 409 and changes nothing', async () => {
    const before = await snapshot();
    const res = await stack.admin('PUT', path(), { body: { subscriptionState: 'trial' } });
    expect([res.status, res.body.code]).toEqual([409, 'illegal_subscription_transition']);
    expect(await snapshot()).toEqual(before);
  });

  it('suspended returns to the state it was suspended from', async () => {
    expect((await stack.admin('PUT', path(), { body: { subscriptionState: 'suspended' } })).body.subscriptionState).toBe('suspended');
    const wrong = await stack.admin('PUT', path(), { body: { subscriptionState: 'grace' } });
    expect(wrong.status).toBe(409);
    expect((await stack.admin('PUT', path(), { body: { subscriptionState: 'active' } })).body.subscriptionState).toBe('active');
  });

  it('null overrides return to the plan', async () => {
    const res = await stack.admin('PUT', path(), { body: { limits: null, capabilities: null } });
    expect(res.body).toMatchObject({ limits: null, capabilities: null });
    expect(res.body.effective.limits.members).toBe(50);
  });

  it('an unknown tenant is 404', async () => {
    const res = await stack.admin('PUT', `/v1/tenants/ten_${'0'.repeat(32)}/billing-state`, { body: { plan: 'pro' } });
    expect([res.status, res.body.code]).toEqual([404, 'tenant_not_found']);
  });

  it('outside hosted mode the billing-state routes do not exist', async () => {
    const selfHosted = await startApi({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix, HOSTED_MODE: 'false' });
    try {
      expect((await request(selfHosted.baseUrl, 'GET', path(), { token: PLATFORM_KEY })).status).toBe(404);
      expect((await request(selfHosted.baseUrl, 'PUT', path(), { token: PLATFORM_KEY, body: { plan: 'pro' } })).status).toBe(404);
    } finally {
      await selfHosted.close();
    }
  });
});
