import path from 'node:path';
import { defaultDataDir } from '@tenantry/db';
import {
  RETIRED_METRICS_PORT,
  checkDnsEnv,
  describeEnvError,
  dnsEnv,
  envBoolean,
  envPort,
  envPositiveInt,
  invoiceEnv,
  logFormat,
  plainAbsolutePath,
  postgresUrl,
  postgresUrlList,
  redisEnv,
  checkRedisEnv,
  tenantSecretKey,
  webhookEnv,
  filesEnv,
  checkFilesEnv,
} from '@tenantry/domain';
import { z } from 'zod';

/** The worker's configuration, parsed once at boot; nothing else reads process.env. */
const WorkerEnv = z.object({
  DATABASE_URL: postgresUrl.default('postgres://postgres@127.0.0.1:5432/tenantry'),
  ...redisEnv,
  ...dnsEnv,
  /** Prometheus endpoint (GET /metrics). Its own variables: the api's are API_METRICS_PORT and HOST. */
  WORKER_METRICS_PORT: envPort.default(9092),
  WORKER_METRICS_HOST: z.string().min(1).default('0.0.0.0'),
  METRICS_PORT: RETIRED_METRICS_PORT,
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
  /** How often the usage gauges (storageBytes) are sampled into the hourly rollups. */
  USAGE_SAMPLE_INTERVAL_MS: envPositiveInt.default(60_000),
  /** A gap between two samples longer than this (the sampler was down) is left uncovered, not filled with the older value. */
  USAGE_GAUGE_MAX_GAP_MS: envPositiveInt.default(3_600_000),
  /** How often trials past their end date are moved to expired. */
  TRIAL_EXPIRY_INTERVAL_MS: envPositiveInt.default(60_000),
  /** How often tenants past their retention are purged. */
  PURGE_INTERVAL_MS: envPositiveInt.default(5 * 60_000),
  /**
   * Moves between isolation models: how many run at once per worker; keys per batch of a
   * copy pass or checksum walk; how long the cutover waits for the source's running writes
   * before it gives up and tries again later; and how long the source is kept (read-only)
   * after the switch, for requests routed to it just before.
   */
  MOVE_CONCURRENCY: envPositiveInt.default(1),
  MOVE_BATCH_ROWS: envPositiveInt.default(5_000),
  MOVE_FREEZE_TIMEOUT_MS: envPositiveInt.default(5_000),
  MOVE_SOURCE_GRACE_MS: envPositiveInt.default(2_000),
  SHUTDOWN_TIMEOUT_MS: envPositiveInt.default(20_000),
  DB_POOL_SIZE: envPositiveInt.default(10),
  /**
   * Database isolation. TENANT_SECRET_KEY (32 bytes, base64) encrypts tenant role passwords
   * and is required to provision database tenants; TENANT_DB_SERVERS lists the admin URLs
   * of the servers they are placed on (default: DATABASE_URL's server).
   */
  TENANT_SECRET_KEY: tenantSecretKey.optional(),
  TENANT_DB_SERVERS: postgresUrlList.optional(),
  /** Most tenant-database pools the worker's health probes keep open (one connection each). */
  TENANT_POOL_MAX: envPositiveInt.default(50),
  /**
   * Cluster isolation: `local` initdb's and runs a Postgres instance per tenant on this
   * host, under TENANT_CLUSTER_DATA_DIR, with TENANT_CLUSTER_PG_BIN's initdb/pg_ctl (empty:
   * each instance's own major under /usr/lib/postgresql, the newest for new ones), as
   * TENANT_CLUSTER_OS_USER when the worker is root; TENANT_CLUSTER_SETTINGS are extra
   * `name=value` server settings (space-separated). `kubernetes` renders CloudNativePG
   * manifests only (TENANT_CLUSTER_NAMESPACE) and does not provision.
   */
  TENANT_CLUSTER_DRIVER: z.enum(['local', 'kubernetes']).default('local'),
  /** Default: <TENANTRY_DATA_DIR>/clusters. */
  TENANT_CLUSTER_DATA_DIR: plainAbsolutePath.optional(),
  TENANT_CLUSTER_PG_BIN: z.string().regex(/^(\/[A-Za-z0-9_./-]*)?$/, 'must be an absolute plain path, or empty').default(''),
  TENANT_CLUSTER_OS_USER: z.string().min(1).default('postgres'),
  TENANT_CLUSTER_SETTINGS: z.string().default('').transform((s) => s.split(/\s+/).filter(Boolean)),
  TENANT_CLUSTER_NAMESPACE: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/).max(63).default('tenantry'),
  /**
   * Replicated cluster tenants (driver local; docs/configuration.md): streaming standbys per
   * new cluster tenant (a plan may raise it), synchronous or not, and the watch that keeps
   * them — how often it runs, how long a primary may not answer before a failover, how long
   * a standby may be down before its slot is dropped and it is rebuilt, how long commits
   * wait for a down standby before the primary commits alone, how long a fenced old
   * primary's directory is kept, and the most WAL a slot may hold back.
   */
  TENANT_CLUSTER_REPLICAS: z.coerce.number().int().min(0).max(5).default(1),
  TENANT_CLUSTER_SYNCHRONOUS: envBoolean.default(true),
  TENANT_CLUSTER_WATCH_INTERVAL_MS: envPositiveInt.default(1_000),
  TENANT_CLUSTER_FAILOVER_AFTER_MS: envPositiveInt.default(10_000),
  TENANT_CLUSTER_STANDBY_TIMEOUT_MS: envPositiveInt.default(5 * 60_000),
  TENANT_CLUSTER_SYNC_DEGRADE_AFTER_MS: envPositiveInt.default(10_000),
  TENANT_CLUSTER_FENCED_RETENTION_MS: envPositiveInt.default(24 * 60 * 60_000),
  TENANT_CLUSTER_MAX_SLOT_WAL_KEEP_SIZE: z.string().regex(/^[0-9]+(kB|MB|GB|TB)$/, 'a size such as 1GB or 512MB').default('1GB'),
  ...invoiceEnv,
  /** How often the worker looks for months whose grace period is over, and closes them. */
  BILLING_CLOSE_INTERVAL_MS: envPositiveInt.default(60 * 60_000),
  ...webhookEnv,
  ...filesEnv,
  /** How often expired uploads are released and objects no file points at are removed from the file storage. */
  FILE_SWEEP_INTERVAL_MS: envPositiveInt.default(60_000),
  /** How long one webhook attempt may take (connect, send, answer) before it counts as failed. */
  WEBHOOK_TIMEOUT_MS: envPositiveInt.default(10_000),
  /** An endpoint whose every attempt has failed for this long is disabled (and audited). */
  WEBHOOK_DISABLE_AFTER_MS: envPositiveInt.default(24 * 60 * 60_000),
  /** How often pending deliveries that are due but not queued (Redis flushed, worker killed) are re-enqueued. */
  WEBHOOK_RECONCILE_INTERVAL_MS: envPositiveInt.default(30_000),
  /** Deliveries sent at once by one worker. */
  WEBHOOK_CONCURRENCY: envPositiveInt.default(8),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: logFormat,
  /** This machine's files: the generated secret key when TENANT_SECRET_KEY is unset, local tenant clusters. */
  TENANTRY_DATA_DIR: plainAbsolutePath,
}).superRefine((env, ctx) => {
  checkDnsEnv(env, ctx);
  checkRedisEnv(env, ctx);
  checkFilesEnv(env, ctx);
  if (env.TENANT_DB_SERVERS && !env.TENANT_SECRET_KEY) {
    ctx.addIssue({
      code: 'custom',
      path: ['TENANT_SECRET_KEY'],
      message: 'database isolation (TENANT_DB_SERVERS) requires TENANT_SECRET_KEY: 32 random bytes, base64-encoded (`openssl rand -base64 32`)',
    });
  }
});

const WorkerConfigSchema = WorkerEnv.transform((env) => ({ ...env, TENANT_CLUSTER_DATA_DIR: env.TENANT_CLUSTER_DATA_DIR ?? path.join(env.TENANTRY_DATA_DIR, 'clusters') }));

export type WorkerConfig = z.infer<typeof WorkerConfigSchema>;

export class ConfigError extends Error {}

export function parseWorkerConfig(env: Record<string, string | undefined>): WorkerConfig {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  present.TENANTRY_DATA_DIR ??= defaultDataDir(env);
  const parsed = WorkerConfigSchema.safeParse(present);
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
