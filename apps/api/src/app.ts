import { createDnsProvider } from '@tenantry/dns';
import { randomUUID } from 'node:crypto';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  createDb,
  createTenantStores,
  ensureDatabase,
  migrateToLatest,
  parseSecretKey,
  tenantDbServers,
} from '@tenantry/db';
import { createFailFastRedis, createProducerRedis, createProvisioningQueue, createWebhookQueue } from '@tenantry/jobs';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import type { Logger } from 'pino';
import type { ApiConfig } from './config.js';
import { type ApiDeps, type RequestContext, bearerOf, clientIpOf, hostOf } from './context.js';
import { toWireError } from './errors.js';
import { checkReadiness } from './http/health.js';
import { sendJson } from './http/respond.js';
import { createRestHandler } from './http/rest.js';
import { createStripeWebhookHandler } from './http/stripe-webhook.js';
import { createLogger, serveMetrics } from '@tenantry/observability';
import { createApiMetrics, statusClass } from './metrics.js';
import { appRouter } from './routers/index.js';
import { DocumentsService } from './services/documents.js';
import { createEntitlements } from './services/entitlements.js';
import { createLoginLimiter, createPricingLimiter, createSignupLimiter } from './services/rate-limit.js';
import { configuredKeyHashes, ensurePlatformKey } from './services/platform-keys.js';
import { withTimeout } from './timeout.js';
import { createCallerFactory } from './trpc.js';

const STRIPE_WEBHOOK_PATH = '/v1/billing/stripe/webhook';
const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);

/** On shutdown: how long open connections may still deliver the request they were sending. */
const IDLE_CONNECTION_GRACE_MS = 500;

/** How long boot waits for the first Redis connection. */
const REDIS_BOOT_WAIT_MS = 3_000;

/** Largest JSON body accepted on any route. */
const MAX_BODY_BYTES = 1024 * 1024;

export interface ApiInstance {
  server: Server;
  deps: ApiDeps;
  /** Start listening (api and metrics); resolves with the bound ports (0 picks a free one). */
  listen(): Promise<{ port: number; metricsPort: number }>;
  /** Graceful stop: refuse new connections, let in-flight requests finish (bounded), close pools. */
  close(): Promise<void>;
}

/**
 * Build the api: migrate, connect, and wire HTTP. Used by main.ts and by the tests, which
 * run real instances in-process (several at once, sharing one Redis, where they need to).
 */
export interface ApiOptions {
  logger?: Logger;
  /** Where a generated platform key is shown, once (default: stdout, outside the JSON logs). */
  printSecret?: (line: string) => void;
}

export async function createApi(config: ApiConfig, options: ApiOptions = {}): Promise<ApiInstance> {
  const logger = options.logger ?? createLogger(config.LOG_LEVEL, 'tenantry-api');

  await ensureDatabase(config.DATABASE_URL);
  const db = createDb(config.DATABASE_URL, { maxConnections: config.DB_POOL_SIZE, applicationName: 'tenantry-api', onError: (message) => logger.warn(message) });
  await migrateToLatest(db);

  await ensurePlatformKey(db, configuredKeyHashes(config.PLATFORM_API_KEY), logger, options.printSecret ?? ((line) => process.stdout.write(`${line}\n`)));

  const metrics = createApiMetrics();
  const redis = createFailFastRedis(config.REDIS_URL, 'tenantry-api');
  const producerRedis = createProducerRedis(config.REDIS_URL, 'tenantry-api-producer');
  const entitlements = await createEntitlements(config, db, redis, logger).catch(async (err: unknown) => {
    // A bad license stops the boot: release what is already open, then report it.
    redis.disconnect();
    producerRedis.disconnect();
    await db.destroy();
    throw err;
  });
  // Tenant data: schema tenants in the shared database; database tenants (only with a
  // TENANT_SECRET_KEY to open their credentials) through a bounded LRU of per-tenant pools.
  const tenantStores = createTenantStores(db, {
    servers: tenantDbServers(config.TENANT_DB_SERVERS, config.DATABASE_URL),
    secretKey: config.TENANT_SECRET_KEY ? parseSecretKey(config.TENANT_SECRET_KEY) : undefined,
    maxPools: config.TENANT_POOL_MAX,
    connectionsPerPool: config.TENANT_POOL_SIZE,
    applicationName: 'tenantry-api-tenant',
    onError: (message) => logger.warn(message),
  });
  const tenantStore = tenantStores.store;
  const deps: ApiDeps = {
    config,
    db,
    redis,
    provisioningQueue: createProvisioningQueue(producerRedis, config.REDIS_PREFIX),
    webhookQueue: createWebhookQueue(producerRedis, config.REDIS_PREFIX),
    signupLimiter: createSignupLimiter(redis, config.REDIS_PREFIX, config.SIGNUP_RATE_LIMIT_PER_HOUR),
    loginLimiter: createLoginLimiter(redis, config.REDIS_PREFIX),
    pricingLimiter: createPricingLimiter(redis, config.REDIS_PREFIX, config.PRICING_RATE_LIMIT_PER_MINUTE),
    metrics,
    dns: createDnsProvider(config),
    documents: new DocumentsService(tenantStore, config.DOCUMENT_MAX_BYTES),
    tenantStore,
    platformKeyHashes: configuredKeyHashes(config.PLATFORM_API_KEY),
    entitlements: entitlements.source,
    onBillingChanged: (tenantId) => entitlements.invalidate(tenantId),
    logger,
  };
  // Give Redis a moment to connect so the first requests are not refused; if it is down at
  // boot the api starts anyway, answers 503 on routes that need Redis, and /readyz says why.
  await new Promise<void>((resolve) => {
    if (redis.status === 'ready') return resolve();
    const timer = setTimeout(() => {
      logger.warn('redis not reachable at boot; starting without it');
      resolve();
    }, REDIS_BOOT_WAIT_MS);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  deps.provisioningQueue.on('error', (err) => logger.warn({ err: err.message }, 'provisioning queue error'));
  deps.webhookQueue.on('error', (err) => logger.warn({ err: err.message }, 'webhook queue error'));

  // Per request: the id (echoed as x-request-id), headers procedures add, fields for the log line.
  const requestState = new WeakMap<IncomingMessage, { requestId: string; responseHeaders: Record<string, string>; logFields: Record<string, string> }>();
  const stateOf = (req: IncomingMessage) => {
    let state = requestState.get(req);
    if (!state) {
      const given = req.headers['x-request-id'];
      // Accept a caller's id only if it is short and plain; it ends up in logs.
      const requestId = typeof given === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(given) ? given : randomUUID();
      state = { requestId, responseHeaders: {}, logFields: {} };
      requestState.set(req, state);
    }
    return state;
  };
  const contextOf = (req: IncomingMessage): RequestContext => {
    const state = stateOf(req);
    return {
      deps,
      clientIp: clientIpOf(req, config.TRUST_PROXY),
      bearer: bearerOf(req),
      host: hostOf(req),
      requestId: state.requestId,
      responseHeaders: state.responseHeaders,
      logFields: state.logFields,
    };
  };

  const callerFactory = createCallerFactory(appRouter);
  const handleRest = createRestHandler({
    router: appRouter,
    prefix: '/v1',
    maxBodyBytes: MAX_BODY_BYTES,
    createCaller: async (req) => callerFactory(contextOf(req)) as unknown as Record<string, unknown>,
    responseHeaders: (req) => stateOf(req).responseHeaders,
    onServerError: (err, path) => logger.error({ err, path }, 'request failed'),
  });
  const handleTrpc = createHTTPHandler({
    router: appRouter,
    basePath: '/trpc/',
    maxBodySize: MAX_BODY_BYTES,
    createContext: ({ req }) => contextOf(req),
    onError: ({ error, path }) => {
      if (toWireError(error).status >= 500) logger.error({ err: error, path }, 'request failed');
    },
    responseMeta: ({ ctx, errors }) => {
      const headers = { ...ctx?.responseHeaders, ...(errors[0] ? toWireError(errors[0]).headers : {}) };
      return { headers };
    },
  });

  // Mounted only with a signing secret; without one the path falls through to REST's 404.
  // Outside tRPC on purpose: the signature covers the raw body, which must not be re-encoded.
  const handleStripeWebhook = config.STRIPE_WEBHOOK_SECRET
    ? createStripeWebhookHandler({ db, webhookSecret: config.STRIPE_WEBHOOK_SECRET, logger, onBillingChanged: deps.onBillingChanged })
    : undefined;

  let draining = false;
  const server = createServer(async (req, res) => {
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'http://localhost');
    const state = stateOf(req);
    res.setHeader('x-request-id', state.requestId);
    if (draining) res.setHeader('connection', 'close');
    let route: string | undefined = url.pathname;
    try {
      if (url.pathname === '/healthz') {
        sendJson(res, 200, { status: 'ok' });
      } else if (url.pathname === '/readyz' && draining) {
        sendJson(res, 503, { status: 'draining' });
      } else if (url.pathname === '/readyz') {
        const readiness = await checkReadiness(db, redis);
        sendJson(res, readiness.ready ? 200 : 503, { status: readiness.ready ? 'ready' : 'not_ready', checks: readiness.checks });
      } else if (url.pathname.startsWith('/trpc/')) {
        route = '/trpc';
        handleTrpc(req, res);
        await new Promise((resolve) => res.once('close', resolve));
      } else if (handleStripeWebhook && url.pathname === STRIPE_WEBHOOK_PATH) {
        route = STRIPE_WEBHOOK_PATH;
        await handleStripeWebhook(req, res);
      } else if (url.pathname === '/v1' || url.pathname.startsWith('/v1/')) {
        route = await handleRest(req, res, url);
      } else {
        route = undefined;
        sendJson(res, 404, { code: 'not_found', message: 'No such route' });
      }
    } catch (err) {
      const wire = toWireError(err);
      if (wire.status >= 500) logger.error({ err }, 'unhandled error in request');
      if (!res.headersSent) sendJson(res, wire.status, wire.body, wire.headers);
    } finally {
      const seconds = (performance.now() - started) / 1000;
      // route is a template (or 'unmatched'), never the raw path: bounded label values.
      metrics.httpDuration.observe({ route: route ?? 'unmatched', method: METHODS.has(req.method ?? '') ? req.method! : 'OTHER', status_class: statusClass(res.statusCode) }, seconds);
      logger.info(
        { requestId: state.requestId, method: req.method, route: route ?? 'unmatched', status: res.statusCode, ms: Math.round(seconds * 1000), ...state.logFields },
        'request',
      );
    }
  });
  // Slow-loris guard: a client must send its headers and body promptly.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

  let metricsServer: Awaited<ReturnType<typeof serveMetrics>> | undefined;
  return {
    server,
    deps,
    listen: async () => {
      const port = await new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.PORT, config.HOST, () => resolve((server.address() as AddressInfo).port));
      });
      metricsServer = await serveMetrics(metrics.registry, config.METRICS_PORT, config.HOST);
      return { port, metricsPort: metricsServer.port };
    },
    close: async () => {
      // Drain. First answer /readyz 503 while still serving, for SHUTDOWN_DRAIN_DELAY_MS, so
      // the load balancer stops sending before the listener closes (closing it at once
      // resets connections the kernel accepted but Node had not yet). Then stop accepting
      // and close each connection after its response; connections still sending their
      // request get a short grace.
      draining = true;
      await new Promise((resolve) => setTimeout(resolve, config.SHUTDOWN_DRAIN_DELAY_MS).unref());
      metricsServer?.server.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const deadline = new Promise<void>((resolve) => setTimeout(resolve, config.SHUTDOWN_TIMEOUT_MS).unref());
      await Promise.race([closed, deadline, new Promise((resolve) => setTimeout(resolve, IDLE_CONNECTION_GRACE_MS).unref())]);
      const sweeper = setInterval(() => server.closeIdleConnections(), 100);
      server.closeIdleConnections();
      await Promise.race([closed, deadline]);
      clearInterval(sweeper);
      server.closeAllConnections();
      // Bounded: with Redis down, BullMQ's close would wait for it forever.
      await withTimeout(Promise.all([deps.provisioningQueue.close(), deps.webhookQueue.close()]), 2_000).catch(() => undefined);
      await entitlements.close();
      redis.disconnect();
      producerRedis.disconnect();
      await tenantStores.close();
      await db.destroy();
    },
  };
}
