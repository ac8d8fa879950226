import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Db, IsolationRegistry, TenantStore } from '@tenantry/db';
import type { DnsProvider } from '@tenantry/dns';
import type { EntitlementSource } from '@tenantry/entitlements';
import type { MoveQueue, ProvisioningQueue, RedisClient, WebhookQueue } from '@tenantry/jobs';
import type { Logger } from 'pino';
import type { RateLimiterRedis } from 'rate-limiter-flexible';
import type { ApiConfig } from './config.js';
import type { ApiMetrics } from './metrics.js';
import type { CredentialCache } from './services/credential-cache.js';
import type { DocumentsService } from './services/documents.js';
import type { FilesService } from './services/files.js';
import type { RealtimeHub } from './realtime/hub.js';
import type { StorageSamples, TenantRateLimit } from './services/quotas.js';
import type { LoginLimiters } from './services/rate-limit.js';
import type { StoredPlatformKeys } from './services/platform-keys.js';
import type { UsageMeter } from './usage/meter.js';

/** Long-lived things a request may use, built once at boot (see app.ts). */
export interface ApiDeps {
  config: ApiConfig;
  db: Db;
  redis: RedisClient;
  provisioningQueue: ProvisioningQueue;
  /** Outgoing webhook deliveries (the worker sends them). */
  webhookQueue: WebhookQueue;
  /** Moves of tenants between isolation models (the worker runs them). */
  moveQueue: MoveQueue;
  signupLimiter: RateLimiterRedis;
  loginLimiters: LoginLimiters;
  pricingLimiter: RateLimiterRedis;
  entitlements: EntitlementSource;
  /** Tell every api instance a tenant's billing state changed (entitlement caches). */
  onBillingChanged: (tenantId: string) => Promise<void>;
  /** SHA-256 of each key in PLATFORM_API_KEY. */
  platformKeyHashes: Buffer[];
  /** The stored platform keys (platform_keys), held in memory while the change feed listens. */
  platformKeys: StoredPlatformKeys;
  logger: Logger;
  metrics: ApiMetrics;
  dns: DnsProvider;
  documents: DocumentsService;
  /** Tenant files: bytes in the file storage, metadata and quota counters in the control plane. */
  files: FilesService;
  /** Realtime: document changes published across instances, and this instance's open streams. */
  realtime: RealtimeHub;
  /** Resolved tenant credentials, dropped when Postgres announces a change (services/credential-cache.ts). */
  credentials: CredentialCache;
  /** The installation key (TENANT_SECRET_KEY, or the generated key file): seals secrets at rest. */
  secretKey: Buffer;
  /** The OpenAPI document of the REST surface (built once, at boot). */
  openApiDocument: Record<string, unknown>;
  /** This instance's usage counters; undefined when USAGE_METERING=false. */
  usage: UsageMeter | undefined;
  /** Each tenant's request rate, across instances. */
  tenantRateLimit: TenantRateLimit;
  /** Tenants' latest storage samples, for the storage quota (services/quotas.ts). */
  storageSamples: StorageSamples;
  /**
   * Every tenant's data, routed to its isolation driver (the registry, as a TenantStore),
   * with a failure on a store the tenant just moved away from answered as tenant_moving.
   */
  tenantStore: TenantStore;
  /** The isolation drivers: which models this installation can take new tenants of. */
  isolation: IsolationRegistry;
}

export interface RequestContext {
  deps: ApiDeps;
  /** The client's address (http/client-address.ts: TRUST_PROXY decides whose word counts), worked out when asked. */
  clientIp(): string;
  /** The Host the client asked for (lower-case, no port), to cross-check a tenant's own hostname. */
  host: string | null;
  /** The bearer credential of the request, if any; which kind it is is decided by the procedure. */
  bearer: string | null;
  /** The operator session cookie (dashboard), if any, and the CSRF token header sent with it. */
  operatorToken: string | null;
  csrfToken: string | null;
  requestId: string;
  /** Headers the procedure wants on the response (set by the ladder, applied by both adapters). */
  responseHeaders: Record<string, string>;
  /** Fields for this request's log line (the tenant, once authenticated). */
  logFields: Record<string, string>;
  /** The tenant this request's response bytes are metered to (egressBytes), once authenticated. */
  usage: { tenantId: string | undefined };
  /** A success status the procedure chose over its route's (a replaced file's 200 instead of 201). */
  responseStatus: { value: number | undefined };
  /**
   * The HTTP exchange itself, for REST routes that stream a raw body or answer one
   * (http/rest.ts); absent over tRPC, where such procedures refuse.
   */
  http?: { req: IncomingMessage; res: ServerResponse } | undefined;
  /** The response being written, over either transport (a realtime stream bounds its buffer). */
  outgoing?: ServerResponse | undefined;
}

export function bearerOf(req: IncomingMessage): string | null {
  const header = req.headers.authorization;
  if (!header) return null;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match?.[1] ?? null;
}

export function hostOf(req: IncomingMessage): string | null {
  const host = req.headers.host?.toLowerCase().replace(/:\d+$/, '');
  return host || null;
}

/** One cookie's value from the Cookie header (the first, if a name repeats). */
export function cookieOf(req: IncomingMessage, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim() || null;
  }
  return null;
}

export function headerOf(req: IncomingMessage, name: string): string | null {
  const value = req.headers[name];
  return (Array.isArray(value) ? value[0] : value) || null;
}
