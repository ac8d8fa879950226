import { DependencyUnavailableError, RateLimitedError } from '@tenantry/domain';
import type { RedisClient } from '@tenantry/jobs';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

/**
 * The per-IP signup limiter. Its counters live in Redis, so every api instance draws from
 * the same budget.
 */
export function createSignupLimiter(redis: RedisClient, prefix: string, perHour: number): RateLimiterRedis {
  return new RateLimiterRedis({
    storeClient: redis,
    keyPrefix: `${prefix}-rl-signup`,
    points: perHour,
    duration: 3600,
    // Answer at once while the connection is down instead of waiting on a doomed command.
    rejectIfRedisNotReady: true,
  });
}

/** Login attempts: limits and windows (docs/ops/security-baseline.md explains them). */
export const LOGIN_LIMITS = {
  /** Failed attempts per account and client address, then 429 until the window ends. */
  perAccountAndAddress: { points: 10, duration: 15 * 60 },
  /** Window of the attempts per client address across all accounts (LOGIN_ATTEMPTS_PER_ADDRESS; successes are given back). */
  perAddressWindowSeconds: 15 * 60,
  /** Failures per account across all addresses before its logins are slowed down. */
  accountFailuresBeforeSlowdown: 20,
  accountFailureWindowSeconds: 60 * 60,
  /** Once slowed: one attempt per this many seconds for the account, from unknown addresses. */
  slowdownIntervalSeconds: 15,
  /** A client address that signed in to an account is known to it this long. */
  knownAddressSeconds: 30 * 24 * 3600,
} as const;

export interface LoginLimiters {
  perAccountAndAddress: RateLimiterRedis;
  perAddress: RateLimiterRedis;
  accountFailures: RateLimiterRedis;
  accountSlowdown: RateLimiterRedis;
  /** Whether `address` signed in to `account` recently (it then skips the account slowdown). */
  isKnownAddress(account: string, address: string): Promise<boolean>;
  rememberAddress(account: string, address: string): Promise<void>;
}

/**
 * The login limiters, against password guessing, shared by every api instance through
 * Redis. Three angles, because each alone leaves a gap:
 * - per account and address: one source guessing one account;
 * - per address across accounts: one source trying many accounts (or one tRPC batch of
 *   many logins), checked before any password is hashed;
 * - per account across addresses: a botnet on one account is slowed to one attempt per
 *   slowdown interval. Slowed, not locked: an attacker must not be able to lock the owner
 *   out, so addresses that signed in to the account before are exempt, and anyone else
 *   waits seconds, not hours.
 * Unlike signup, they fail open to per-process memory limiters while Redis is away:
 * refusing every login during a Redis outage would lock every tenant out, and the memory
 * limiters still bound guessing per instance.
 */
export function createLoginLimiters(redis: RedisClient, prefix: string, attemptsPerAddress: number): LoginLimiters {
  const limiter = (name: string, points: number, duration: number) =>
    new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `${prefix}-rl-${name}`,
      points,
      duration,
      rejectIfRedisNotReady: true,
      insuranceLimiter: new RateLimiterMemory({ keyPrefix: `${prefix}-rl-${name}-mem`, points, duration }),
    });
  const knownKey = (account: string, address: string) => `${prefix}-login-known:${account}:${address}`;
  return {
    perAccountAndAddress: limiter('login', LOGIN_LIMITS.perAccountAndAddress.points, LOGIN_LIMITS.perAccountAndAddress.duration),
    perAddress: limiter('login-ip', attemptsPerAddress, LOGIN_LIMITS.perAddressWindowSeconds),
    accountFailures: limiter('login-acct', LOGIN_LIMITS.accountFailuresBeforeSlowdown, LOGIN_LIMITS.accountFailureWindowSeconds),
    accountSlowdown: limiter('login-slow', 1, LOGIN_LIMITS.slowdownIntervalSeconds),
    isKnownAddress: async (account, address) => (await redis.exists(knownKey(account, address)).catch(() => 0)) === 1,
    rememberAddress: async (account, address) => {
      await redis.set(knownKey(account, address), '1', 'EX', LOGIN_LIMITS.knownAddressSeconds).catch(() => undefined);
    },
  };
}

/**
 * The per-IP limiter of the public pricing calculator. It fails open to a per-process
 * memory limiter while Redis is away: the calculator writes nothing and costs little, so
 * a Redis outage should not take the pricing page down with it, and the memory limiter
 * still bounds what one client can ask of one instance.
 */
export function createPricingLimiter(redis: RedisClient, prefix: string, perMinute: number): RateLimiterRedis {
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
