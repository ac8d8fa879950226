import { type Capability, type Limits, type SubscriptionState, entitlementsOf } from '@tenantry/domain';
import type { Cluster, Redis } from 'ioredis';
import { type EntitlementSource, type ResolvedEntitlements, freezeResolved } from './types.js';

/** A tenant's billing state as the entitlement cache needs it. */
export interface BillingRecord {
  plan: string;
  planVersion: number;
  subscriptionState: SubscriptionState;
  /** Overrides of the plan's capabilities (null: the plan's). */
  capabilities: Capability[] | null;
  /** Overrides of some of the plan's limits (null: the plan's). */
  limits: Partial<Limits> | null;
}

export interface BillingStore {
  /** The tenant's billing state; null when it has none. Throws when the store cannot be read. */
  load(tenantId: string): Promise<BillingRecord | null>;
}

export interface DatabaseSourceOptions {
  store: BillingStore;
  /**
   * Redis connections for invalidation. `subscriber` is put in subscriber mode and must not
   * be used for anything else: pass a dedicated connection (a server's or a cluster's) that
   * queues while Redis is away. `publisher` may be any shared connection (the api's
   * fail-fast one: invalidate() should not wait on a Redis that is down). The source does not
   * own them: close() unsubscribes but does not disconnect.
   */
  redis: { subscriber: Redis | Cluster; publisher: Redis | Cluster };
  /** Pub/sub channel shared by every instance, e.g. `${prefix}:entitlements:invalidate`. */
  channel: string;
  /** How long a loaded entry is served without asking the store. Default 30 s. */
  ttlMs?: number;
  /** How old an entry may be and still be served when the store fails. Default 1 h. */
  maxStalenessMs?: number;
  /** Bound of the cache. Default 10,000 tenants. */
  maxEntries?: number;
  /**
   * After a store failure, for this long, misses are answered from the fallback without
   * asking the store again, so a dead database costs each request nothing instead of a
   * connection timeout. Default 1 s; 0 turns it off.
   */
  storeRetryMs?: number;
  /** The clock, in ms. */
  now?: () => number;
  /** Store and Redis failures, for logging (the source itself never throws them at callers). */
  onError?: (err: unknown, context: 'store' | 'publish' | 'subscribe') => void;
}

interface Entry {
  /** The answer served on a fresh hit: frozen, origin 'cache', staleSeconds 0. */
  hit: ResolvedEntitlements;
  /** `hit`, already resolved: a hit allocates nothing. */
  hitPromise: Promise<ResolvedEntitlements>;
  /** When the store answered (ms): the age of a stale answer is measured from here. */
  loadedAt: number;
  /** Served from cache until then; afterwards reloaded (and served stale only if the store fails). */
  freshUntil: number;
}

interface Flight {
  promise: Promise<ResolvedEntitlements>;
}

const NO_BILLING_STATE: BillingRecord = { plan: 'trial', planVersion: 1, subscriptionState: 'trial', capabilities: null, limits: null };

/**
 * Entitlements of hosted tenants, from their billing state, cached in memory.
 *
 * - A cache entry is served for `ttlMs` after it was loaded; then the next get() reloads it
 *   (one store call per tenant however many callers wait: single-flight).
 * - invalidate(tenantId) drops the entry here and publishes the tenant id on `channel`;
 *   every source subscribed to the channel drops its entry, so a billing change is seen by
 *   every api instance as soon as the message arrives (milliseconds).
 * - If Redis pub/sub is down, messages are lost, and the TTL is what bounds how long an
 *   instance serves the old value (default 30 s). After the subscriber reconnects, every
 *   entry is marked due for reload (messages sent meanwhile are lost).
 * - If the store fails, an entry younger than `maxStalenessMs` is served with origin
 *   `stale-cache` and `staleSeconds` = its age; otherwise the trial defaults are served
 *   (fail-open) with origin `defaults` and `staleSeconds` = the age of the too-old entry if
 *   there is one, else `maxStalenessMs` in seconds (finite, so it serialises and graphs; it
 *   means "at least as stale as we ever allow"). Fallback answers are not cached.
 * - The cache holds at most `maxEntries` tenants. An entry moves to the back of the
 *   eviction order when it is (re)loaded — every `ttlMs` for a tenant in use — and the
 *   front is evicted: least recently loaded, which at TTL granularity is least recently
 *   used, without paying for reordering on each hit.
 */
export class DatabaseSource implements EntitlementSource {
  private readonly store: BillingStore;
  private readonly subscriber: Redis | Cluster;
  private readonly publisher: Redis | Cluster;
  readonly channel: string;
  private readonly ttlMs: number;
  private readonly maxStalenessMs: number;
  private readonly maxEntries: number;
  private readonly storeRetryMs: number;
  private readonly now: () => number;
  private readonly onError: (err: unknown, context: 'store' | 'publish' | 'subscribe') => void;

  private readonly entries = new Map<string, Entry>();
  private readonly flights = new Map<string, Flight>();
  private lastFailure: number | null = null;
  private subscribed: Promise<void> | undefined;
  private closed = false;

  private readonly onMessage = (channel: string, message: string) => {
    if (channel === this.channel) this.drop(message);
  };
  private readonly onReady = () => {
    // A (re)connected subscriber: ioredis re-subscribes by itself when the channel was
    // subscribed before; subscribing again is harmless and also covers a first SUBSCRIBE
    // that failed because Redis was down at boot.
    void this.subscribe();
  };

  constructor(options: DatabaseSourceOptions) {
    this.store = options.store;
    this.subscriber = options.redis.subscriber;
    this.publisher = options.redis.publisher;
    this.channel = options.channel;
    this.ttlMs = options.ttlMs ?? 30_000;
    this.maxStalenessMs = options.maxStalenessMs ?? 3_600_000;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.storeRetryMs = options.storeRetryMs ?? 1_000;
    this.now = options.now ?? Date.now;
    this.onError = options.onError ?? (() => undefined);
    if (this.maxEntries < 1) throw new RangeError('maxEntries must be at least 1');

    this.subscriber.on('message', this.onMessage);
    this.subscriber.on('ready', this.onReady);
    if (this.subscriber.status === 'ready' || this.subscriber.options.enableOfflineQueue) {
      // Sent now, or queued until the connection is up.
      this.subscribed = this.subscribe();
    } else if (this.subscriber.status === 'wait') {
      // A lazy fail-fast connection: connect it; 'ready' subscribes.
      this.subscriber.connect().catch(() => undefined);
    }
    // Otherwise a fail-fast connection still connecting: 'ready' subscribes. Serving before
    // then is safe: whatever is cached meanwhile is marked for reload once subscribed.
  }

  /**
   * Resolves once the invalidation channel is subscribed, or the attempt failed (see
   * onError), or at once when the subscriber is a fail-fast connection that is not up yet
   * (it subscribes when it is). Not needed for correctness: entries cached before the
   * subscription are reloaded after it.
   */
  async ready(): Promise<void> {
    await this.subscribed;
  }

  get(tenantId: string): Promise<ResolvedEntitlements> {
    const entry = this.entries.get(tenantId);
    if (entry !== undefined && this.now() < entry.freshUntil) return entry.hitPromise;
    return this.load(tenantId);
  }

  /**
   * Drop the tenant's entry here and on every instance (call after the billing change
   * committed). Returns false if the message could not be published: other instances then
   * see the change within their TTL. Never throws.
   */
  async invalidate(tenantId: string): Promise<boolean> {
    this.drop(tenantId);
    try {
      await this.publisher.publish(this.channel, tenantId);
      return true;
    } catch (err) {
      this.onError(err, 'publish');
      return false;
    }
  }

  /** When the store last failed (ms since the epoch), or null: for a staleness gauge. */
  lastStoreFailureAt(): number | null {
    return this.lastFailure;
  }

  /** Number of cached tenants (tests and metrics). */
  get size(): number {
    return this.entries.size;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.subscriber.off('message', this.onMessage);
    this.subscriber.off('ready', this.onReady);
    this.entries.clear();
    this.flights.clear();
    try {
      if (this.subscriber.status === 'ready') await this.subscriber.unsubscribe(this.channel);
    } catch {
      // A dead connection holds no subscription.
    }
  }

  private async subscribe(): Promise<void> {
    if (this.closed) return;
    try {
      await this.subscriber.subscribe(this.channel);
    } catch (err) {
      this.onError(err, 'subscribe');
      return;
    }
    // Invalidations published while we were not subscribed are lost: reload everything on
    // next use (entries stay for stale fallback, with their true age).
    for (const entry of this.entries.values()) entry.freshUntil = 0;
  }

  /** Forget a tenant: its entry, and any load in flight (its result must not be cached). */
  private drop(tenantId: string): void {
    this.entries.delete(tenantId);
    this.flights.delete(tenantId);
  }

  private load(tenantId: string): Promise<ResolvedEntitlements> {
    const existing = this.flights.get(tenantId);
    if (existing) return existing.promise;
    const flight = {} as Flight;
    flight.promise = this.fetch(tenantId, flight).finally(() => {
      if (this.flights.get(tenantId) === flight) this.flights.delete(tenantId);
    });
    this.flights.set(tenantId, flight);
    return flight.promise;
  }

  private async fetch(tenantId: string, flight: Flight): Promise<ResolvedEntitlements> {
    const started = this.now();
    if (this.lastFailure !== null && started - this.lastFailure < this.storeRetryMs) return this.fallback(tenantId, started);
    let record: BillingRecord | null;
    try {
      record = await this.store.load(tenantId);
    } catch (err) {
      const at = this.now();
      this.lastFailure = at;
      this.onError(err, 'store');
      return this.fallback(tenantId, at);
    }
    const value = entitlementsOf(record ?? NO_BILLING_STATE);
    const loadedAt = this.now();
    const hit = freezeResolved({ ...value, staleSeconds: 0, origin: 'cache' });
    // Invalidated (or closed) while loading: the caller gets what was read, but it is not
    // cached — a change committed during the load must not be hidden for a TTL.
    if (!this.closed && this.flights.get(tenantId) === flight) {
      this.entries.delete(tenantId);
      if (this.entries.size >= this.maxEntries) {
        const oldest = this.entries.keys().next();
        if (!oldest.done) this.entries.delete(oldest.value);
      }
      this.entries.set(tenantId, { hit, hitPromise: Promise.resolve(hit), loadedAt, freshUntil: loadedAt + this.ttlMs });
    }
    // The capability array and limits object are frozen and shared with the cache entry.
    return Object.freeze({ ...hit, origin: 'store' as const });
  }

  private fallback(tenantId: string, at: number): ResolvedEntitlements {
    const entry = this.entries.get(tenantId);
    const age = entry ? Math.max(0, at - entry.loadedAt) : undefined;
    if (entry && age! <= this.maxStalenessMs) {
      return Object.freeze({
        ...entry.hit,
        // At least 1: a stale answer never claims to be fresh.
        staleSeconds: Math.max(1, Math.ceil(age! / 1000)),
        origin: 'stale-cache' as const,
      });
    }
    const defaults = entitlementsOf(NO_BILLING_STATE);
    const staleMs = age ?? this.maxStalenessMs;
    return freezeResolved({ ...defaults, staleSeconds: Math.ceil(staleMs / 1000), origin: 'defaults' });
  }
}

/** A DatabaseSource whose invalidation channel is subscribed before it is returned. */
export async function createDatabaseSource(options: DatabaseSourceOptions): Promise<DatabaseSource> {
  const source = new DatabaseSource(options);
  await source.ready();
  return source;
}
