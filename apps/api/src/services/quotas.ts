import { createHash } from 'node:crypto';
import { latestGauges } from '@tenantry/db';
import { type Limits, QuotaExceededError, RateLimitedError } from '@tenantry/domain';
import type { RedisClient } from '@tenantry/jobs';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { ApiDeps } from '../context.js';
import type { ApiMetrics } from '../metrics.js';

const WINDOW_SECONDS = 60;
const MAX_BLOCKED_CREDENTIALS = 10_000;

const hashOf = (bearer: string) => createHash('sha256').update(bearer).digest('base64');

/**
 * Each tenant's request rate (its `apiRequestsPerMinute`), counted in Redis so that every
 * api instance draws from one budget. Fixed one-minute windows; every call of a tRPC batch
 * counts. Every answer carries RateLimit-Limit / -Remaining / -Reset; a refusal is 429
 * with Retry-After.
 *
 * Unlike signup, it fails open to an in-memory limiter per instance while Redis is away: a
 * Redis blip must not turn every tenant's traffic into 429s, and the memory limiter still
 * holds each instance to the rate.
 */
export class TenantRateLimit {
  /** One limiter per distinct limit (plans have a handful; overrides add a few). */
  private readonly limiters = new Map<number, RateLimiterRedis>();
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
  ) {}

  /** Take one call from the tenant's budget; over it, refuse (and remember the credential until the window ends). */
  async consume(tenantId: string, bearer: string | null, perMinute: number, headers: Record<string, string>): Promise<void> {
    headers['ratelimit-limit'] = String(perMinute);
    let msBeforeNext = WINDOW_SECONDS * 1000;
    if (perMinute > 0) {
      try {
        const res = await this.limiterFor(perMinute).consume(tenantId);
        headers['ratelimit-remaining'] = String(res.remainingPoints);
        headers['ratelimit-reset'] = String(Math.max(1, Math.ceil(res.msBeforeNext / 1000)));
        return;
      } catch (rejection) {
        if (!(rejection instanceof RateLimiterRes)) throw rejection;
        msBeforeNext = rejection.msBeforeNext;
      }
    }
    if (bearer) this.remember(hashOf(bearer), { tenantId, until: Date.now() + msBeforeNext, limit: perMinute });
    throw this.refusal(headers, perMinute, msBeforeNext);
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

  private remember(key: string, entry: { tenantId: string; until: number; limit: number }): void {
    this.blocked.delete(key);
    this.blocked.set(key, entry);
    if (this.blocked.size > MAX_BLOCKED_CREDENTIALS) this.blocked.delete(this.blocked.keys().next().value!);
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
