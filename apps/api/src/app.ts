import { randomUUID } from 'node:crypto';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDb, ensureDatabase, migrateToLatest } from '@tenantry/db';
import { createFailFastRedis, createProducerRedis, createProvisioningQueue } from '@tenantry/jobs';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import type { Logger } from 'pino';
import type { ApiConfig } from './config.js';
import { type ApiDeps, type RequestContext, bearerOf, clientIpOf } from './context.js';
import { toWireError } from './errors.js';
import { checkReadiness } from './http/health.js';
import { sendJson } from './http/respond.js';
import { createRestHandler } from './http/rest.js';
import { createStripeWebhookHandler } from './http/stripe-webhook.js';
import { createLogger } from './logger.js';
import { appRouter } from './routers/index.js';
import { createEntitlements } from './services/entitlements.js';
import { createLoginLimiter, createSignupLimiter } from './services/rate-limit.js';
import { configuredKeyHashes, ensurePlatformKey } from './services/platform-keys.js';
import { withTimeout } from './timeout.js';
import { createCallerFactory } from './trpc.js';

const STRIPE_WEBHOOK_PATH = '/v1/billing/stripe/webhook';

/** How long boot waits for the first Redis connection. */
const REDIS_BOOT_WAIT_MS = 3_000;

/** Largest JSON body accepted on any route. */
const MAX_BODY_BYTES = 1024 * 1024;

export interface ApiInstance {
  server: Server;
  deps: ApiDeps;
  /** Start listening; resolves with the bound port (PORT=0 picks a free one). */
  listen(): Promise<number>;
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
  const db = createDb(config.DATABASE_URL, { maxConnections: config.DB_POOL_SIZE, applicationName: 'tenantry-api' });
  await migrateToLatest(db);

  await ensurePlatformKey(db, configuredKeyHashes(config.PLATFORM_API_KEY), logger, options.printSecret ?? ((line) => process.stdout.write(`${line}\n`)));

  const redis = createFailFastRedis(config.REDIS_URL, 'tenantry-api');
  const producerRedis = createProducerRedis(config.REDIS_URL, 'tenantry-api-producer');
  const entitlements = await createEntitlements(config, db, redis, logger).catch(async (err: unknown) => {
    // A bad license stops the boot: release what is already open, then report it.
    redis.disconnect();
    producerRedis.disconnect();
    await db.destroy();
    throw err;
  });
  const deps: ApiDeps = {
    config,
    db,
    redis,
    provisioningQueue: createProvisioningQueue(producerRedis, config.REDIS_PREFIX),
    signupLimiter: createSignupLimiter(redis, config.REDIS_PREFIX, config.SIGNUP_RATE_LIMIT_PER_HOUR),
    loginLimiter: createLoginLimiter(redis, config.REDIS_PREFIX),
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

  const contextOf = (req: IncomingMessage, responseHeaders: Record<string, string> = {}): RequestContext => ({
    deps,
    clientIp: clientIpOf(req, config.TRUST_PROXY),
    bearer: bearerOf(req),
    requestId: String(req.headers['x-request-id'] ?? randomUUID()),
    responseHeaders,
  });

  const callerFactory = createCallerFactory(appRouter);
  const handleRest = createRestHandler({
    router: appRouter,
    prefix: '/v1',
    maxBodyBytes: MAX_BODY_BYTES,
    createCaller: async (req, responseHeaders) => callerFactory(contextOf(req, responseHeaders)) as unknown as Record<string, unknown>,
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

  const server = createServer(async (req, res) => {
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'http://localhost');
    let route: string | undefined = url.pathname;
    try {
      if (url.pathname === '/healthz') {
        sendJson(res, 200, { status: 'ok' });
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
      logger.error({ err }, 'unhandled error in request');
      if (!res.headersSent) sendJson(res, 500, { code: 'internal_error', message: 'Internal server error' });
    } finally {
      logger.info(
        { method: req.method, route: route ?? 'unmatched', status: res.statusCode, ms: Math.round(performance.now() - started) },
        'request',
      );
    }
  });
  // Slow-loris guard: a client must send its headers and body promptly.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

  return {
    server,
    deps,
    listen: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.PORT, config.HOST, () => resolve((server.address() as AddressInfo).port));
      }),
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const deadline = new Promise<void>((resolve) => setTimeout(resolve, config.SHUTDOWN_TIMEOUT_MS).unref());
      await Promise.race([closed, deadline]);
      server.closeAllConnections();
      // Bounded: with Redis down, BullMQ's close would wait for it forever.
      await withTimeout(deps.provisioningQueue.close(), 2_000).catch(() => undefined);
      await entitlements.close();
      redis.disconnect();
      producerRedis.disconnect();
      await db.destroy();
    },
  };
}
