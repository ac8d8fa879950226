import type { IncomingMessage } from 'node:http';
import type { Db, TenantStore } from '@tenantry/db';
import type { DnsProvider } from '@tenantry/dns';
import type { EntitlementSource } from '@tenantry/entitlements';
import type { ProvisioningQueue, WebhookQueue } from '@tenantry/jobs';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { RateLimiterRedis } from 'rate-limiter-flexible';
import type { ApiConfig } from './config.js';
import type { ApiMetrics } from './metrics.js';
import type { DocumentsService } from './services/documents.js';

/** Long-lived things a request may use, built once at boot (see app.ts). */
export interface ApiDeps {
  config: ApiConfig;
  db: Db;
  redis: Redis;
  provisioningQueue: ProvisioningQueue;
  /** Outgoing webhook deliveries (the worker sends them). */
  webhookQueue: WebhookQueue;
  signupLimiter: RateLimiterRedis;
  loginLimiter: RateLimiterRedis;
  pricingLimiter: RateLimiterRedis;
  entitlements: EntitlementSource;
  /** Tell every api instance a tenant's billing state changed (entitlement caches). */
  onBillingChanged: (tenantId: string) => Promise<void>;
  /** SHA-256 of each key in PLATFORM_API_KEY. */
  platformKeyHashes: Buffer[];
  logger: Logger;
  metrics: ApiMetrics;
  dns: DnsProvider;
  documents: DocumentsService;
  /** Every tenant's data, routed by isolation model (schema / database). */
  tenantStore: TenantStore;
}

export interface RequestContext {
  deps: ApiDeps;
  clientIp: string;
  /** The Host the client asked for (lower-case, no port), to cross-check a tenant's own hostname. */
  host: string | null;
  /** The bearer credential of the request, if any; which kind it is is decided by the procedure. */
  bearer: string | null;
  requestId: string;
  /** Headers the procedure wants on the response (set by the ladder, applied by both adapters). */
  responseHeaders: Record<string, string>;
  /** Fields for this request's log line (the tenant, once authenticated). */
  logFields: Record<string, string>;
}

/**
 * The client's address. Behind a proxy (TRUST_PROXY=true) the left-most X-Forwarded-For
 * entry; the load balancer must overwrite, not append to, that header, or clients could
 * pick their own rate-limit key. Without TRUST_PROXY the header is ignored.
 */
export function clientIpOf(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = req.headers['x-forwarded-for'];
    const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
    if (first) return first;
  }
  return req.socket.remoteAddress ?? 'unknown';
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
