import { randomUUID } from 'node:crypto';
import { DATA_ROLE, createDb, createIsolationRegistry, parseSecretKey } from '@tenantry/db';
import { type Isolation, PlanId, monthOf, planHasIsolation, toPublicId } from '@tenantry/domain';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_KEY, TENANT_SECRET_KEY } from '../../support/apps.js';
import { request, requestOnHost, waitFor } from '../../support/http.js';
import { PrivatePowerDns } from '../../support/powerdns.js';
import { deleteRedisKeys } from '../../support/redis.js';
import { openSse } from '../../support/sse.js';
import { useStack } from '../../support/stack.js';
import { type Baseline, type OpenApiDocumentLike, PAYLOADS, operationsOf, runCorpus } from './injection.js';
import { suiteModel } from './models.js';
import {
  type SuiteTenant,
  connectAsTenantRole,
  createSuiteTenant,
  moveSuiteTenant,
  rolePrivileges,
  storeAddress,
  storeCatalog,
  storeRows,
} from './tenants.js';

const ZONE = 'tenants.test';

/** Admin and public routes do not depend on the isolation model: this model's file covers them. */
const SHARED_ROUTES_MODEL = 'schema';

/**
 * The isolation suite, the same for every model: tenants A and B of `isolation`, and
 *
 * - catalog checks: RLS enabled and forced on every table with tenant_id, no SECURITY
 *   DEFINER function or owner-run view, a data role that is not owner, superuser or
 *   BYPASSRLS and cannot TRUNCATE; for database and cluster tenants, CONNECT revoked from
 *   PUBLIC and B's role refused at A's database;
 * - pool hygiene with one pooled connection;
 * - the cross-tenant matrix (B's ids, collections, crafted ids and cursors, B's hostname)
 *   and 200 parallel requests alternating A and B;
 * - the injection corpus into every string input of every tenant route — and, in the
 *   schema file only (they do not depend on the model), of every admin and public route.
 *
 * One file per model of the registry (security/isolation-<model>.test.ts, checked by
 * isolation-models.test.ts) so they run in parallel. What the suite needs to know about a
 * model is in suite/models.ts; a model without an entry there fails here, loudly.
 */
export interface SuiteOptions {
  /**
   * Tenants A and B are made on this model and moved to the suite's model (POST
   * /v1/tenants/{id}/move) before anything is checked: isolation must hold after a move
   * exactly as after provisioning. The injection corpus is left to the provisioned suites
   * (it exercises routes, which a move does not change).
   */
  movedFrom?: Isolation;
}

export function defineIsolationSuite(isolation: Isolation, options: SuiteOptions = {}): void {
  const model = suiteModel(isolation);
  const movedFrom = options.movedFrom;
  const environments = [model.environment(), ...(movedFrom ? [suiteModel(movedFrom).environment()] : [])];
  const workerEnv = Object.assign({}, ...environments.map((e) => e.workerEnv)) as Record<string, string>;
  const cleanup = async (controlPlaneDatabase: string | undefined) => {
    for (const e of environments) await e.cleanup(controlPlaneDatabase);
  };
  // The cheapest plan with both models (and API keys, which the corpus needs).
  const plan = movedFrom ? PlanId.options.find((p) => p !== 'trial' && p !== 'free' && planHasIsolation(p, isolation) && planHasIsolation(p, movedFrom))! : model.plan;
  const ownDatabase = model.ownDatabase;
  const coversSharedRoutes = isolation === SHARED_ROUTES_MODEL && !movedFrom;
  const runsCorpus = !movedFrom;
  const title = movedFrom ? `${isolation} tenants moved from ${movedFrom}` : `${isolation} tenants`;
  const stack = useStack({
    workerEnv,
    // Tenants get <slug>.tenants.test in a real PowerDNS, and the api checks the Host.
    service: async () => {
      const pdns = await PrivatePowerDns.start(ZONE);
      return {
        env: { TENANT_DNS_PROVIDER: 'powerdns', TENANT_DNS_ZONE: ZONE, TENANT_DNS_TARGET: '127.0.0.20', PDNS_API_URL: pdns.apiUrl, PDNS_API_KEY: pdns.apiKey },
        stop: () => pdns.stop(),
      };
    },
  });
  // Registered after useStack: runs before its database (which names what to remove) is dropped.
  afterAll(async () => {
    await cleanup(stack.database?.name);
  });

  /** In B's documents only: a response that contains it has leaked B's data. */
  const MARKER = `secret-of-b-${randomUUID()}`;
  let a: SuiteTenant;
  let b: SuiteTenant;
  const aDocs: string[] = [];
  const bDocs: string[] = [];

  const docs = (token: string, method: string, path: string, body?: unknown) => request(stack.api.baseUrl, method, `/v1/collections${path}`, { token, body });

  beforeAll(async () => {
    const origin = movedFrom ?? isolation;
    [a, b] = await Promise.all([createSuiteTenant(stack, origin, 'A', plan), createSuiteTenant(stack, origin, 'B', plan)]);
    for (let i = 0; i < 5; i++) {
      const mine = await docs(a.token, 'POST', '/notes/documents', { data: { owner: 'A', i } });
      const theirs = await docs(b.token, 'POST', '/notes/documents', { data: { owner: 'B', i, secret: MARKER } });
      expect([mine.status, theirs.status]).toEqual([201, 201]);
      aDocs.push(mine.body.id);
      bDocs.push(theirs.body.id);
    }
    // A collection only B has.
    expect((await docs(b.token, 'POST', '/b-only/documents', { data: { owner: 'B', secret: MARKER } })).status).toBe(201);
    // A file only B has.
    const upload = await fetch(`${stack.api.baseUrl}/v1/files/b-only/secret.txt`, { method: 'PUT', headers: { authorization: `Bearer ${b.token}`, 'content-type': 'text/plain' }, body: MARKER });
    expect(upload.status).toBe(201);
    if (movedFrom) [a, b] = await Promise.all([moveSuiteTenant(stack, a, isolation), moveSuiteTenant(stack, b, isolation)]);
  }, 240_000);

  describe(`catalog checks (${title})`, () => {
    it('every table with tenant_id has RLS enabled and forced; no SECURITY DEFINER function, no owner-run view', async () => {
      for (const tenant of [a, b]) {
        const catalog = await storeCatalog(stack, tenant);
        expect(catalog.tables.map((t) => t.name)).toContain(`${catalog.namespaces.length === 1 ? catalog.namespaces[0] : 'public'}.documents`);
        for (const table of catalog.tables) expect(table, table.name).toMatchObject({ rls: true, forced: true });
        expect(catalog.definers).toEqual([]);
        expect(catalog.ownerRunViews).toEqual([]);
      }
    });

    it('the role requests run as is not owner, superuser or BYPASSRLS, and cannot TRUNCATE', async () => {
      for (const tenant of [a, b]) {
        const role = await rolePrivileges(stack, tenant);
        expect(role.role).toBe(model.dataRole(tenant.id));
        expect(role).toMatchObject({ rolsuper: false, rolbypassrls: false, rolcreatedb: false, rolcreaterole: false, owns: 0, truncatable: [] });
      }
    });

    if (ownDatabase) {
      it("CONNECT is revoked from PUBLIC on tenant databases; B's role cannot connect to A's database, A's own can", async () => {
        for (const tenant of [a, b]) expect((await storeCatalog(stack, tenant)).publicCanConnect, tenant.tenantId).toBe(false);
        const own = await connectAsTenantRole(stack, a);
        await own.end();
        const aAt = await storeAddress(stack, a);
        const expected = ownDatabase.foreignRoleRefused;
        const refused = await connectAsTenantRole(stack, b, aAt).then(
          async (client) => {
            await client.end();
            return 'connected';
          },
          (err: { code?: string }) => err.code,
        );
        expect(expected).toContain(refused);
      });
    }
  });

  describe(`pool hygiene (${title})`, () => {
    it('one pooled connection: A, then no tenant context, then a failure mid-transaction — the next request sees no leftover', async () => {
      // The apps' own store factory, squeezed to one control-plane connection and one
      // tenant pool of one connection, so every step below reuses the same backend.
      const db = createDb(stack.database.url, { maxConnections: 1 });
      const store = createIsolationRegistry(db, {
        controlPlaneUrl: stack.database.url,
        secretKey: parseSecretKey(TENANT_SECRET_KEY),
        pools: { maxPools: 1, connectionsPerPool: 1, applicationName: 'tenantry-hygiene-test' },
        warn: () => undefined,
      });
      const row = async (t: SuiteTenant) =>
        stack.database.db.selectFrom('tenants').select(['id', 'isolation', 'schema_name', 'placement_generation']).where('id', '=', t.id).executeTakeFirstOrThrow();
      const ref = async (t: SuiteTenant) => {
        const r = await row(t);
        return { id: r.id, isolation: r.isolation, schemaName: r.schema_name, placementGeneration: r.placement_generation };
      };
      const snapshot = async (t: SuiteTenant, clearContext = false) => {
        const tenantRef = await ref(t);
        return store.run(tenantRef, async (trx) => {
          if (clearContext) await sql`select set_config('app.tenant_id', '', true)`.execute(trx);
          const { rows } = await sql<{ pid: number; tenant: string; who: string; n: number }>`
            select pg_backend_pid() as pid, current_setting('app.tenant_id', true) as tenant, current_user as who,
                   (select count(*)::int from documents) as n`.execute(trx);
          return rows[0]!;
        });
      };
      try {
        const first = await snapshot(a);
        expect(first).toMatchObject({ tenant: a.id, n: aDocs.length });

        // No tenant context on the same connection: zero rows, not A's.
        expect((await snapshot(a, true)).n).toBe(0);

        // A request that tries to leave session-wide state behind, then fails mid-transaction.
        const aRef = await ref(a);
        await expect(
          store.run(aRef, async (trx) => {
            await sql`select set_config('app.tenant_id', ${b.id}, false)`.execute(trx);
            await sql`select 1/0`.execute(trx);
          }),
        ).rejects.toThrow(/division by zero/);

        // The same backend (the connection was kept, not poisoned), A's context only.
        const after = await snapshot(a);
        expect(after).toEqual(first);

        if (!ownDatabase) {
          // Outside any request, the shared connection carries no tenant and no data role.
          const leftover = await sql<{ tenant: string | null; role: string }>`select current_setting('app.tenant_id', true) as tenant, current_user as role`.execute(db);
          expect(leftover.rows[0]!.tenant ?? '').toBe('');
          expect(leftover.rows[0]!.role).not.toBe(DATA_ROLE);
        } else {
          // One tenant pool at most: B's request evicts A's; each sees only its own rows, as its own role.
          const other = await snapshot(b);
          expect(other).toMatchObject({ tenant: b.id, who: `tr_${b.id.replaceAll('-', '')}`, n: bDocs.length + 1 });
          expect((await snapshot(a)).n).toBe(aDocs.length);
          // A bare connection as the role, without context, sees nothing (RLS is forced).
          const bare = await connectAsTenantRole(stack, a);
          try {
            expect((await bare.query('select count(*)::int as n from documents')).rows[0].n).toBe(0);
          } finally {
            await bare.end();
          }
        }
      } finally {
        await store.close();
        await db.destroy();
      }
    });
  });

  describe(`cross-tenant matrix (${title})`, () => {
    it("A's credential with B's ids, B's collection, crafted ids and cursors, or on B's hostname → 404, zero rows or 403; never B's data", async () => {
      const before = await storeRows(stack, b);
      const attempts = await Promise.all([
        ...bDocs.flatMap((id) => [
          docs(a.token, 'GET', `/notes/documents/${id}`),
          docs(a.token, 'PUT', `/notes/documents/${id}`, { data: { owner: 'A' } }),
          docs(a.token, 'DELETE', `/notes/documents/${id}`),
        ]),
        docs(a.token, 'GET', '/b-only/documents?limit=100'),
        docs(a.token, 'GET', `/notes/documents?where[secret]=${MARKER}`),
        docs(a.token, 'GET', '/notes/documents?where[owner]=B&limit=100'),
        docs(a.token, 'GET', `/notes/documents?cursor=${bDocs[0]}&limit=100`),
        docs(a.token, 'GET', '/notes/documents?cursor=00000000-0000-0000-0000-000000000000&limit=100'),
        docs(a.token, 'GET', '/notes/documents/00000000-0000-0000-0000-000000000000'),
        docs(a.token, 'GET', '/notes/documents/ffffffff-ffff-ffff-ffff-ffffffffffff'),
        docs(a.token, 'GET', `/b-only/documents/${bDocs[0]}`),
      ]);
      for (const res of attempts) {
        expect([200, 404]).toContain(res.status);
        if (res.status === 200) for (const item of res.body.items ?? [res.body]) expect(item.data.owner).toBe('A');
        expect(JSON.stringify(res.body)).not.toContain(MARKER);
      }
      // B's file: absent for A, whatever the method; A's list never shows it.
      for (const method of ['GET', 'HEAD', 'DELETE', 'PUT']) {
        const res = await fetch(`${stack.api.baseUrl}/v1/files/b-only/secret.txt`, { method, headers: { authorization: `Bearer ${a.token}` }, ...(method === 'PUT' ? { body: 'A' } : {}) });
        if (method === 'PUT') {
          // A's own file of that name: B's stays as it was.
          expect(res.status).toBe(201);
          await fetch(`${stack.api.baseUrl}/v1/files/b-only/secret.txt`, { method: 'DELETE', headers: { authorization: `Bearer ${a.token}` } });
        } else {
          expect(res.status, method).toBe(404);
        }
        expect(await res.text()).not.toContain(MARKER);
      }
      const listed = await request(stack.api.baseUrl, 'GET', '/v1/files?limit=1000', { token: a.token });
      expect(JSON.stringify(listed.body)).not.toContain('b-only');
      const bFile = await fetch(`${stack.api.baseUrl}/v1/files/b-only/secret.txt`, { headers: { authorization: `Bearer ${b.token}` } });
      expect(await bFile.text()).toBe(MARKER);
      // On B's hostname A's credential is refused outright, on reads and writes; on its own it works.
      const bHost = `${b.slug}.${ZONE}`;
      for (const [method, path] of [
        ['GET', '/v1/collections/notes/documents'],
        ['GET', `/v1/collections/notes/documents/${bDocs[0]}`],
        ['DELETE', `/v1/collections/notes/documents/${bDocs[0]}`],
        ['GET', '/v1/me'],
      ] as const) {
        const res = await requestOnHost(stack.api.baseUrl, bHost, method, path, { token: a.token });
        expect([res.status, res.body.code], `${method} ${path}`).toEqual([403, 'tenant_host_mismatch']);
      }
      const own = await requestOnHost(stack.api.baseUrl, `${a.slug}.${ZONE}`, 'GET', '/v1/collections/notes/documents?limit=100', { token: a.token });
      expect(own.status).toBe(200);
      expect(own.body.items.map((d: { data: { owner: string } }) => d.data.owner)).toEqual(Array(aDocs.length).fill('A'));

      expect(await storeRows(stack, b)).toEqual(before);
    });

    it('realtime: A and B subscribed at once, writing concurrently, each receive only their own events', async () => {
      const [streamA, streamB] = await Promise.all([openSse(stack.api.baseUrl, '/v1/realtime?collections=live', { token: a.token }), openSse(stack.api.baseUrl, '/v1/realtime?collections=live', { token: b.token })]);
      try {
        expect([streamA.status, streamB.status]).toEqual([200, 200]);
        const writes = await Promise.all(
          Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? docs(a.token, 'POST', '/live/documents', { data: { owner: 'A', i } }) : docs(b.token, 'POST', '/live/documents', { data: { owner: 'B', i, secret: MARKER } }))),
        );
        for (const w of writes) expect(w.status).toBe(201);
        const lastOf = (owner: string) => writes.filter((w) => w.body.data.owner === owner).map((w) => w.body.id as string);
        // Concurrent writes publish in commit order, not in the order they were sent.
        const has = (stream: typeof streamA, ids: string[]) => ids.every((id) => stream.events.some((e) => e.data.id === id));
        await waitFor(async () => (has(streamA, lastOf('A')) && has(streamB, lastOf('B')) ? true : undefined), 10_000);
        expect(streamA.events.map((e) => e.data.data.owner)).toEqual(Array(10).fill('A'));
        expect(JSON.stringify(streamA.events)).not.toContain(MARKER);
        expect(streamB.events.map((e) => e.data.data.owner)).toEqual(Array(10).fill('B'));
      } finally {
        streamA.close();
        streamB.close();
      }
    });

    it('200 parallel requests alternating tenants each see only their own documents', async () => {
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => {
          const [who, token] = i % 2 === 0 ? (['A', a.token] as const) : (['B', b.token] as const);
          return docs(token, 'GET', '/notes/documents?limit=100').then((res) => ({ who, res }));
        }),
      );
      for (const { who, res } of results) {
        expect(res.status).toBe(200);
        expect(res.body.items).toHaveLength(5);
        for (const item of res.body.items) expect(item.data.owner).toBe(who);
      }
    });
  });

  describe.runIf(runsCorpus)(`injection corpus (${title})`, () => {
    it(`${PAYLOADS.length} payloads into every string input of every ${coversSharedRoutes ? 'tenant, admin and public' : 'tenant'} route: no 5xx, no foreign data, existing rows unchanged`, async () => {
      expect(PAYLOADS.length).toBeGreaterThanOrEqual(50);
      const openapi = (await request<OpenApiDocumentLike>(stack.api.baseUrl, 'GET', '/v1/openapi.json')).body;
      const all = operationsOf(openapi);
      const operations = coversSharedRoutes ? all : all.filter((op) => op.auth === 'tenant');
      expect(operations.length).toBeGreaterThan(coversSharedRoutes ? 20 : 7);

      // Targets the baselines may legitimately change: a victim tenant for the admin routes
      // (lifecycle, billing, rename) and one of A's documents (replace, delete).
      const victim = coversSharedRoutes ? await createSuiteTenant(stack, isolation, 'Victim') : undefined;
      const sacrificial = (await docs(a.token, 'POST', '/notes/documents', { data: { owner: 'A', sacrificial: true } })).body.id as string;
      const apiKey = await request(stack.api.baseUrl, 'POST', '/v1/api-keys', { token: a.token, body: { name: 'corpus', scope: 'read' } });
      expect(apiKey.status).toBe(201);
      const signupId = (await stack.database.db.selectFrom('signups').select('id').limit(1).executeTakeFirstOrThrow()).id;
      // Subscribed only to an event nothing here emits (no tenant is purged), so the endpoints
      // the corpus registers (a payload can be a valid description) are never sent anything.
      const webhookBody = { url: 'https://billing.example.com/hooks/corpus', events: ['tenant.purged'], description: 'corpus' };
      const webhook = isolation === 'schema' ? await stack.admin('POST', '/v1/webhooks', { body: webhookBody }) : undefined;
      if (webhook) expect(webhook.status).toBe(201);
      const unique = `${process.pid}-${Date.now()}`;
      const baselines: Record<string, Baseline> = {
        'signup.create': { body: { email: `corpus-signup-${unique}@example.com`, password: 'violet-otter-stapler-42', orgName: 'Corpus Org', isolation: 'schema' } },
        'signup.status': { path: { signupId: toPublicId('sgn', signupId) } },
        'auth.login': { body: { email: a.email, password: a.password } },
        'auth.me': {},
        // No string input, so the corpus never sends it (it would end A's session).
        'auth.logout': {},
        'tenants.create': { body: { name: 'Corpus Tenant', ownerEmail: `corpus-tenant-${unique}@example.com`, plan: 'free', isolation: 'schema' } },
        'tenants.list': { query: { search: 'suite', plan: 'pro', status: 'active', limit: '10' } },
        'tenants.get': { path: { id: victim?.tenantId ?? '' } },
        'tenants.health': { path: { id: victim?.tenantId ?? '' } },
        'tenants.update': { path: { id: victim?.tenantId ?? '' }, body: { displayName: 'Victim Renamed' } },
        'tenants.suspend': { path: { id: victim?.tenantId ?? '' }, body: { reason: 'corpus' } },
        'tenants.unsuspend': { path: { id: victim?.tenantId ?? '' }, body: { reason: 'corpus' } },
        'tenants.delete': { path: { id: victim?.tenantId ?? '' }, query: { reason: 'corpus' } },
        'tenants.restore': { path: { id: victim?.tenantId ?? '' }, body: { reason: 'corpus' } },
        // Every injected slot makes the request invalid (the id, or the model), so no move starts.
        'moves.start': { path: { id: victim?.tenantId ?? '' }, body: { isolation: 'database' } },
        'moves.get': { path: { id: victim?.tenantId ?? '', moveId: `mov_${'0'.repeat(32)}` } },
        'billing.get': { path: { id: victim?.tenantId ?? '' } },
        'billing.update': { path: { id: victim?.tenantId ?? '' }, body: { plan: 'pro' } },
        'apiKeys.create': { body: { name: 'corpus', scope: 'read' } },
        'apiKeys.list': {},
        'apiKeys.revoke': { path: { id: apiKey.body.id } },
        'documents.create': { path: { collection: 'notes' }, body: { data: { owner: 'A' } } },
        'documents.list': { path: { collection: 'notes' }, query: { limit: '10', where: { owner: 'A' } } },
        'documents.get': { path: { collection: 'notes', id: sacrificial } },
        'documents.replace': { path: { collection: 'notes', id: sacrificial }, body: { data: { owner: 'A' } } },
        'documents.delete': { path: { collection: 'notes', id: sacrificial } },
        'audit.list': { query: { tenantId: victim?.tenantId ?? '', limit: '5' } },
        'usage.ofTenant': { path: { id: victim?.tenantId ?? '' }, query: { month: monthOf(new Date()) } },
        'usage.ofTenantMonth': { path: { id: victim?.tenantId ?? '', month: monthOf(new Date()) } },
        'usage.series': { path: { id: victim?.tenantId ?? '' }, query: { meter: 'apiRequests', from: '2026-12-01T00:00:00Z', to: '2026-12-02T00:00:00Z', interval: 'hour' } },
        'usage.own': { query: { month: monthOf(new Date()) } },
        'usage.ownMonth': { path: { month: monthOf(new Date()) } },
        'meta.openapi': {},
        'pricing.estimate': { body: { plan: 'pro', usage: { apiRequests: 1000 } } },
        'webhooks.create': { body: webhookBody },
        'webhooks.list': {},
        'webhooks.delete': { path: { id: webhook?.body.id ?? '' } },
        'invoices.list': { path: { id: victim?.tenantId ?? '' }, query: { limit: '10' } },
        'invoices.upcoming': { path: { id: victim?.tenantId ?? '' } },
        'invoices.get': { path: { id: victim?.tenantId ?? '', number: 'INV-2026-000001' }, query: { format: 'json' } },
        'invoices.void': { path: { id: victim?.tenantId ?? '', number: 'INV-2026-000001' }, body: { reason: 'corpus' } },
        // A month no tenant of the suite existed in: closing it finalizes nothing.
        'invoices.close': { body: { month: '2020-01' } },
        'invoices.own': { query: { limit: '10' } },
        'invoices.ownGet': { path: { number: 'INV-2026-000001' }, query: { format: 'json' } },
        'files.put': { path: { key: 'corpus/a.txt' } },
        'files.get': { path: { key: 'corpus/a.txt' } },
        'files.head': { path: { key: 'corpus/a.txt' } },
        'files.delete': { path: { key: 'corpus/a.txt' } },
        'files.list': { query: { prefix: 'corpus/', limit: '10' } },
        'realtime.subscribe': { query: { collections: 'notes' } },
      };
      // Every route has a baseline, and every input we found is exercised below.
      for (const op of operations) expect(baselines, op.operationId).toHaveProperty([op.operationId]);
      const slots = operations.reduce((n, op) => n + op.slots.length, 0);

      const existing = await controlPlaneIds();
      const before = { control: await controlPlaneChecksums(existing, victim?.id), a: await storeRows(stack, a), b: await storeRows(stack, b) };

      const attempts = await runCorpus({
        baseUrl: stack.api.baseUrl,
        operations,
        baselines,
        tokens: { tenant: a.token, platform: PLATFORM_KEY },
        // Failed logins are limited per email: forget them, so every payload reaches the check.
        beforeEachPayload: () => deleteRedisKeys(`${stack.prefix}-rl-login`),
      });
      // Each slot saw every payload (headers: only those a header can carry).
      expect(attempts.length).toBeGreaterThan(slots * (PAYLOADS.length - 10));
      const failures = attempts
        .filter((t) => t.res.status >= 500 || JSON.stringify(t.res.body ?? '').includes(MARKER))
        .map((t) => `${t.operationId} ${t.slot.in}:${t.slot.name}(${t.slot.kind}) ${JSON.stringify(t.payload)} → ${t.res.status} ${JSON.stringify(t.res.body).slice(0, 200)}`);
      expect(failures).toEqual([]);

      const after = { control: await controlPlaneChecksums(existing, victim?.id), a: await storeRows(stack, a), b: await storeRows(stack, b) };
      expect(after.control).toEqual(before.control);
      expect(after.b).toEqual(before.b);
      // A's rows from before are all there and unchanged (new ones may be added: a payload
      // can be valid data), except the sacrificial document the baselines replace or delete.
      for (const [id, text] of before.a) if (id !== sacrificial) expect(after.a.get(id), id).toBe(text);
      // The corpus grows with every route and field (thousands of requests, some of them
      // argon2 hashes): its own budget, not the suite's default 30 s, which it can pass on a
      // loaded machine.
    }, 120_000);
  });

  /** Ids of the control-plane rows that exist before the corpus runs (the comparison is over these). */
  async function controlPlaneIds() {
    const db = stack.database.db;
    const ids = async (table: 'tenants' | 'users' | 'signups' | 'sessions' | 'tenant_api_keys' | 'platform_keys') =>
      (await db.selectFrom(table).select('id').execute()).map((r) => r.id);
    return {
      tenants: await ids('tenants'),
      users: await ids('users'),
      signups: await ids('signups'),
      sessions: await ids('sessions'),
      apiKeys: await ids('tenant_api_keys'),
      platformKeys: await ids('platform_keys'),
      auditUpTo: (await sql<{ seq: string }>`select coalesce(max(chain_seq), 0)::text as seq from audit_log`.execute(db)).rows[0]!.seq,
    };
  }

  /**
   * Checksums of those rows, per table — except the victim tenant's own row and billing
   * state, which the admin baselines change on purpose. Health probes write tenant_health
   * on their own schedule: not compared.
   */
  async function controlPlaneChecksums(ids: Awaited<ReturnType<typeof controlPlaneIds>>, victim: string | undefined) {
    const keep = ids.tenants.filter((id) => id !== victim);
    const { rows } = await sql<{ name: string; sum: string; n: number }>`
      select 'tenants' as name, md5(coalesce(string_agg(t::text, ',' order by t.id), '')) as sum, count(*)::int as n from tenants t where t.id = any(${keep}::uuid[])
      union all select 'users', md5(coalesce(string_agg(u::text, ',' order by u.id), '')), count(*)::int from users u where u.id = any(${ids.users}::uuid[])
      union all select 'memberships', md5(coalesce(string_agg(m::text, ',' order by m.user_id, m.tenant_id), '')), count(*)::int from memberships m where m.tenant_id = any(${ids.tenants}::uuid[])
      union all select 'billing_states', md5(coalesce(string_agg(b::text, ',' order by b.tenant_id), '')), count(*)::int from billing_states b where b.tenant_id = any(${keep}::uuid[])
      union all select 'signups', md5(coalesce(string_agg(s::text, ',' order by s.id), '')), count(*)::int from signups s where s.id = any(${ids.signups}::uuid[])
      union all select 'sessions', md5(coalesce(string_agg(s::text, ',' order by s.id), '')), count(*)::int from sessions s where s.id = any(${ids.sessions}::uuid[])
      union all select 'tenant_api_keys', md5(coalesce(string_agg(k::text, ',' order by k.id), '')), count(*)::int from tenant_api_keys k where k.id = any(${ids.apiKeys}::uuid[])
      union all select 'platform_keys', md5(coalesce(string_agg(p::text, ',' order by p.id), '')), count(*)::int from platform_keys p where p.id = any(${ids.platformKeys}::uuid[])
      union all select 'provisioning_steps', md5(coalesce(string_agg(p::text, ',' order by p.tenant_id, p.step), '')), count(*)::int from provisioning_steps p where p.tenant_id = any(${ids.tenants}::uuid[])
      union all select 'audit_log', md5(coalesce(string_agg(a::text, ',' order by a.chain_seq), '')), count(*)::int from audit_log a where a.chain_seq <= ${ids.auditUpTo}::bigint`.execute(
      stack.database.db,
    );
    return rows;
  }
}
