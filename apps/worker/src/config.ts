import { describeEnvError, envPort, envPositiveInt, postgresUrl, redisPrefix, redisUrl } from '@tenantry/domain';
import { z } from 'zod';

/** The worker's configuration, parsed once at boot; nothing else reads process.env. */
const WorkerEnv = z.object({
  DATABASE_URL: postgresUrl.default('postgres://postgres@127.0.0.1:5432/tenantry'),
  REDIS_URL: redisUrl.default('redis://127.0.0.1:6379'),
  REDIS_PREFIX: redisPrefix.default('tenantry'),
  /** Prometheus endpoint (GET /metrics). */
  METRICS_PORT: envPort.default(9092),
  METRICS_HOST: z.string().min(1).default('0.0.0.0'),
  WORKER_CONCURRENCY: envPositiveInt.default(4),
  PROVISION_ATTEMPTS: envPositiveInt.default(5),
  PROVISION_BACKOFF_MS: envPositiveInt.default(1_000),
  /** How long a job's lock lives without renewal: a killed worker's job is redelivered after this. */
  WORKER_LOCK_DURATION_MS: envPositiveInt.default(30_000),
  RECONCILE_INTERVAL_MS: envPositiveInt.default(30_000),
  /** A signup not finished and untouched for this long is re-enqueued by the reconciler. */
  RECONCILE_STALE_AFTER_MS: envPositiveInt.default(60_000),
  /** How often every active tenant's store is probed, and how many probes run at once. */
  HEALTH_PROBE_INTERVAL_MS: envPositiveInt.default(30_000),
  HEALTH_PROBE_CONCURRENCY: envPositiveInt.default(8),
  /** How often trials past their end date are moved to expired. */
  TRIAL_EXPIRY_INTERVAL_MS: envPositiveInt.default(60_000),
  /** How often tenants past their retention are purged. */
  PURGE_INTERVAL_MS: envPositiveInt.default(5 * 60_000),
  SHUTDOWN_TIMEOUT_MS: envPositiveInt.default(20_000),
  DB_POOL_SIZE: envPositiveInt.default(10),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type WorkerConfig = z.infer<typeof WorkerEnv>;

export class ConfigError extends Error {}

export function parseWorkerConfig(env: Record<string, string | undefined>): WorkerConfig {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = WorkerEnv.safeParse(present);
  if (!parsed.success) throw new ConfigError(`Invalid configuration:\n${describeEnvError(parsed.error)}`);
  return parsed.data;
}

/**
 * The config of an entry point (main, CLI): on a bad value, print which variables are
 * wrong and exit 1 — there is nothing sensible to run with.
 */
export function loadWorkerConfigOrExit(): WorkerConfig {
  try {
    return parseWorkerConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    process.exit(1);
  }
}
