import { Redis } from 'ioredis';

/**
 * Redis connections come in three temperaments, and mixing them up is a classic outage:
 *
 * - request path (api: limiter, queue producer): fail fast. No offline queue, one retry,
 *   a short command timeout — a signup must answer 503 within a second or two when Redis
 *   is away, never hang.
 * - queue producer (api): BullMQ sends INFO the moment a Queue is built and treats a
 *   refusal as fatal, so the offline queue stays on; callers bound each add with their
 *   own timeout, and maxRetriesPerRequest: 1 keeps a Redis outage from piling up commands.
 * - worker (BullMQ consumers): never give up. BullMQ requires maxRetriesPerRequest: null
 *   for its blocking connections and reconnects on its own.
 */
export function createFailFastRedis(url: string, connectionName: string): Redis {
  const redis = new Redis(url, {
    connectionName,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 1_000,
    connectTimeout: 1_000,
    enableAutoPipelining: true,
    // Keep trying to reconnect in the background, capped at 1 s between tries, so the
    // api heals by itself when Redis comes back.
    retryStrategy: (times) => Math.min(times * 100, 1_000),
  });
  redis.on('error', () => {
    // Reported through failed commands and /readyz; without a listener ioredis logs every retry.
  });
  return redis;
}

export function createProducerRedis(url: string, connectionName: string): Redis {
  const redis = new Redis(url, {
    connectionName,
    maxRetriesPerRequest: 1,
    connectTimeout: 1_000,
    retryStrategy: (times) => Math.min(times * 100, 1_000),
  });
  redis.on('error', () => {
    // Reported through failed adds.
  });
  return redis;
}

export function createWorkerRedis(url: string, connectionName: string): Redis {
  const redis = new Redis(url, {
    connectionName,
    maxRetriesPerRequest: null,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
  });
  redis.on('error', () => {
    // BullMQ surfaces connection trouble through the worker's 'error' event.
  });
  return redis;
}
