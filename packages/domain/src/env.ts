import { z } from 'zod';
import { CurrencyCode } from './pricing.js';

/**
 * Building blocks for the apps' env schemas (each app parses its env once, at boot, in its
 * own config.ts). Booleans accept only "true"/"false" (and 1/0): "yes" or "TRUE " is more
 * likely a typo than an intent, and a typo in a security switch must not pass silently.
 */
export const envBoolean = z
  .enum(['true', 'false', '1', '0'], { message: 'must be "true" or "false"' })
  .transform((v) => v === 'true' || v === '1');

export const envPort = z.coerce
  .number({ message: 'must be a port number' })
  .int('must be an integer')
  .min(0)
  .max(65535);

export const envPositiveInt = z.coerce.number({ message: 'must be a number' }).int('must be an integer').positive('must be positive');

export const postgresUrl = z
  .url({ message: 'must be a URL' })
  .refine((u) => /^postgres(ql)?:\/\//.test(u), 'must be a postgres:// URL');

export const redisUrl = z
  .url({ message: 'must be a URL' })
  .refine((u) => /^rediss?:\/\//.test(u), 'must be a redis:// or rediss:// URL');

/** Prefix of every Redis key we write (queues, limiter, caches). No ":" — BullMQ adds its own; no braces — on a cluster Tenantry adds its own hash tags. */
export const redisPrefix = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1–64 of A-Z a-z 0-9 _ -');

/**
 * Where Redis is, shared by the api and the worker. REDIS_URL is one server's URL, or with
 * REDIS_CLUSTER=true one or more seed nodes of a Redis Cluster, comma-separated (kept as the
 * string; @tenantry/jobs splits it).
 */
export const redisEnv = {
  REDIS_URL: z
    .string()
    .default('redis://127.0.0.1:6379')
    .refine((v) => v.split(',').every((url) => redisUrl.safeParse(url.trim()).success), 'must be a redis:// or rediss:// URL (with REDIS_CLUSTER=true: one or more, comma-separated)'),
  REDIS_CLUSTER: envBoolean.default(false),
  REDIS_PREFIX: redisPrefix.default('tenantry'),
};

export function checkRedisEnv(env: { REDIS_URL: string; REDIS_CLUSTER: boolean }, ctx: z.RefinementCtx): void {
  if (!env.REDIS_CLUSTER && env.REDIS_URL.includes(',')) {
    ctx.addIssue({ code: 'custom', path: ['REDIS_URL'], message: 'lists several URLs: that is a cluster\'s seed nodes, which needs REDIS_CLUSTER=true' });
  }
}

/** "KEY: message" lines of a failed env parse, for a boot error a person can act on. */
export function describeEnvError(error: z.ZodError): string {
  return error.issues.map((i) => `  ${i.path.join('.') || '(env)'}: ${i.message}`).join('\n');
}

/**
 * The key that encrypts tenant database passwords at rest (AES-256-GCM): exactly 32 bytes,
 * base64-encoded. Generate one with `openssl rand -base64 32`.
 */
export const tenantSecretKey = z
  .string()
  .trim()
  .refine((v) => /^[A-Za-z0-9+/]+={0,2}$/.test(v) && Buffer.from(v, 'base64').length === 32, {
    message: 'must be 32 random bytes, base64-encoded (generate one with `openssl rand -base64 32`)',
  });

/** Comma-separated postgres:// URLs (admin connections of the tenant database servers). */
export const postgresUrlList = z
  .string()
  .transform((v) => v.split(',').map((s) => s.trim()).filter((s) => s.length > 0))
  .pipe(z.array(postgresUrl).min(1, 'give at least one postgres:// URL'));

/** Per-tenant DNS settings, shared by the api (Host resolution, health) and the worker (records). */
export const dnsEnv = {
  TENANT_DNS_PROVIDER: z.enum(['none', 'powerdns']).default('none'),
  /** Tenants get <slug>.<zone>. */
  TENANT_DNS_ZONE: z
    .string()
    .regex(/^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/, 'must be a DNS zone like tenants.example.com')
    .optional(),
  /** What tenant names point at: an IPv4 address (A record) or a hostname (CNAME). */
  TENANT_DNS_TARGET: z.string().min(1).optional(),
  PDNS_API_URL: z.url().optional(),
  PDNS_API_KEY: z.string().min(1).optional(),
};

/** PowerDNS needs its API, key, zone and target; name each missing one. */
export function checkDnsEnv(
  env: { TENANT_DNS_PROVIDER: 'none' | 'powerdns'; TENANT_DNS_ZONE?: string | undefined; TENANT_DNS_TARGET?: string | undefined; PDNS_API_URL?: string | undefined; PDNS_API_KEY?: string | undefined },
  ctx: z.RefinementCtx,
): void {
  if (env.TENANT_DNS_PROVIDER !== 'powerdns') return;
  for (const name of ['TENANT_DNS_ZONE', 'TENANT_DNS_TARGET', 'PDNS_API_URL', 'PDNS_API_KEY'] as const) {
    if (!env[name]) ctx.addIssue({ code: 'custom', path: [name], message: 'is required with TENANT_DNS_PROVIDER=powerdns' });
  }
}

/**
 * A variable that is no longer read: refused at boot with what replaces it, so an
 * operator's setting never silently stops applying.
 */
export const retiredEnv = (replacement: string) => z.never({ error: `is no longer read: ${replacement}` }).optional();

/** Both apps read their environment together under `pnpm start`: one port variable for two apps could only clash. */
export const RETIRED_METRICS_PORT = retiredEnv('set API_METRICS_PORT (api, default 9091) and WORKER_METRICS_PORT (worker, default 9092)');

/** An absolute plain path (no spaces or shell-special characters: it reaches initdb and pg_ctl). */
export const plainAbsolutePath = z.string().regex(/^\/[A-Za-z0-9_./-]*$/, 'must be an absolute plain path');

/** LOG_FORMAT: `auto` is pretty on a terminal, JSON lines otherwise (what log shippers read). */
export const logFormat = z.enum(['auto', 'json', 'pretty']).default('auto');
/** Invoicing settings, shared by the api (pricing calculator) and the worker (month close). */
export const invoiceEnv = {
  /** The installation's one currency (ISO 4217); the price book's minor units are of it. */
  INVOICE_CURRENCY: CurrencyCode.default('USD'),
  /** Who issues the invoices, as printed on them. */
  INVOICE_ISSUER_NAME: z.string().trim().min(1).max(200).default('Tenantry'),
  /** The issuer's address, lines separated by ";". */
  INVOICE_ISSUER_ADDRESS: z
    .string()
    .max(1000)
    .default('')
    .transform((v) => v.split(';').map((l) => l.trim()).filter(Boolean)),
  /**
   * After a month ends, how long late counts may still arrive before its usage is final:
   * the worker closes the month (finalizes its invoices) once this has passed.
   */
  BILLING_CLOSE_GRACE_HOURS: z.coerce.number().min(0).default(12),
};

/** Outgoing webhook settings, shared by the api (registration, enqueue) and the worker (delivery). */
export const webhookEnv = {
  /** Allow http and private, loopback and other special addresses as webhook targets (tests, on-premises receivers). */
  WEBHOOK_ALLOW_PRIVATE_TARGETS: envBoolean.default(false),
  /** Attempts per delivery, and the first retry's delay (doubling after each failure). */
  WEBHOOK_ATTEMPTS: envPositiveInt.default(15),
  WEBHOOK_BACKOFF_MS: envPositiveInt.default(10_000),
};
