import { readdirSync } from 'node:fs';
import path from 'node:path';
import { Resolver } from 'node:dns/promises';
import { MovingAwareStore } from '@tenantry/api';
import {
  FreezeTimeoutError,
  createDb,
  createIsolationRegistry,
  parseSecretKey,
  placementOf,
  provisionTenantSchema,
  syncTenantTables,
  verifyTenantTables,
} from '@tenantry/db';
import { type Isolation, TenantMovingError } from '@tenantry/domain';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_KEY, type RunningApi, TENANT_SECRET_KEY, startApi } from './support/apps.js';
import { request, waitFor } from './support/http.js';
import {
  type MoveTenant,
  Mutator,
  NumberedWriter,
  Reader,
  connectToPlacement,
  createTenant,
  numberedCounts,
  startMove,
  storeDocuments,
  tenantRow,
  waitForMove,
} from './support/moves.js';
import { PrivatePowerDns } from './support/powerdns.js';
import { useStack } from './support/stack.js';
import { dropTenantDatabasesOf } from './support/tenant-databases.js';
import { destroyClusterRoot, makeClusterRoot } from './support/tenant-clusters.js';

/**
 * Online moves between isolation models, end to end: a real api (two instances), a real
 * worker, real tenant databases and clusters, a real PowerDNS. The invariants of the
 * issue, each checked from outside: no acknowledged write lost or doubled, reads never
 * refused, the tenant never split, identity carried over, a failed verification rolled
 * back with the source intact and writable.
 */
const ZONE = 'tenants.test';
const root = makeClusterRoot();
let dnsEnv: Record<string, string> = {};
let dnsPort = 0;
const stack = useStack({
  workerEnv: { TENANT_CLUSTER_DATA_DIR: root, TENANT_CLUSTER_SETTINGS: 'shared_buffers=8MB max_connections=20' },
  service: async () => {
    const pdns = await PrivatePowerDns.start(ZONE);
    dnsPort = pdns.dnsPort;
    dnsEnv = { TENANT_DNS_PROVIDER: 'powerdns', TENANT_DNS_ZONE: ZONE, TENANT_DNS_TARGET: '127.0.0.20', PDNS_API_URL: pdns.apiUrl, PDNS_API_KEY: pdns.apiKey };
    return { env: dnsEnv, stop: () => pdns.stop() };
  },
});
/** A second api instance on the same database and Redis: a switch must reach every instance. */
let second: RunningApi;
beforeAll(async () => {
  second = await startApi({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix, ...dnsEnv });
});
afterAll(async () => {
  await second?.close();
  // Registered after useStack's: runs before its database (which names what to remove) is dropped.
  if (stack.database) await dropTenantDatabasesOf(stack.database.name);
  destroyClusterRoot(root);
});

const docs = (baseUrl: string, token: string, method: string, path: string, body?: unknown) => request(baseUrl, method, `/v1/collections${path}`, { token, body });

describe('starting and following a move', () => {
  let pro: MoveTenant;
  beforeAll(async () => {
    pro = await createTenant(stack, { plan: 'pro', isolation: 'schema' });
  });

  it('refused with 4xx {code, message} and nothing changed: unknown tenant, bad model, a model the plan lacks, the model it is on, a tenant not active, a second move while one runs', async () => {
    const free = await createTenant(stack, { plan: 'free', isolation: 'schema' });
    const movesBefore = await stack.database.db.selectFrom('tenant_moves').select('id').execute();
    const answers = [
      await stack.admin('POST', '/v1/tenants/ten_00000000000000000000000000000000/move', { body: { isolation: 'database' } }),
      await stack.admin('POST', `/v1/tenants/${pro.tenantId}/move`, { body: { isolation: 'mainframe' } }),
      await stack.admin('POST', `/v1/tenants/${pro.tenantId}/move`, { body: { isolation: 'database', extra: 1 } }),
      await stack.admin('POST', `/v1/tenants/${free.tenantId}/move`, { body: { isolation: 'database' } }),
      await stack.admin('POST', `/v1/tenants/${pro.tenantId}/move`, { body: { isolation: 'cluster' } }),
      await stack.admin('POST', `/v1/tenants/${pro.tenantId}/move`, { body: { isolation: 'schema' } }),
      await request(stack.api.baseUrl, 'POST', `/v1/tenants/${pro.tenantId}/move`, { token: pro.token, body: { isolation: 'database' } }),
    ];
    expect(answers.map((r) => [r.status, r.body.code])).toEqual([
      [404, 'tenant_not_found'],
      [400, 'validation_failed'],
      [400, 'validation_failed'],
      [403, 'capability_missing'],
      [403, 'capability_missing'],
      [409, 'isolation_unchanged'],
      [403, 'platform_key_required'],
    ]);
    for (const res of answers) expect(typeof res.body.message).toBe('string');

    expect((await stack.admin('POST', `/v1/tenants/${free.tenantId}/suspend`, { body: { reason: 'unpaid' } })).status).toBe(200);
    await stack.admin('PATCH', `/v1/tenants/${free.tenantId}`, { body: { plan: 'pro' } });
    const suspended = await stack.admin('POST', `/v1/tenants/${free.tenantId}/move`, { body: { isolation: 'database' } });
    expect([suspended.status, suspended.body.code]).toEqual([409, 'tenant_not_active']);

    expect(await stack.database.db.selectFrom('tenant_moves').select('id').execute()).toEqual(movesBefore);
    expect((await tenantRow(stack, pro)).isolation).toBe('schema');
  });

  it('a second move while one runs → 409 move_in_progress; the move is followed to done; another tenant cannot see it', async () => {
    const [first, twin] = await Promise.all([
      stack.admin('POST', `/v1/tenants/${pro.tenantId}/move`, { body: { isolation: 'database' } }),
      stack.admin('POST', `/v1/tenants/${pro.tenantId}/move`, { body: { isolation: 'database' } }),
    ]);
    const [accepted, refused] = first.status === 202 ? [first, twin] : [twin, first];
    expect([accepted.status, accepted.body.status]).toEqual([202, 'pending']);
    expect([refused.status, refused.body.code]).toEqual([409, 'move_in_progress']);
    expect(accepted.body.moveId).toMatch(/^mov_[0-9a-f]{32}$/);

    const other = await createTenant(stack, { plan: 'pro', isolation: 'schema' });
    expect((await stack.admin('GET', `/v1/tenants/${other.tenantId}/moves/${accepted.body.moveId}`)).status).toBe(404);
    expect((await stack.admin('GET', `/v1/tenants/${pro.tenantId}/moves/mov_00000000000000000000000000000000`)).body.code).toBe('move_not_found');
    expect((await stack.admin('GET', `/v1/tenants/${pro.tenantId}/moves/not-a-move`)).status).toBe(400);

    const final = await waitForMove(stack, pro, accepted.body.moveId);
    expect(final).toEqual({ moveId: accepted.body.moveId, from: 'schema', to: 'database', status: 'done' });
    const steps = await stack.database.db
      .selectFrom('tenant_move_steps')
      .select('status')
      .where('move_id', '=', (await stack.database.db.selectFrom('tenant_moves').select('id').where('tenant_id', '=', pro.id).executeTakeFirstOrThrow()).id)
      .orderBy('id')
      .execute();
    expect(steps.map((s) => s.status)).toEqual(['pending', 'copying', 'cutover', 'verifying', 'switched', 'done']);
    const audit = await stack.database.db.selectFrom('audit_log').select(['action', 'actor']).where('tenant_id', '=', pro.id).where('action', 'like', 'tenant.move%').orderBy('chain_seq').execute();
    expect(audit).toEqual([
      { action: 'tenant.move_requested', actor: expect.stringMatching(/^platform:/) },
      { action: 'tenant.moved', actor: 'system:worker' },
    ]);
  });

  it("the purge leaves a tenant with an open move alone (its data is in two stores) and takes it once the move has ended", async () => {
    const tenant = await createTenant(stack, { plan: 'pro', isolation: 'schema' });
    expect((await stack.admin('DELETE', `/v1/tenants/${tenant.tenantId}`)).status).toBe(200);
    const move = await stack.database.db
      .insertInto('tenant_moves')
      .values({ tenant_id: tenant.id, from_isolation: 'schema', to_isolation: 'database', status: 'copying', requested_by: 'test' })
      .returning('id')
      .executeTakeFirstOrThrow();
    const later = new Date(Date.now() + 365 * 24 * 3600 * 1000);
    await stack.worker!.purge(later);
    expect((await tenantRow(stack, tenant)).status).toBe('pending_deletion');
    await stack.database.db.updateTable('tenant_moves').set({ status: 'rolled_back' }).where('id', '=', move.id).execute();
    await stack.worker!.purge(later);
    expect((await tenantRow(stack, tenant)).status).toBe('deleted');
  });

  it('outside hosted mode both routes are 404', async () => {
    const selfHosted = await startApi({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix, HOSTED_MODE: 'false' });
    try {
      expect((await request(selfHosted.baseUrl, 'POST', `/v1/tenants/${pro.tenantId}/move`, { token: PLATFORM_KEY, body: { isolation: 'schema' } })).status).toBe(404);
      expect((await request(selfHosted.baseUrl, 'GET', `/v1/tenants/${pro.tenantId}/moves/mov_00000000000000000000000000000000`, { token: PLATFORM_KEY })).status).toBe(404);
    } finally {
      await selfHosted.close();
    }
  });
});

describe('a tenant moved schema → database → cluster → schema → cluster while it writes and reads through two api instances', () => {
  const SEEDED = 2_000;
  let tenant: MoveTenant;
  let apiKey: string;
  let usageBefore = 0;
  const resolver = new Resolver();

  beforeAll(async () => {
    tenant = await createTenant(stack, { plan: 'enterprise', isolation: 'schema' }, 90_000);
    resolver.setServers([`127.0.0.1:${dnsPort}`]);
    const key = await request(stack.api.baseUrl, 'POST', '/v1/api-keys', { token: tenant.token, body: { name: 'mover', scope: 'write' } });
    expect(key.status).toBe(201);
    apiKey = key.body.key;
    // Data to move: seeded in the tenant's schema directly (fast), plus some through the api (usage to carry over).
    const row = await tenantRow(stack, tenant);
    await sql`insert into ${sql.id(row.schema_name!, 'documents')} (tenant_id, collection, data)
      select ${tenant.id}::uuid, 'seed', jsonb_build_object('i', g, 'pad', repeat('x', 200), 'big', 12345678901234567890123) from generate_series(1, ${SEEDED}) g`.execute(stack.database.db);
    for (let i = 0; i < 5; i++) expect((await docs(stack.api.baseUrl, apiKey, 'POST', '/notes/documents', { data: { i } })).status).toBe(201);
    usageBefore = await waitFor(async () => {
      const usage = await stack.admin('GET', `/v1/tenants/${tenant.tenantId}/usage`);
      return usage.body.meters.apiRequests.total >= 6 ? usage.body.meters.apiRequests.total : undefined;
    });
  }, 120_000);

  const hops: Array<[Isolation, Isolation]> = [
    ['schema', 'database'],
    ['database', 'cluster'],
    ['cluster', 'schema'],
    // Back to a cluster: a new instance, port and passwords; no api instance may reuse a pool of the first.
    ['schema', 'cluster'],
  ];

  it.each(hops)('%s → %s: every acknowledged write exactly once, reads never refused, identity carried over, the source dropped', async (from, to) => {
    const before = await tenantRow(stack, tenant);
    expect(before.isolation).toBe(from);
    const apis = [stack.api.baseUrl, second.baseUrl];
    const collection = `numbered-${from}-${to}-${before.placement_generation}`;
    const writer = new NumberedWriter(apis, apiKey, collection).start(2);
    const reader = new Reader(apis, tenant.token, '/v1/collections/seed/documents?limit=20').start();
    // Replaces and deletes are writes too.
    const mutator = await new Mutator(apis, tenant.token, `mutated-${before.placement_generation}`).start();
    await new Promise((resolve) => setTimeout(resolve, 300));

    const moveId = await startMove(stack, tenant, to);
    // Until the switch the tenant row names the source, whole; never anything in between.
    const seen = new Set<string>();
    const final = await waitFor(async () => {
      const row = await tenantRow(stack, tenant);
      seen.add(`${row.isolation}:${row.placement_generation}`);
      const res = await stack.admin('GET', `/v1/tenants/${tenant.tenantId}/moves/${moveId}`);
      return res.body.status === 'done' || res.body.status === 'rolled_back' ? res.body : undefined;
    }, 120_000, 20);
    expect(final).toEqual({ moveId, from, to, status: 'done' });
    expect([...seen].every((s) => s === `${from}:${before.placement_generation}` || s === `${to}:${before.placement_generation + 1}`)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await Promise.all([writer.stop(), reader.stop(), mutator.stop()]);

    // No acknowledged write lost or applied twice, and nothing written that was not acknowledged.
    const counts = await numberedCounts(stack, tenant, collection);
    expect(writer.acked.size).toBeGreaterThan(20);
    const notOnce = [...writer.acked.keys()].filter((n) => counts.get(n) !== 1);
    expect(notOnce).toEqual([]);
    expect(counts.size).toBe(writer.acked.size);
    const stored = await storeDocuments(stack, tenant);
    for (const [n, id] of writer.acked) expect(stored.get(id)?.n, `write ${n}`).toBe(n);
    // Writes waited or were told to retry (503 tenant_moving); nothing failed.
    expect([...writer.statuses.keys()].filter((s) => s !== '201' && s !== '503 tenant_moving')).toEqual([]);
    expect([...mutator.statuses.keys()].filter((s) => !['200', '201', '503 tenant_moving'].includes(s))).toEqual([]);
    const stillThere = (await storeRows(`mutated-${before.placement_generation}`)).map((r) => [r.id, r.data] as const);
    expect(new Map(stillThere)).toEqual(mutator.expected);
    // Reads never stopped.
    expect([...reader.statuses.keys()]).toEqual(['200']);
    expect(reader.statuses.get('200')).toBeGreaterThan(10);

    // The seeded rows came along exactly: a number no double can hold is still all there.
    const exact = await connectToPlacement(await tenantRow(stack, tenant), stack.database.url);
    try {
      const { rows } = await exact.query(`select count(*)::int as n from documents where collection = 'seed' and data->>'big' = '12345678901234567890123' and length(data->>'pad') = 200`);
      expect(rows[0].n).toBe(SEEDED);
    } finally {
      await exact.end();
    }

    // The switch: the tenant row holds the target's placement only, one generation on.
    const after = await tenantRow(stack, tenant);
    expect(after).toMatchObject({ isolation: to, placement_generation: before.placement_generation + 1, writes_paused_at: null, status: 'active' });
    expect(after.schema_name === null).toBe(to !== 'schema');
    expect(after.cluster_data_dir === null).toBe(to !== 'cluster');
    expect(after.database_name === null).toBe(to === 'schema');
    const move = await stack.database.db.selectFrom('tenant_moves').selectAll().where('tenant_id', '=', tenant.id).orderBy('created_at', 'desc').executeTakeFirstOrThrow();
    expect(move.write_pause_ms).toBeLessThan(2_000);
    expect(move.verification).toEqual([expect.objectContaining({ table: 'documents', ok: true, sourceRows: move.verification![0]!.targetRows })]);
    // No secret placement left on a finished move.
    expect([move.target_placement, move.source_placement]).toEqual([null, null]);

    // The source is gone, through its driver.
    await expectSourceDropped(before);

    // Every api instance writes to the target now, at once.
    for (const baseUrl of apis) {
      const created = await docs(baseUrl, tenant.token, 'POST', '/after/documents', { data: { via: baseUrl } });
      expect(created.status).toBe(201);
      const client = await connectToPlacement(after, stack.database.url);
      try {
        expect((await client.query('select count(*)::int as n from documents where id = $1', [created.body.id])).rows[0].n).toBe(1);
      } finally {
        await client.end();
      }
    }

    // Identity: the same session and API key, the DNS record, the usage history.
    expect((await request(second.baseUrl, 'GET', '/v1/me', { token: tenant.token })).body.tenant.isolation).toBe(to);
    expect((await request(stack.api.baseUrl, 'GET', '/v1/api-keys', { token: tenant.token })).body.items.map((k: { name: string }) => k.name)).toContain('mover');
    expect(await resolver.resolve4(`${tenant.slug}.${ZONE}`)).toEqual(['127.0.0.20']);
    const health = await stack.admin('GET', `/v1/tenants/${tenant.tenantId}/health`);
    expect(health.body).toMatchObject({ healthy: true, store: { ok: true }, dns: { status: 'ok' } });
    const usage = await stack.admin('GET', `/v1/tenants/${tenant.tenantId}/usage`);
    expect(usage.body.meters.apiRequests.total).toBeGreaterThanOrEqual(usageBefore);

    // Into a cluster: replicated like any cluster tenant (TENANT_CLUSTER_REPLICAS, 1 by
    // default) once the watch has made its standby; out of one: no instance left recorded.
    const instances = await stack.database.db.selectFrom('cluster_instances').select(['role', 'state', 'data_dir']).where('tenant_id', '=', tenant.id).execute();
    if (to === 'cluster') {
      expect(after).toMatchObject({ cluster_replicas: 1, cluster_synchronous: true });
      expect(after.cluster_replication_password_enc).not.toBeNull();
      const replicated = await waitFor(async () => {
        const res = await stack.admin('GET', `/v1/tenants/${tenant.tenantId}/health`);
        const standby = res.body.replication?.instances?.find((i: { role: string }) => i.role === 'standby');
        return standby?.state === 'streaming' ? res.body.replication.instances : undefined;
      }, 60_000);
      expect(replicated.map((i: { role: string }) => i.role).sort()).toEqual(['primary', 'standby']);
    } else {
      expect(instances).toEqual([]);
      expect(after.cluster_replicas).toBeNull();
    }
  }, 180_000);

  async function storeRows(collection: string): Promise<Array<{ id: string; data: Record<string, unknown> }>> {
    const client = await connectToPlacement(await tenantRow(stack, tenant), stack.database.url);
    try {
      return (await client.query(`select id::text as id, data from documents where collection = $1`, [collection])).rows;
    } finally {
      await client.end();
    }
  }

  async function expectSourceDropped(source: Awaited<ReturnType<typeof tenantRow>>) {
    if (source.isolation === 'schema') {
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_namespace where nspname = ${source.schema_name}`.execute(stack.database.db);
      expect(rows[0]!.n).toBe(0);
    } else if (source.isolation === 'database') {
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_database where datname = ${source.database_name}`.execute(stack.database.db);
      expect(rows[0]!.n).toBe(0);
    } else {
      // The primary and every standby (`<dir>_<generation>`) are gone from disk.
      const parent = path.dirname(source.cluster_data_dir!);
      const base = path.basename(source.cluster_data_dir!);
      expect(readdirSync(parent).filter((entry) => entry === base || entry.startsWith(`${base}_`))).toEqual([]);
    }
  }
});

describe('a verification that fails', () => {
  it('rolls back: the tenant stays whole on its source, writable, the target is dropped, the move says why', async () => {
    const tenant = await createTenant(stack, { plan: 'pro', isolation: 'database' });
    for (let i = 0; i < 30; i++) expect((await docs(stack.api.baseUrl, tenant.token, 'POST', '/notes/documents', { data: { i } })).status).toBe(201);
    const before = await storeDocuments(stack, tenant);

    // A target that does not keep what it is given: its schema made ahead, with a trigger
    // that alters every row written to it (a copy that does not round-trip).
    const schema = `t_${tenant.id.replaceAll('-', '')}`;
    await stack.database.db.transaction().execute(async (trx) => {
      await provisionTenantSchema(trx, schema);
      await sql`create function ${sql.id(schema, 'tamper')}() returns trigger language plpgsql as $$
        begin new.data := new.data || '{"tampered": true}'; return new; end $$`.execute(trx);
      await sql`create trigger tamper before insert or update on ${sql.id(schema, 'documents')} for each row execute function ${sql.id(schema, 'tamper')}()`.execute(trx);
    });

    const moveId = await startMove(stack, tenant, 'schema');
    const final = await waitForMove(stack, tenant, moveId);
    expect(final).toMatchObject({ moveId, from: 'database', to: 'schema', status: 'rolled_back' });
    expect(final.error).toMatch(/^verification failed: documents: source 30 rows/);

    const row = await tenantRow(stack, tenant);
    expect(row).toMatchObject({ isolation: 'database', writes_paused_at: null, schema_name: null });
    expect(await storeDocuments(stack, tenant)).toEqual(before);
    // Writable again (its role's writes were given back), and readable.
    expect((await docs(stack.api.baseUrl, tenant.token, 'POST', '/notes/documents', { data: { after: 'rollback' } })).status).toBe(201);
    expect((await docs(stack.api.baseUrl, tenant.token, 'GET', '/notes/documents?limit=100')).body.items).toHaveLength(31);
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_namespace where nspname = ${schema}`.execute(stack.database.db);
    expect(rows[0]!.n).toBe(0);
    const audit = await stack.database.db.selectFrom('audit_log').select('action').where('tenant_id', '=', tenant.id).where('action', 'like', 'tenant.move%').orderBy('chain_seq').execute();
    expect(audit.map((a) => a.action)).toEqual(['tenant.move_requested', 'tenant.move_rolled_back']);
    const move = await stack.database.db.selectFrom('tenant_moves').selectAll().where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
    expect(move.verification?.[0]).toMatchObject({ table: 'documents', ok: false, sourceRows: 30, targetRows: 30 });
    expect(move.target_placement).toBeNull();

    // And it can move again once the cause is gone.
    const again = await startMove(stack, tenant, 'schema');
    expect((await waitForMove(stack, tenant, again)).status).toBe('done');
    expect((await docs(stack.api.baseUrl, tenant.token, 'GET', '/notes/documents?limit=100')).body.items).toHaveLength(31);
  }, 120_000);
});

describe('freezing a source, what the cutover stands on', () => {
  it.each(['schema', 'database', 'cluster'] as const)(
    '%s: waits for the write in flight, then refuses writes (one queued behind it too) but never reads; a stale write becomes 503 tenant_moving; thaw gives writes back',
    async (model) => {
      const tenant = await createTenant(stack, { plan: 'enterprise', isolation: model }, 90_000);
      const db = createDb(stack.database.url, { maxConnections: 4 });
      const registry = createIsolationRegistry(db, {
        controlPlaneUrl: stack.database.url,
        secretKey: parseSecretKey(TENANT_SECRET_KEY),
        pools: { maxPools: 4, connectionsPerPool: 4, applicationName: 'tenantry-freeze-test' },
        warn: () => undefined,
      });
      const row = await tenantRow(stack, tenant);
      const ref = { id: tenant.id, isolation: row.isolation, schemaName: row.schema_name, placementGeneration: row.placement_generation };
      const driver = registry.driver(model);
      const placement = placementOf(driver.placementColumns, row);
      const insert = (label: string) => registry.run(ref, (trx) => sql`insert into documents (collection, data) values ('frozen', ${JSON.stringify({ label })}::jsonb)`.execute(trx));
      const outcome = (p: Promise<unknown>) => p.then(() => 'written', (err: { code?: string }) => err.code ?? String(err));
      const labels = async () =>
        (await registry.run(ref, (trx) => sql<{ label: string }>`select data->>'label' as label from documents where collection = 'frozen' order by 1`.execute(trx))).rows.map((r) => r.label);
      try {
        // A write in flight: inserted, not committed yet.
        let inserted!: () => void;
        let release!: () => void;
        const insertedNow = new Promise<void>((resolve) => (inserted = resolve));
        const held = new Promise<void>((resolve) => (release = resolve));
        const inFlight = registry.run(ref, async (trx) => {
          await sql`insert into documents (collection, data) values ('frozen', '{"label": "in flight"}')`.execute(trx);
          inserted();
          await held;
        });
        await insertedNow;
        let frozen = false;
        const freezing = driver.freeze(tenant.id, placement, 20_000).then(() => (frozen = true));
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(frozen).toBe(false);
        // Queued behind the freeze's lock; and a read, which nothing blocks.
        const queued = outcome(insert('queued'));
        expect(await labels()).toEqual([]);
        release();
        await inFlight;
        await freezing;
        expect(await queued).toBe('42501');
        expect(await outcome(insert('after'))).toBe('42501');
        expect(await labels()).toEqual(['in flight']);

        // The api's store: a write that reaches the frozen source while the tenant's writes
        // are paused (it was routed before the pause) is 503 tenant_moving; without a move
        // going on, the same failure is not disguised as one.
        const store = new MovingAwareStore(registry, db);
        const write = () => store.run(ref, (trx) => sql`insert into documents (collection, data) values ('frozen', '{}')`.execute(trx));
        await expect(write()).rejects.toMatchObject({ code: '42501' });
        await sql`update tenants set writes_paused_at = now() where id = ${tenant.id}`.execute(stack.database.db);
        await expect(write()).rejects.toBeInstanceOf(TenantMovingError);
        await sql`update tenants set writes_paused_at = null where id = ${tenant.id}`.execute(stack.database.db);

        await driver.thaw(tenant.id, placement);
        expect(await outcome(insert('thawed'))).toBe('written');
        expect(await labels()).toEqual(['in flight', 'thawed']);

        // Writes that do not finish in time: the freeze gives up and changes nothing.
        let releaseLong!: () => void;
        const long = new Promise<void>((resolve) => (releaseLong = resolve));
        let started!: () => void;
        const startedNow = new Promise<void>((resolve) => (started = resolve));
        const longWrite = registry.run(ref, async (trx) => {
          await sql`insert into documents (collection, data) values ('frozen', '{"label": "long"}')`.execute(trx);
          started();
          await long;
        });
        await startedNow;
        await expect(driver.freeze(tenant.id, placement, 300)).rejects.toBeInstanceOf(FreezeTimeoutError);
        releaseLong();
        await longWrite;
        expect(await outcome(insert('still writable'))).toBe('written');
      } finally {
        await registry.close();
        await db.destroy();
      }
    },
    120_000,
  );
});

describe('the copy: a keyed diff, batch by batch', () => {
  it('makes a target that differs in every way (rows missing, extra, changed, equal; at and across batch edges) equal to its source, and verification says so', async () => {
    const tenant = await createTenant(stack, { plan: 'pro', isolation: 'schema' });
    const db = createDb(stack.database.url, { maxConnections: 4 });
    const registry = createIsolationRegistry(db, {
      controlPlaneUrl: stack.database.url,
      secretKey: parseSecretKey(TENANT_SECRET_KEY),
      pools: { maxPools: 2, connectionsPerPool: 2, applicationName: 'tenantry-copy-test' },
      warn: () => undefined,
    });
    const database = registry.driver('database');
    const placement = await database.provisionAt(tenant.id, await database.placeMove(tenant.id));
    const row = await tenantRow(stack, tenant);
    const source = await registry.driver('schema').attach(tenant.id, placementOf(registry.driver('schema').placementColumns, row));
    const target = await database.attach(tenant.id, placement);
    const insert = (store: typeof source, rows: Array<[string, string]>) =>
      store.run((trx) =>
        sql`insert into documents (id, collection, data, created_at, updated_at)
          select x.id::uuid, 'c', jsonb_build_object('v', x.v), '2026-12-01T00:00:00Z', '2026-12-01T00:00:00Z'
          from unnest(${rows.map((r) => r[0])}::text[], ${rows.map((r) => r[1])}::text[]) as x(id, v)`.execute(trx),
      );
    const id = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
    try {
      // 40 keys: 0–9 only in the source, 10–19 only in the target, 20–29 in both but different, 30–39 the same.
      await insert(source, [...Array(40).keys()].filter((n) => n < 10 || n >= 20).map((n) => [id(n), n >= 30 ? 'same' : 'source']));
      await insert(target, [...Array(40).keys()].filter((n) => n >= 10).map((n) => [id(n), n >= 30 ? 'same' : 'target']));
      // A value no double can hold, and a timestamp with microseconds, must arrive exactly.
      await source.run((trx) => sql`update documents set data = data || '{"big": 12345678901234567890123}', created_at = '2026-12-01 10:00:00.123456+00' where id = ${id(0)}`.execute(trx));
      expect((await verifyTenantTables(source, target, 3)).every((v) => v.ok)).toBe(false);

      const first = await syncTenantTables(source, target, 3);
      expect(first).toEqual({ upserted: 20, deleted: 10, sourceRows: 30 });
      expect((await verifyTenantTables(source, target, 7))[0]).toMatchObject({ ok: true, sourceRows: 30, targetRows: 30 });
      const exact = await target.run((trx) =>
        sql<{ big: string; at: string }>`select data->>'big' as big, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') as at from documents where id = ${id(0)}`.execute(trx),
      );
      expect(exact.rows[0]).toEqual({ big: '12345678901234567890123', at: '2026-12-01 10:00:00.123456' });
      // Nothing left to do: a pass over equal stores changes nothing.
      expect(await syncTenantTables(source, target, 4)).toEqual({ upserted: 0, deleted: 0, sourceRows: 30 });
      // A source emptied: the target follows.
      await source.run((trx) => sql`delete from documents`.execute(trx));
      expect(await syncTenantTables(source, target, 5)).toEqual({ upserted: 0, deleted: 30, sourceRows: 0 });
      expect((await verifyTenantTables(source, target, 5))[0]).toMatchObject({ ok: true, sourceRows: 0, targetRows: 0 });
    } finally {
      await source.close();
      await target.close();
      await database.dropAt(tenant.id, placement);
      await registry.close();
      await db.destroy();
    }
  });
});
