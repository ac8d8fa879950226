import {
  RETIRED_METRICS_PORT,
  checkDnsEnv,
  describeEnvError,
  dnsEnv,
  envBoolean,
  envPort,
  envPositiveInt,
  logFormat,
  plainAbsolutePath,
  invoiceEnv,
  postgresUrl,
  postgresUrlList,
  redisEnv,
  checkRedisEnv,
  tenantSecretKey,
  webhookEnv,
  filesEnv,
  checkFilesEnv,
  realtimeEnv,
} from '@tenantry/domain';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { defaultDataDir } from '@tenantry/db';
import { parseTrustProxy } from './http/client-address.js';

/**
 * The api's configuration: parsed from the environment once, at boot. Nothing else in the
 * api reads process.env. Names and defaults follow docs/configuration.md.
 */
const ApiEnv = z
  .object({
    DATABASE_URL: postgresUrl.default('postgres://postgres@127.0.0.1:5432/tenantry'),
    ...redisEnv,
    ...dnsEnv,
    PORT: envPort.default(3000),
    /** Prometheus endpoint (GET /metrics), apart from the public port. */
    API_METRICS_PORT: envPort.default(9091),
    METRICS_PORT: RETIRED_METRICS_PORT,
    HOST: z.string().min(1).default('0.0.0.0'),
    HOSTED_MODE: envBoolean.default(false),
    MULTI_TENANT_ENABLED: envBoolean.default(false),
    SIGNUP_RATE_LIMIT_PER_HOUR: envPositiveInt.default(5),
    /** Pricing calculator requests per client address per minute, across all api instances. */
    PRICING_RATE_LIMIT_PER_MINUTE: envPositiveInt.default(60),
    ...invoiceEnv,
    ...webhookEnv,
    ...filesEnv,
    ...realtimeEnv,
    /**
     * Which proxies' X-Forwarded-For to believe: `false` (none, the default), the number of
     * proxies in front of the api, or their comma-separated addresses/CIDRs.
     */
    TRUST_PROXY: z
      .string()
      .default('false')
      .transform((value, ctx) => {
        try {
          return parseTrustProxy(value);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
          return z.NEVER;
        }
      }),
    SESSION_TTL_HOURS: envPositiveInt.default(24 * 7),
    /** Login attempts one client address (IPv6: its /64) may make across all accounts per 15 minutes. */
    LOGIN_ATTEMPTS_PER_ADDRESS: envPositiveInt.default(100),
    /** Lifetime of an operator (dashboard) session, from sign-in; then the operator signs in again. */
    OPERATOR_SESSION_TTL_MINUTES: envPositiveInt.default(60),
    /** The built dashboard (static files) served at /dashboard/; default: the monorepo's apps/dashboard/dist. */
    DASHBOARD_DIR: z.string().min(1).default(fileURLToPath(new URL('../../dashboard/dist', import.meta.url))),
    /** Largest document (its JSON) the data API stores; larger is 413 document_too_large. */
    DOCUMENT_MAX_BYTES: envPositiveInt.default(1024 * 1024),
    /** Comma-separated platform keys (several during a rotation). Unset: one is generated at first start. */
    PLATFORM_API_KEY: z.string().optional(),
    /**
     * Self-hosted licensing: a license JWT (LICENSE, or a file path in LICENSE_FILE) and the
     * vendor's Ed25519 public key (PEM). With a license, every tenant gets its plan; a bad
     * license stops the api at boot. Without one, entitlements come from billing state.
     */
    LICENSE: z.string().optional(),
    LICENSE_FILE: z.string().optional(),
    LICENSE_PUBLIC_KEY: z.string().optional(),
    /** How long an entitlement answer is cached per instance (changes are pushed sooner over Redis). */
    ENTITLEMENTS_CACHE_TTL_MS: envPositiveInt.default(30_000),
    /** With billing state unreadable, how long a cached answer may still be served before trial defaults. */
    ENTITLEMENTS_MAX_STALENESS_MS: envPositiveInt.default(3_600_000),
    /** Signing secret of the Stripe webhook endpoint (whsec_…). Unset: the webhook route answers 404. */
    STRIPE_WEBHOOK_SECRET: z.string().startsWith('whsec_', 'must be a Stripe webhook signing secret (whsec_…)').optional(),
    /** Days a deleted tenant's data is kept (restorable) before the worker purges it. */
    TENANT_DATA_RETENTION_DAYS: envPositiveInt.default(30),
    PROVISION_ATTEMPTS: envPositiveInt.default(5),
    PROVISION_BACKOFF_MS: envPositiveInt.default(1_000),
    DB_POOL_SIZE: envPositiveInt.default(10),
    /**
     * Database isolation: the key that decrypts tenant role passwords (32 bytes, base64;
     * the worker's must be the same). Unset: database isolation is refused.
     */
    TENANT_SECRET_KEY: tenantSecretKey.optional(),
    /** The servers tenant databases live on (admin URLs; only host, port and TLS options are used here). */
    TENANT_DB_SERVERS: postgresUrlList.optional(),
    /** Most per-tenant database pools kept open (least recently used closed first), and connections in each. */
    TENANT_POOL_MAX: envPositiveInt.default(50),
    TENANT_POOL_SIZE: envPositiveInt.default(2),
    /**
     * Resolved tenant credentials are kept in memory for up to this long (0: off, every
     * tenant call queries). Postgres announces every change that matters (a logout, a
     * revoked key, a suspension, a move) and the entry goes at once; see
     * services/credential-cache.ts.
     */
    CREDENTIAL_CACHE_TTL_MS: z.coerce.number().int().min(0).default(60_000),
    CREDENTIAL_CACHE_MAX_ENTRIES: envPositiveInt.default(100_000),
    /**
     * Cluster isolation (a dedicated Postgres instance per tenant): `local` runs instances
     * on the worker's host; `kubernetes` only renders CloudNativePG manifests, so the api
     * refuses cluster tenants under it.
     */
    TENANT_CLUSTER_DRIVER: z.enum(['local', 'kubernetes']).default('local'),
    /**
     * Usage metering (apiRequests, egressBytes) of tenant calls: counted in memory, flushed
     * to Postgres every USAGE_FLUSH_INTERVAL_MS (a SIGKILL loses at most that much of this
     * instance's counts); a flush not answered within USAGE_FLUSH_TIMEOUT_MS is retried.
     * Off only to measure what metering costs.
     */
    USAGE_METERING: envBoolean.default(true),
    /**
     * The share of a tenant's apiRequestsPerMinute an api instance takes from Redis at a
     * time and admits from memory (services/quotas.ts): fewer Redis calls per request, at
     * the price of up to (instances − 1) × that share of the limit refused early in a
     * window. 0: every call asks Redis.
     */
    RATE_LIMIT_LEASE_SHARE: z.coerce.number().min(0).max(0.1).default(0.01),
    USAGE_FLUSH_INTERVAL_MS: envPositiveInt.default(1_000),
    USAGE_FLUSH_TIMEOUT_MS: envPositiveInt.default(5_000),
    /**
     * While a tenant's move pauses its writes (the cutover, normally well under 2 s), a
     * write waits up to this long for the switch, then gets 503 tenant_moving with
     * Retry-After. Reads never wait.
     */
    MOVE_WRITE_WAIT_MS: z.coerce.number().int().min(0).default(3_000),
    /** A client must send its whole request (headers and body) within this, or get 408. */
    REQUEST_TIMEOUT_MS: envPositiveInt.default(30_000),
    SHUTDOWN_TIMEOUT_MS: envPositiveInt.default(10_000),
    /** On SIGTERM: how long to keep serving with /readyz at 503 before closing the listener. */
    SHUTDOWN_DRAIN_DELAY_MS: z.coerce.number().int().min(0).default(2_000),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    LOG_FORMAT: logFormat,
    /** This machine's files: the generated secret key when TENANT_SECRET_KEY is unset (default: see defaultDataDir). */
    TENANTRY_DATA_DIR: plainAbsolutePath,
  })
  .superRefine((env, ctx) => {
    checkDnsEnv(env, ctx);
    checkRedisEnv(env, ctx);
    checkFilesEnv(env, ctx);
    const licensed = env.LICENSE !== undefined || env.LICENSE_FILE !== undefined;
    if (licensed && env.HOSTED_MODE) {
      ctx.addIssue({ code: 'custom', path: ['LICENSE'], message: 'a license is for self-hosted installations; hosted mode reads billing state' });
    }
    if (licensed && !env.LICENSE_PUBLIC_KEY) {
      ctx.addIssue({ code: 'custom', path: ['LICENSE_PUBLIC_KEY'], message: 'LICENSE/LICENSE_FILE needs LICENSE_PUBLIC_KEY to verify it' });
    }
    if (env.TENANT_DB_SERVERS && !env.TENANT_SECRET_KEY) {
      ctx.addIssue({
        code: 'custom',
        path: ['TENANT_SECRET_KEY'],
        message: 'database isolation (TENANT_DB_SERVERS) requires TENANT_SECRET_KEY: 32 random bytes, base64-encoded (`openssl rand -base64 32`)',
      });
    }
    if (env.HOSTED_MODE && !env.MULTI_TENANT_ENABLED) {
      ctx.addIssue({
        code: 'custom',
        path: ['MULTI_TENANT_ENABLED'],
        message: 'HOSTED_MODE=true requires MULTI_TENANT_ENABLED=true (hosted signup creates tenants)',
      });
    }
  });

export type ApiConfig = z.infer<typeof ApiEnv>;

export class ConfigError extends Error {}

/** Parse the env; throws ConfigError whose message names every bad variable. */
export function parseApiConfig(env: Record<string, string | undefined>): ApiConfig {
  // An empty variable (FOO=) means "not set", as in most twelve-factor tooling.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  present.TENANTRY_DATA_DIR ??= defaultDataDir(env);
  const parsed = ApiEnv.safeParse(present);
  if (!parsed.success) throw new ConfigError(`Invalid configuration:\n${describeEnvError(parsed.error)}`);
  return parsed.data;
}

/**
 * The config of an entry point (main, CLI): on a bad value, print which variables are
 * wrong and exit 1 — there is nothing sensible to run with.
 */
export function loadApiConfigOrExit(): ApiConfig {
  try {
    return parseApiConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    process.exit(1);
  }
}
