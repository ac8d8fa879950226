import { randomUUID } from 'node:crypto';
import { type Db, createDb, insertProvisioningTenant } from '@tenantry/db';
import { PLAN_CATALOG, type PlanId, TRIAL_DEFAULTS } from '@tenantry/domain';
import { Redis, type RedisOptions } from 'ioredis';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type BillingRecord,
  type BillingStore,
  DatabaseSource,
  type DatabaseSourceOptions,
  PostgresBillingStore,
  createDatabaseSource,
} from '../packages/entitlements/src/index.js';
import { type TestDatabase, createTestDatabase } from './support/database.js';
import { TEST_REDIS_URL } from './support/env.js';
import { waitFor } from './support/http.js';
import { redisPrefix } from './support/redis.js';
import { PrivateRedis } from './support/redis-server.js';

let database: TestDatabase;
let store: PostgresBillingStore;
const prefix = redisPrefix();
const channel = `${prefix}:entitlements:invalidate`;

/** Everything a test opens, closed after it. */
const cleanup: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  database = await createTestDatabase();
  store = new PostgresBillingStore(database.db);
});
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});
afterAll(async () => {
  await database?.drop();
});

/** Like the api's fail-fast connection: commands fail at once while Redis is down, reconnects in the background. */
function connect(url = TEST_REDIS_URL, options: RedisOptions = {}): Redis {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 1_000,
    connectTimeout: 1_000,
    retryStrategy: (times) => Math.min(times * 50, 200),
    ...options,
  });
  redis.on('error', () => undefined);
  cleanup.push(() => redis.disconnect());
  return redis;
}

async function source(options: Partial<DatabaseSourceOptions> & { url?: string } = {}): Promise<DatabaseSource> {
  const { url, ...rest } = options;
  const publisher = connect(url);
  // The subscriber is its own connection with the same options, as the api would make it with duplicate().
  const subscriber = publisher.duplicate();
  subscriber.on('error', () => undefined);
  cleanup.push(() => subscriber.disconnect());
  // Connect both before subscribing (offline queue is off).
  await Promise.all([waitReady(publisher), waitReady(subscriber)]);
  const s = await createDatabaseSource({ store, redis: { subscriber, publisher }, channel, ...rest });
  cleanup.push(() => s.close());
  return s;
}

function waitReady(redis: Redis): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => redis.once('ready', () => resolve()));
}

async function tenantWith(plan: PlanId, state: BillingRecord['subscriptionState'] = 'active', overrides: { limits?: Record<string, number> } = {}) {
  const id = randomUUID();
  await insertProvisioningTenant(database.db, { id, name: `Ent ${id.slice(0, 8)}`, plan, isolation: 'schema' });
  await database.db
    .insertInto('billing_states')
    .values({
      tenant_id: id,
      plan,
      subscription_state: state,
      trial_ends_at: null,
      capabilities: null,
      limits: overrides.limits ? JSON.stringify(overrides.limits) : null,
    })
    .execute();
  return id;
}

async function setPlan(db: Db, tenantId: string, plan: PlanId): Promise<void> {
  await db.updateTable('billing_states').set({ plan, updated_at: sql`now()` }).where('tenant_id', '=', tenantId).execute();
}

/**
 * Counts loads; `down` makes it fail like a store that cannot be reached; `gate` holds each
 * load's answer (already read from Postgres) until released.
 */
class ProbeStore implements BillingStore {
  calls = 0;
  down = false;
  gate: Promise<void> | undefined;
  constructor(private readonly inner: BillingStore) {}
  async load(tenantId: string) {
    this.calls++;
    if (this.down) throw new Error('store down');
    const record = await this.inner.load(tenantId);
    if (this.gate) await this.gate;
    return record;
  }
}

describe('DatabaseSource', () => {
  it('loads once, then serves from cache (one store call for two gets)', async () => {
    const id = await tenantWith('pro', 'active', { limits: { members: 77 } });
    const probe = new ProbeStore(store);
    const s = await source({ store: probe });
    const first = await s.get(id);
    expect(first).toMatchObject({ plan: 'pro', subscriptionState: 'active', origin: 'store', staleSeconds: 0, metersEnabled: true });
    expect(first.capabilities).toEqual(PLAN_CATALOG.pro.capabilities);
    expect(first.limits).toEqual({ ...PLAN_CATALOG.pro.limits, members: 77 });
    const second = await s.get(id);
    expect(second).toMatchObject({ plan: 'pro', origin: 'cache', staleSeconds: 0 });
    expect(probe.calls).toBe(1);
    expect(Object.isFrozen(second) && Object.isFrozen(second.limits)).toBe(true);
  });

  it('reloads after the TTL', async () => {
    const id = await tenantWith('free');
    let now = 1_000_000;
    const probe = new ProbeStore(store);
    const s = await source({ store: probe, ttlMs: 30_000, now: () => now });
    await s.get(id);
    now += 29_999;
    expect((await s.get(id)).origin).toBe('cache');
    now += 1;
    expect((await s.get(id)).origin).toBe('store');
    expect(probe.calls).toBe(2);
  });

  it('serves trial defaults from the store when a tenant has no billing state (and for ids that are not tenant ids)', async () => {
    const s = await source();
    for (const id of [randomUUID(), 'not-a-uuid']) {
      const e = await s.get(id);
      expect(e).toMatchObject({ plan: 'trial', subscriptionState: 'trial', origin: 'store', staleSeconds: 0 });
      expect(e.capabilities).toEqual(TRIAL_DEFAULTS.capabilities);
      expect(e.limits).toEqual(TRIAL_DEFAULTS.limits);
    }
    expect(s.lastStoreFailureAt()).toBeNull();
  });

  it('a change invalidated on instance A is seen by instance B within a second', async () => {
    const id = await tenantWith('pro');
    const a = await source();
    const b = await source();
    expect((await a.get(id)).plan).toBe('pro');
    expect((await b.get(id)).plan).toBe('pro');

    await setPlan(database.db, id, 'enterprise');
    // Without the message, B keeps its cached answer (for up to the TTL).
    expect(await b.get(id)).toMatchObject({ plan: 'pro', origin: 'cache' });

    const started = performance.now();
    expect(await a.invalidate(id)).toBe(true);
    expect((await a.get(id)).plan).toBe('enterprise');
    let seen: string | undefined;
    while (performance.now() - started < 1_000) {
      seen = (await b.get(id)).plan;
      if (seen === 'enterprise') break;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const elapsed = performance.now() - started;
    expect(seen).toBe('enterprise');
    expect(elapsed).toBeLessThan(1_000);
  });

  it('an invalidation during a load keeps the loaded (old) value out of the cache', async () => {
    const id = await tenantWith('free');
    const probe = new ProbeStore(store);
    let release!: () => void;
    probe.gate = new Promise<void>((resolve) => (release = resolve));
    const s = await source({ store: probe });
    const pending = s.get(id);
    // The load has read 'free' and is held. Meanwhile a change commits and is invalidated.
    await waitFor(async () => (probe.calls === 1 ? true : undefined), 2_000, 5);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await setPlan(database.db, id, 'pro');
    await s.invalidate(id);
    probe.gate = undefined;
    release();
    // The caller that asked before the change gets what was read then...
    expect((await pending).plan).toBe('free');
    // ...but it was not cached: the next get reads the change.
    expect(await s.get(id)).toMatchObject({ plan: 'pro', origin: 'store' });
  });

  it('single-flight: a herd of gets on a cold tenant makes one store call', async () => {
    const id = await tenantWith('enterprise');
    const probe = new ProbeStore(store);
    let release!: () => void;
    probe.gate = new Promise<void>((resolve) => (release = resolve));
    const s = await source({ store: probe });
    const herd = Array.from({ length: 200 }, () => s.get(id));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(probe.calls).toBe(1);
    release();
    const answers = await Promise.all(herd);
    expect(probe.calls).toBe(1);
    expect(new Set(answers.map((e) => e.plan))).toEqual(new Set(['enterprise']));
    expect((await s.get(id)).origin).toBe('cache');
  });

  it('store down (Postgres unreachable) with a fresh-enough entry → the cached value, origin stale-cache, staleSeconds = its age', async () => {
    const id = await tenantWith('pro');
    // A real failing store: a Postgres URL nothing listens on.
    const deadDb = createDb('postgres://postgres@127.0.0.1:1/tenantry_nowhere', { maxConnections: 1, connectionTimeoutMillis: 1_000 });
    cleanup.push(() => deadDb.destroy());
    const dead = new PostgresBillingStore(deadDb);
    let current: BillingStore = store;
    const errors: unknown[] = [];
    let now = 5_000_000;
    const s = await source({ store: { load: (t) => current.load(t) }, now: () => now, onError: (err) => errors.push(err) });

    expect((await s.get(id)).origin).toBe('store');
    current = dead;
    now += 45_000; // past the 30 s TTL, well within the 1 h staleness bound
    const stale = await s.get(id);
    expect(stale).toMatchObject({ plan: 'pro', subscriptionState: 'active', origin: 'stale-cache', staleSeconds: 45 });
    expect(stale.staleSeconds).toBeGreaterThan(0);
    expect(s.lastStoreFailureAt()).toBe(now);
    expect(errors.length).toBe(1);
    expect(String((errors[0] as Error).message)).toMatch(/ECONNREFUSED|connect/);
  });

  it('store down past maxStaleness → trial defaults (fail-open), staleSeconds = the age of the too-old entry', async () => {
    const id = await tenantWith('enterprise');
    const probe = new ProbeStore(store);
    let now = 9_000_000;
    const s = await source({ store: probe, now: () => now, maxStalenessMs: 600_000 });
    expect((await s.get(id)).plan).toBe('enterprise');
    probe.down = true;
    now += 600_001;
    const e = await s.get(id);
    expect(e).toMatchObject({ plan: 'trial', subscriptionState: 'trial', origin: 'defaults', staleSeconds: 601 });
    expect(e.capabilities).toEqual(TRIAL_DEFAULTS.capabilities);
    expect(e.limits).toEqual(TRIAL_DEFAULTS.limits);
  });

  it('store down with nothing cached → trial defaults, staleSeconds = maxStaleness in seconds', async () => {
    const probe = new ProbeStore(store);
    probe.down = true;
    const s = await source({ store: probe });
    const e = await s.get(await tenantWith('pro'));
    expect(e).toMatchObject({ plan: 'trial', subscriptionState: 'trial', origin: 'defaults', staleSeconds: 3_600 });
    expect(s.lastStoreFailureAt()).not.toBeNull();
  });

  it('after a store failure, waits storeRetryMs before asking the store again, then recovers', async () => {
    const id = await tenantWith('pro');
    const probe = new ProbeStore(store);
    let now = 1_000;
    const s = await source({ store: probe, now: () => now, storeRetryMs: 1_000 });
    probe.down = true;
    expect((await s.get(id)).origin).toBe('defaults');
    expect(probe.calls).toBe(1);
    probe.down = false;
    now += 500;
    expect((await s.get(id)).origin).toBe('defaults');
    expect(probe.calls).toBe(1); // not asked during the back-off
    now += 500;
    expect(await s.get(id)).toMatchObject({ plan: 'pro', origin: 'store' });
    expect(probe.calls).toBe(2);
  });

  it('keeps at most maxEntries tenants, evicting the least recently loaded', async () => {
    const ids = [await tenantWith('free'), await tenantWith('free'), await tenantWith('free'), await tenantWith('free')];
    const probe = new ProbeStore(store);
    const s = await source({ store: probe, maxEntries: 3 });
    for (const id of ids) await s.get(id);
    expect(s.size).toBe(3);
    expect((await s.get(ids[3]!)).origin).toBe('cache');
    expect((await s.get(ids[1]!)).origin).toBe('cache');
    expect((await s.get(ids[0]!)).origin).toBe('store'); // evicted first
    expect(s.size).toBe(3);
  });

  it('invalidate() reports a publish it could not make, and never throws', async () => {
    const s = await source();
    const publisherDown = connect('redis://127.0.0.1:1', { lazyConnect: true });
    const subscriber = connect();
    await waitReady(subscriber);
    const orphan = new DatabaseSource({ store, redis: { subscriber, publisher: publisherDown }, channel });
    cleanup.push(() => orphan.close());
    expect(await orphan.invalidate(randomUUID())).toBe(false);
    expect(await s.invalidate(randomUUID())).toBe(true);
  });
});

describe('DatabaseSource across a Redis restart', () => {
  let redis: PrivateRedis;
  beforeAll(async () => {
    redis = await PrivateRedis.start();
  });
  afterAll(async () => {
    await redis?.kill();
  });

  it('the subscriber re-subscribes after Redis comes back; entries cached meanwhile are reloaded', async () => {
    const id = await tenantWith('free');
    const a = await source({ url: redis.url, ttlMs: 3_600_000 });
    const b = await source({ url: redis.url, ttlMs: 3_600_000 });
    expect((await b.get(id)).plan).toBe('free');

    await redis.kill();
    // Redis down: the change cannot be published; B still answers (from cache) — the TTL bounds this.
    await setPlan(database.db, id, 'pro');
    expect(await a.invalidate(id)).toBe(false);
    expect(await b.get(id)).toMatchObject({ plan: 'free', origin: 'cache' });

    await redis.start();
    // Once B's subscriber is back, everything B cached is due for reload (messages were lost).
    await waitFor(async () => ((await b.get(id)).plan === 'pro' ? true : undefined), 10_000, 20);

    // And the subscription itself is back: a new change propagates by message.
    await setPlan(database.db, id, 'enterprise');
    expect(await b.get(id)).toMatchObject({ plan: 'pro', origin: 'cache' });
    await waitFor(async () => ((await a.invalidate(id)) ? true : undefined), 10_000, 20);
    const started = performance.now();
    await waitFor(async () => ((await b.get(id)).plan === 'enterprise' ? true : undefined), 1_000, 2);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('Redis down at boot: the source starts (store reads work) and subscribes once Redis is up', async () => {
    await redis.kill();
    const id = await tenantWith('free');
    const publisher = connect(redis.url);
    const subscriber = connect(redis.url);
    const started = performance.now();
    const b = await createDatabaseSource({ store, redis: { subscriber, publisher }, channel, ttlMs: 3_600_000 });
    cleanup.push(() => b.close());
    // Boot is not held up by Redis.
    expect(performance.now() - started).toBeLessThan(500);
    expect((await b.get(id)).plan).toBe('free');

    await redis.start();
    await setPlan(database.db, id, 'pro');
    // Once B's subscriber connects, it subscribes, and reloads what it cached meanwhile.
    await waitFor(async () => ((await b.get(id)).plan === 'pro' ? true : undefined), 10_000, 20);
    // The subscription is live: a change reaches B by message (and only so: the TTL is an hour).
    await setPlan(database.db, id, 'enterprise');
    expect(await b.get(id)).toMatchObject({ plan: 'pro', origin: 'cache' });
    const other = connect(redis.url);
    await waitFor(
      async () => {
        await other.publish(channel, id);
        return (await b.get(id)).plan === 'enterprise' ? true : undefined;
      },
      10_000,
      20,
    );
  });
});
