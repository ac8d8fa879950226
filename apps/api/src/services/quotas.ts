import { createHash } from 'node:crypto';
import { latestGauges } from '@tenantry/db';
import { type Limits, QuotaExceededError, RateLimitedError } from '@tenantry/domain';
import type { RedisClient } from '@tenantry/jobs';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { ApiDeps } from '../context.js';
import type { ApiMetrics } from '../metrics.js';

const WINDOW_SECONDS = 60;
/** Most credentials remembered as refused, per instance. */
const MAX_BLOCKED_CREDENTIALS = 10_000;
/** Most tenants' leases held per instance (an evicted lease's unused calls are lost to its tenant until the window ends). */
const MAX_LEASES = 100_000;

const hashOf = (bearer: string) => createHash('sha256').update(bearer).digest('base64');

/**
 * What an instance knows of a tenant's budget in the current window: the calls it took
 * from Redis and has not admitted yet.
 */
interface Lease {
  limit: number;
  /** Calls this instance may still admit without asking Redis. */
  left: number;
  /** What Redis had left of the budget once this lease was taken (other instances' leases count as used). */
  redisRemaining: number;
  /** Redis had nothing more to give in this window: refuse, do not ask again. */
  exhausted: boolean;
  windowEndsAt: number;
}

/** How many calls an instance takes from Redis at once, for a limit of `perMinute`: `leaseShare` of it, at least one. */
export function leaseSize(perMinute: number, leaseShare: number): number {
  return Math.max(1, Math.floor(perMinute * leaseShare));
}

/**
 * Each tenant's request rate (its `apiRequestsPerMinute`), counted in Redis so that every
 * api instance draws from one budget. Fixed one-minute windows; every call of a tRPC batch
 * counts. Every answer carries RateLimit-Limit / -Remaining / -Reset; a refusal is 429
 * with Retry-After.
 *
 * Leases: an instance takes `leaseShare` of the limit from Redis at a time (one call, one
 * Redis round trip) and admits that many calls from memory, so a busy tenant costs Redis a
 * call per lease rather than per request: at the pro plan's 6,000 a minute and the default
 * 1%, one Redis call per 60 requests. Redis counts the whole lease when it is taken, so the
 * instances together never admit more than the limit. The price: calls an instance leased
 * and did not use by the window's end are lost to the tenant, so with N instances a tenant
 * can be refused up to (N − 1) × (lease − 1) calls short of its limit. Limits under
 * 1 / leaseShare lease one call at a time: exact, as without leases. Concurrent calls of a
 * tenant wait for one lease rather than each taking one.
 *
 * Unlike signup, it fails open to an in-memory limiter per instance while Redis is away: a
 * Redis blip must not turn every tenant's traffic into 429s, and the memory limiter still
 * holds each instance to the rate.
 */
export class TenantRateLimit {
  /** One limiter per distinct limit (plans have a handful; overrides add a few). */
  private readonly limiters = new Map<number, RateLimiterRedis>();
  /** Per tenant, this instance's lease in the current window. */
  private readonly leases = new Map<string, Lease>();
  /** Per tenant, the Redis call taking its next lease, which concurrent calls wait for. */
  private readonly refills = new Map<string, Promise<void>>();
  /**
   * Credentials (by hash) whose tenant is over its limit, until its window ends: refused by
   * this instance without a credential query or a Redis call. Bounded: a flood of distinct
   * credentials drops the oldest entries (they then cost one lookup again).
   */
  private readonly blocked = new Map<string, { tenantId: string; until: number; limit: number }>();

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly metrics: ApiMetrics,
    /** RATE_LIMIT_LEASE_SHARE; 0 asks Redis on every call. */
    private readonly leaseShare = 0,
  ) {}

  /** Take one call from the tenant's budget; over it, refuse (and remember the credential until the window ends). */
  async consume(tenantId: string, bearer: string | null, perMinute: number, headers: Record<string, string>): Promise<void> {
    headers['ratelimit-limit'] = String(perMinute);
    let msBeforeNext = WINDOW_SECONDS * 1000;
    // A lease this call just took is used even if its window ended meanwhile: a key Redis
    // reports no time left for must not send us round for another lease, and another.
    let justTaken = false;
    while (perMinute > 0) {
      const now = Date.now();
      let lease = this.leases.get(tenantId);
      if (lease && (lease.limit !== perMinute || (lease.windowEndsAt <= now && !justTaken))) lease = undefined;
      if (lease && lease.left > 0) {
        lease.left -= 1;
        headers['ratelimit-remaining'] = String(lease.redisRemaining + lease.left);
        headers['ratelimit-reset'] = String(Math.max(1, Math.ceil((lease.windowEndsAt - now) / 1000)));
        return;
      }
      if (lease?.exhausted) {
        msBeforeNext = lease.windowEndsAt - now;
        break;
      }
      let refill = this.refills.get(tenantId);
      if (refill) {
        // Another call of this tenant is taking a lease: share it (or, if it fails, try ourselves).
        await refill.catch(() => undefined);
        continue;
      }
      refill = this.takeLease(tenantId, perMinute);
      this.refills.set(tenantId, refill);
      try {
        await refill;
      } finally {
        this.refills.delete(tenantId);
      }
      justTaken = true;
    }
    if (bearer) this.remember(this.blocked, MAX_BLOCKED_CREDENTIALS, hashOf(bearer), { tenantId, until: Date.now() + msBeforeNext, limit: perMinute });
    throw this.refusal(headers, perMinute, msBeforeNext);
  }

  /**
   * Take the tenant's next lease from Redis. Redis adds the whole lease to the window's
   * count; when that passes the limit, only the part that fitted is this instance's, and
   * the lease is the window's last.
   */
  private async takeLease(tenantId: string, perMinute: number): Promise<void> {
    const size = leaseSize(perMinute, this.leaseShare);
    let res: RateLimiterRes;
    try {
      res = await this.limiterFor(perMinute).consume(tenantId, size);
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      res = rejection;
    }
    const fitted = Math.min(size, Math.max(0, perMinute - (res.consumedPoints - size)));
    this.remember(this.leases, MAX_LEASES, tenantId, {
      limit: perMinute,
      left: fitted,
      redisRemaining: Math.max(0, perMinute - res.consumedPoints),
      exhausted: res.consumedPoints >= perMinute,
      windowEndsAt: Date.now() + res.msBeforeNext,
    });
  }

  /** A credential this instance already refused in the current window: whose, at which limit, until when. */
  blockedCredential(bearer: string | null): { tenantId: string; limit: number; until: number } | undefined {
    if (!bearer || this.blocked.size === 0) return undefined;
    const key = hashOf(bearer);
    const entry = this.blocked.get(key);
    if (!entry) return undefined;
    if (entry.until <= Date.now()) {
      this.blocked.delete(key);
      return undefined;
    }
    return entry;
  }

  /**
   * The 429 for a credential this instance already refused in the current window, its
   * headers set — unless the tenant's limit was raised meanwhile (entitlements are cached in
   * memory and pushed on change). Asked before anything else of a tenant call, by the tRPC
   * middleware and by the REST handler before it builds a tRPC call at all.
   */
  async blockedRefusal(
    bearer: string | null,
    limitOf: (tenantId: string) => Promise<number>,
    headers: Record<string, string>,
  ): Promise<{ tenantId: string; error: RateLimitedError } | undefined> {
    const blocked = this.blockedCredential(bearer);
    if (!blocked || (await limitOf(blocked.tenantId)) > blocked.limit) return undefined;
    return { tenantId: blocked.tenantId, error: this.refusal(headers, blocked.limit, blocked.until - Date.now()) };
  }

  /** The 429 of a tenant over `limit`, its headers set; counted in tenantry_quota_exceeded_total. */
  refusal(headers: Record<string, string>, limit: number, msBeforeNext: number): RateLimitedError {
    const retryAfterSeconds = Math.max(1, Math.ceil(msBeforeNext / 1000));
    headers['ratelimit-limit'] = String(limit);
    headers['ratelimit-remaining'] = '0';
    headers['ratelimit-reset'] = String(retryAfterSeconds);
    this.metrics.quotaExceeded.inc({ resource: 'apiRequestsPerMinute' });
    return new RateLimitedError(retryAfterSeconds, `The tenant's request rate limit is reached; retry in ${retryAfterSeconds} s`);
  }

  /** Set `key` as the newest entry of `map`, the oldest going past `maxEntries`. */
  private remember<V>(map: Map<string, V>, maxEntries: number, key: string, entry: V): void {
    map.delete(key);
    map.set(key, entry);
    if (map.size > maxEntries) map.delete(map.keys().next().value!);
  }

  private limiterFor(points: number): RateLimiterRedis {
    let limiter = this.limiters.get(points);
    if (!limiter) {
      const options = { points, duration: WINDOW_SECONDS };
      limiter = new RateLimiterRedis({
        storeClient: this.redis,
        keyPrefix: `${this.prefix}-rl-tenant-${points}`,
        ...options,
        rejectIfRedisNotReady: true,
        insuranceLimiter: new RateLimiterMemory({ keyPrefix: `${this.prefix}-rl-tenant-${points}-mem`, ...options }),
      });
      this.limiters.set(points, limiter);
    }
    return limiter;
  }
}

/** How long an api instance reuses a tenant's latest storage sample before reading it again. */
export const STORAGE_SAMPLE_REUSE_MS = 2_000;

/**
 * Each tenant's latest `storageBytes` sample, as the worker recorded it, read at most once
 * per STORAGE_SAMPLE_REUSE_MS per instance (one read however many writes wait for it): the
 * sample only changes once per USAGE_SAMPLE_INTERVAL_MS (a minute by default), so reading
 * it on every write cost a query per write for nothing. A sample that crosses the tenant's
 * limit is announced by the worker (TENANT_STORAGE_CHANNEL) and `forget` drops the one held
 * here, so the reuse never delays a crossing; only while that announcement is lost (the
 * change feed reconnecting) can it lag by up to STORAGE_SAMPLE_REUSE_MS. Bounded: the
 * oldest entries go first past `maxEntries`.
 */
export class StorageSamples {
  private readonly entries = new Map<string, { readAt: number; value: Promise<number | undefined> }>();

  constructor(
    private readonly db: ApiDeps['db'],
    private readonly maxEntries = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  latest(tenantId: string): Promise<number | undefined> {
    const entry = this.entries.get(tenantId);
    if (entry && this.now() - entry.readAt < STORAGE_SAMPLE_REUSE_MS) return entry.value;
    const value = latestGauges(this.db, tenantId).then((gauges) => gauges.get('storageBytes')?.value);
    // A failed read is not reused: the next write asks again.
    value.catch(() => {
      if (this.entries.get(tenantId)?.value === value) this.entries.delete(tenantId);
    });
    this.entries.delete(tenantId);
    this.entries.set(tenantId, { readAt: this.now(), value });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    return value;
  }

  /** The tenant's next write reads its sample again (a new one crossed its limit). */
  forget(tenantId: string): void {
    this.entries.delete(tenantId);
  }
}

/**
 * Refuse a write that would add to a quota-held gauge once the tenant is at its limit, as
 * the gauge's latest sample says: the worker samples every USAGE_SAMPLE_INTERVAL_MS and
 * announces a sample that crossed the limit, so a tenant is held back within one sample
 * interval of crossing it, and let through again at the first sample after it freed space.
 * A limit change applies to the sample an instance holds at once (the sample itself is at
 * most STORAGE_SAMPLE_REUSE_MS older than the latest).
 */
export async function assertUnderQuota(deps: ApiDeps, tenantId: string, resource: 'storageBytes', limits: Limits): Promise<void> {
  const used = await deps.storageSamples.latest(tenantId);
  if (used !== undefined && used >= limits[resource]) {
    deps.metrics.quotaExceeded.inc({ resource });
    throw new QuotaExceededError(
      resource,
      'payment_required',
      `The tenant has used ${used} of its ${limits[resource]} bytes of ${resource}: reads and deletes still work; free space or raise the limit to write again`,
    );
  }
}
