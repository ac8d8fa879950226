import { once } from 'node:events';
import { type AddressInfo, createServer } from 'node:net';
import {
  type RouterInputs,
  type RouterOutputs,
  TenantryError,
  createAdminClient,
  createPublicClient,
  createTenantClient,
  isTenantryError,
} from '@tenantry/sdk';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { PLATFORM_KEY } from './support/apps.js';
import { validSignup, waitFor } from './support/http.js';
import { useStack } from './support/stack.js';

const stack = useStack();
const owner = validSignup({ email: 'Owner@Sdk.Example', orgName: 'Sdk Org' });

/** The rejection of `promise`, which must be a TenantryError. */
async function failure(promise: Promise<unknown>): Promise<TenantryError> {
  const error = await promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (err: unknown) => err,
  );
  expect(isTenantryError(error)).toBe(true);
  expect(error).toBeInstanceOf(TenantryError);
  return error as TenantryError;
}


describe('@tenantry/sdk against a live api', () => {
  let token: string;

  it('signs up with the public client and follows the signup to ready', async () => {
    const anon = createPublicClient({ baseUrl: stack.api.baseUrl });
    const accepted = await anon.signup.create.mutate(owner);
    expectTypeOf(accepted.signupId).toEqualTypeOf<string>();
    expect(accepted.signupId).toMatch(/^sgn_[0-9a-f]{32}$/);

    const final = await waitFor(async () => {
      const status = await anon.signup.status.query({ signupId: accepted.signupId });
      return status.status === 'ready' || status.status === 'failed' ? status : undefined;
    }, 20_000);
    expect(final.status).toBe('ready');
    expect(final.tenantId).toMatch(/^ten_/);
  });

  it('logs in with the public client', async () => {
    const anon = createPublicClient({ baseUrl: stack.api.baseUrl });
    const session = await anon.auth.login.mutate({ email: owner.email, password: owner.password });
    expectTypeOf(session).toEqualTypeOf<RouterOutputs['auth']['login']>();
    expect(session.token.length).toBeGreaterThan(40);
    token = session.token;
  });

  it('calls `me` as the tenant with the session token; the result is typed', async () => {
    const client = createTenantClient({ baseUrl: `${stack.api.baseUrl}/`, token });
    const me = await client.auth.me.query();
    expectTypeOf(me).toEqualTypeOf<RouterOutputs['auth']['me']>();
    expectTypeOf(me.user.role).toEqualTypeOf<'owner' | 'admin' | 'member'>();
    expectTypeOf(me.tenant.name).toEqualTypeOf<string>();
    expect(me.user.email).toBe('owner@sdk.example');
    expect(me.user.role).toBe('owner');
    expect(me.tenant).toMatchObject({ name: 'Sdk Org', status: 'active', isolation: 'schema' });
  });

  it('reads the token before each request when given a function', async () => {
    let current: string | undefined;
    const client = createTenantClient({ baseUrl: stack.api.baseUrl, token: () => current });
    expect((await failure(client.auth.me.query())).code).toBe('unauthenticated');
    current = token;
    expect((await client.auth.me.query()).tenant.name).toBe('Sdk Org');
  });

  it('a wrong token is a TenantryError invalid_token, 401, caused by the TRPCClientError', async () => {
    const client = createTenantClient({ baseUrl: stack.api.baseUrl, token: 'tnt_s_forged' });
    const error = await failure(client.auth.me.query());
    expect(error.code).toBe('invalid_token');
    expect(error.status).toBe(401);
    expect(error.fields).toBeUndefined();
    expect(error.name).toBe('TenantryError');
    expect(error.message).not.toBe('');
    expect(error.cause.name).toBe('TRPCClientError');
    expect(error.cause.data).toMatchObject({ code: 'invalid_token', httpStatus: 401 });
  });

  it('no token is unauthenticated, 401', async () => {
    const error = await failure(createTenantClient({ baseUrl: stack.api.baseUrl }).auth.me.query());
    expect(error.code).toBe('unauthenticated');
    expect(error.status).toBe(401);
  });

  it('bad login input is validation_failed, 400, with the fields', async () => {
    const anon = createPublicClient({ baseUrl: stack.api.baseUrl });
    const error = await failure(anon.auth.login.mutate({ email: '' } as RouterInputs['auth']['login']));
    expect(error.code).toBe('validation_failed');
    expect(error.status).toBe(400);
    expect(error.fields?.map((f) => f.field).sort()).toEqual(['email', 'password']);
    for (const field of error.fields ?? []) expect(field.message).not.toBe('');
  });

  it('wrong credentials and unknown signups carry the api codes', async () => {
    const anon = createPublicClient({ baseUrl: stack.api.baseUrl });
    const wrong = await failure(anon.auth.login.mutate({ email: 'nobody@sdk.example', password: 'not-the-password' }));
    expect([wrong.code, wrong.status]).toEqual(['invalid_credentials', 401]);
    const missing = await failure(anon.signup.status.query({ signupId: `sgn_${'0'.repeat(32)}` }));
    expect([missing.code, missing.status]).toEqual(['signup_not_found', 404]);
  });

  it('the admin client sends the platform key as a bearer token, through the given fetch', async () => {
    const seen: Array<{ url: string; authorization: string | null }> = [];
    const admin = createAdminClient({
      baseUrl: stack.api.baseUrl,
      platformKey: 'tnt_pk_example',
      fetch: async (input, init) => {
        seen.push({ url: String(input), authorization: new Headers(init?.headers).get('authorization') });
        return fetch(input, init);
      },
    });
    // Any procedure will do to see the request; the admin routes are another change's.
    await failure(admin.signup.status.query({ signupId: `sgn_${'0'.repeat(32)}` }));
    expect(seen).toHaveLength(1);
    expect(seen[0]!.url.startsWith(`${stack.api.baseUrl}/trpc/signup.status?`)).toBe(true);
    expect(seen[0]!.authorization).toBe('Bearer tnt_pk_example');
  });

  it('an unreachable api is network_error, status 0', async () => {
    // A port that was just free: nothing listens there.
    const server = createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await new Promise((resolve) => server.close(resolve));
    const error = await failure(createPublicClient({ baseUrl }).auth.login.mutate({ email: owner.email, password: owner.password }));
    expect(error.code).toBe('network_error');
    expect(error.status).toBe(0);
    expect(error.cause.name).toBe('TRPCClientError');
    expect(error.cause.cause).toBeInstanceOf(Error);
  });

  it('an aborted call is aborted, status 0', async () => {
    const controller = new AbortController();
    controller.abort();
    const anon = createPublicClient({ baseUrl: stack.api.baseUrl });
    const error = await failure(anon.signup.status.query({ signupId: `sgn_${'0'.repeat(32)}` }, { signal: controller.signal }));
    expect([error.code, error.status]).toEqual(['aborted', 0]);
  });

  it('isTenantryError is false for other values', () => {
    expect(isTenantryError(new Error('x'))).toBe(false);
    expect(isTenantryError({ code: 'invalid_token', status: 401 })).toBe(false);
    expect(isTenantryError(undefined)).toBe(false);
  });
});

describe('admin client against a live api', () => {
  const admin = () => createAdminClient({ baseUrl: stack.api.baseUrl, platformKey: PLATFORM_KEY });

  it('creates, lists, suspends, unsuspends, deletes and restores a tenant', async () => {
    const created = await admin().tenants.create.mutate({ name: 'Sdk Managed', ownerEmail: 'owner@sdk-managed.example', plan: 'pro' });
    expect(created.tenantId).toMatch(/^ten_/);
    await waitFor(async () => ((await admin().tenants.get.query({ id: created.tenantId })).status === 'active' ? true : undefined));

    const page = await admin().tenants.list.query({ search: 'sdk managed', limit: 5 });
    expect(page.items.map((t) => t.id)).toEqual([created.tenantId]);
    expectTypeOf(page.items[0]!.status).toEqualTypeOf<RouterOutputs['tenants']['get']['status']>();

    expect((await admin().tenants.suspend.mutate({ id: created.tenantId, reason: 'sdk test' })).status).toBe('suspended');
    expect((await admin().tenants.unsuspend.mutate({ id: created.tenantId })).status).toBe('active');
    const deleted = await admin().tenants.delete.mutate({ id: created.tenantId });
    expect(deleted.status).toBe('pending_deletion');
    expect(deleted.deleteAfter).not.toBeNull();
    expect((await admin().tenants.restore.mutate({ id: created.tenantId })).status).toBe('active');
  });

  it('an unknown tenant is a typed 404; an illegal transition a typed 409', async () => {
    const missing = await failure(admin().tenants.get.query({ id: `ten_${'0'.repeat(32)}` }));
    expect([missing.code, missing.status]).toEqual(['tenant_not_found', 404]);
    const illegal = await failure(admin().tenants.restore.mutate({ id: 'default' }));
    expect([illegal.code, illegal.status]).toEqual(['illegal_transition', 409]);
  });

  it('a tenant token on the admin client is a typed 403', async () => {
    const login = await createPublicClient({ baseUrl: stack.api.baseUrl }).auth.login.mutate({ email: owner.email, password: owner.password });
    const error = await failure(createAdminClient({ baseUrl: stack.api.baseUrl, platformKey: login.token }).tenants.list.query({}));
    expect([error.code, error.status]).toEqual(['platform_key_required', 403]);
  });
});
