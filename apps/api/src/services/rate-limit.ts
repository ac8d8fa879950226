import { DependencyUnavailableError, RateLimitedError } from '@tenantry/domain';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

/**
 * The per-IP signup limiter. Its counters live in Redis, so every api instance draws from
 * the same budget.
 */
export function createSignupLimiter(redis: Redis, prefix: string, perHour: number): RateLimiterRedis {
  return new RateLimiterRedis({
    storeClient: redis,
    keyPrefix: `${prefix}-rl-signup`,
    points: perHour,
    duration: 3600,
    // Answer at once while the connection is down instead of waiting on a doomed command.
    rejectIfRedisNotReady: true,
  });
}

/** Failed logins allowed per email and client IP in LOGIN_WINDOW_SECONDS. */
const LOGIN_ATTEMPTS = 10;
const LOGIN_WINDOW_SECONDS = 15 * 60;

/**
 * The login limiter (failed attempts per email + IP), against password guessing. Unlike
 * signup it fails open to a per-process memory limiter while Redis is away: refusing every
 * login during a Redis outage would lock every tenant out, and the memory limiter still
 * bounds guessing per instance.
 */
export function createLoginLimiter(redis: Redis, prefix: string): RateLimiterRedis {
  const limits = { points: LOGIN_ATTEMPTS, duration: LOGIN_WINDOW_SECONDS };
  return new RateLimiterRedis({
    storeClient: redis,
    keyPrefix: `${prefix}-rl-login`,
    ...limits,
    rejectIfRedisNotReady: true,
    insuranceLimiter: new RateLimiterMemory({ keyPrefix: `${prefix}-rl-login-mem`, ...limits }),
  });
}

/**
 * The per-IP limiter of the public pricing calculator. It fails open to a per-process
 * memory limiter while Redis is away: the calculator writes nothing and costs little, so
 * a Redis outage should not take the pricing page down with it, and the memory limiter
 * still bounds what one client can ask of one instance.
 */
export function createPricingLimiter(redis: Redis, prefix: string, perMinute: number): RateLimiterRedis {
  const limits = { points: perMinute, duration: 60 };
  return new RateLimiterRedis({
    storeClient: redis,
    keyPrefix: `${prefix}-rl-pricing`,
    ...limits,
    rejectIfRedisNotReady: true,
    insuranceLimiter: new RateLimiterMemory({ keyPrefix: `${prefix}-rl-pricing-mem`, ...limits }),
  });
}

/**
 * Take one point for `key`. Over the limit → RateLimitedError (429 + Retry-After).
 * Redis unreachable → DependencyUnavailableError (503): signup fails closed, because an
 * unlimited signup endpoint is an open door to mass tenant creation, while a 503 during a
 * Redis outage costs a retry. (rate-limiter-flexible rejects with an Error, not a
 * RateLimiterRes, on store failure; treating both alike would turn a blip into 429s.)
 */
export async function consumeOrThrow(limiter: RateLimiterRedis, key: string, onLimited: () => void): Promise<void> {
  try {
    await limiter.consume(key);
  } catch (rejection) {
    if (rejection instanceof RateLimiterRes) {
      onLimited();
      throw new RateLimitedError(Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)));
    }
    throw new DependencyUnavailableError('redis', { cause: rejection });
  }
}
