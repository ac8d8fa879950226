import {
  checkDnsEnv,
  describeEnvError,
  dnsEnv,
  envBoolean,
  envPort,
  envPositiveInt,
  invoiceEnv,
  postgresUrl,
  postgresUrlList,
  redisPrefix,
  redisUrl,
  tenantSecretKey,
  webhookEnv,
} from '@tenantry/domain';
import { z } from 'zod';

/**
 * The api's configuration: parsed from the environment once, at boot. Nothing else in the
 * api reads process.env. Names and defaults follow docs/configuration.md.
 */
const ApiEnv = z
  .object({
    DATABASE_URL: postgresUrl.default('postgres://postgres@127.0.0.1:5432/tenantry'),
    REDIS_URL: redisUrl.default('redis://127.0.0.1:6379'),
    REDIS_PREFIX: redisPrefix.default('tenantry'),
    ...dnsEnv,
    PORT: envPort.default(3000),
    /** Prometheus endpoint (GET /metrics), apart from the public port. */
    METRICS_PORT: envPort.default(9091),
    HOST: z.string().min(1).default('0.0.0.0'),
    HOSTED_MODE: envBoolean.default(false),
    MULTI_TENANT_ENABLED: envBoolean.default(false),
    SIGNUP_RATE_LIMIT_PER_HOUR: envPositiveInt.default(5),
    /** Pricing calculator requests per client IP per minute, across all api instances. */
    PRICING_RATE_LIMIT_PER_MINUTE: envPositiveInt.default(60),
    ...invoiceEnv,
    ...webhookEnv,
    TRUST_PROXY: envBoolean.default(false),
    SESSION_TTL_HOURS: envPositiveInt.default(24 * 7),
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
     * Cluster isolation (a dedicated Postgres instance per tenant): `local` runs instances
     * on the worker's host; `kubernetes` only renders CloudNativePG manifests, so the api
     * refuses cluster tenants under it.
     */
    TENANT_CLUSTER_DRIVER: z.enum(['local', 'kubernetes']).default('local'),
    SHUTDOWN_TIMEOUT_MS: envPositiveInt.default(10_000),
    /** On SIGTERM: how long to keep serving with /readyz at 503 before closing the listener. */
    SHUTDOWN_DRAIN_DELAY_MS: z.coerce.number().int().min(0).default(2_000),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .superRefine((env, ctx) => {
    checkDnsEnv(env, ctx);
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
