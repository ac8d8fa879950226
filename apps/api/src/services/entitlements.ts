import { readFileSync } from 'node:fs';
import type { Db } from '@tenantry/db';
import { type EntitlementSource, PostgresBillingStore, createDatabaseSource, createTokenSource } from '@tenantry/entitlements';
import { type RedisClient, createSubscriberRedis, entitlementsChannel, redisSettingsOf } from '@tenantry/jobs';
import type { Logger } from 'pino';
import type { ApiConfig } from '../config.js';

/**
 * Where entitlements come from: a signed license (self-hosted, LICENSE / LICENSE_FILE —
 * verified now, so a bad license stops the boot), else the tenants' billing state in
 * Postgres, cached per instance and invalidated across instances over Redis pub/sub.
 */
export interface ApiEntitlements {
  source: EntitlementSource;
  /** After a billing change commits: drop every instance's cached answer for the tenant. */
  invalidate(tenantId: string): Promise<void>;
  close(): Promise<void>;
}

export async function createEntitlements(config: ApiConfig, db: Db, redis: RedisClient, logger: Logger): Promise<ApiEntitlements> {
  if (config.LICENSE !== undefined || config.LICENSE_FILE !== undefined) {
    const keySetting = config.LICENSE_PUBLIC_KEY!;
    const publicKey = keySetting.includes('BEGIN') ? keySetting : readFileSync(keySetting, 'utf8');
    const license = config.LICENSE_FILE !== undefined ? { licenseFile: config.LICENSE_FILE } : { license: config.LICENSE };
    const source = await createTokenSource(license, { publicKey });
    // A license covers the installation: there is no per-tenant billing state to invalidate.
    return { source, invalidate: async () => undefined, close: () => source.close() };
  }
  // Subscriber mode is exclusive, so a connection of its own; unlike the api's fail-fast one
  // it queues and retries, so the subscription survives a Redis restart. Its command timeout
  // keeps a boot with Redis down from waiting on SUBSCRIBE: 'ready' subscribes again.
  const subscriber = createSubscriberRedis(redisSettingsOf(config), 'tenantry-api-entitlements', 1_000);
  const source = await createDatabaseSource({
    store: new PostgresBillingStore(db),
    // Publishing uses the fail-fast connection: an invalidation never waits on a Redis that is down.
    redis: { subscriber, publisher: redis },
    channel: entitlementsChannel(config.REDIS_PREFIX),
    ttlMs: config.ENTITLEMENTS_CACHE_TTL_MS,
    maxStalenessMs: config.ENTITLEMENTS_MAX_STALENESS_MS,
    onError: (err: unknown) => logger.warn({ err }, 'entitlements: billing store or invalidation channel failed'),
  });
  return {
    source,
    invalidate: async (tenantId) => {
      // false: not published (Redis away); other instances catch up within the cache TTL.
      if (!(await source.invalidate(tenantId))) logger.warn({ tenantId }, 'entitlements: invalidation not published; other instances see the change within the cache TTL');
    },
    close: async () => {
      await source.close();
      subscriber.disconnect();
    },
  };
}
