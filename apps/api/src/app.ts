import { createDnsProvider } from '@tenantry/dns';
import { randomUUID } from 'node:crypto';
import { type IncomingMessage, STATUS_CODES, type Server, type ServerResponse, createServer } from 'node:http';
import { GENERATED_KEY_NOTICE, TenantChangeFeed, createDb, createIsolationRegistry, ensureDatabase, loadInstallationKey, migrateToLatest } from '@tenantry/db';
import { BadRequestError, DomainError, UnauthorizedError, UnsupportedMediaTypeError, tenantAccessRefusal } from '@tenantry/domain';
import { createFileStorage } from '@tenantry/files';
import { createFailFastRedis, createMoveQueue, createProvisioningQueue, createQueueingRedis, createWebhookQueue, redisSettingsOf } from '@tenantry/jobs';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import type { Logger } from 'pino';
import type { ApiConfig } from './config.js';
import { type ApiDeps, type RequestContext, bearerOf, cookieOf, headerOf, hostOf } from './context.js';
import { toTRPCError, toWireError } from './errors.js';
import { readBodyBytes, strictQueryPairs } from './http/body.js';
import { clientAddressOf } from './http/client-address.js';
import { DASHBOARD_PATH, createDashboardHandler } from './http/dashboard.js';
import { decodeUtf8, parseStrictJson } from './http/strict-json.js';
import { checkReadiness } from './http/health.js';
import { countBodyBytes, sendJson } from './http/respond.js';
import { createRestHandler } from './http/rest.js';
import { createStripeWebhookHandler } from './http/stripe-webhook.js';
import { createLogger, listenOn, serveMetrics } from '@tenantry/observability';
import { createApiMetrics, statusClass } from './metrics.js';
import { appOpenApiDocument, appRouter } from './routers/index.js';
import { CredentialCache } from './services/credential-cache.js';
import { DocumentsService } from './services/documents.js';
import { FilesService } from './services/files.js';
import { RealtimeHub } from './realtime/hub.js';
import { authenticateTenant } from './services/tenant-auth.js';
import { MovingAwareStore } from './services/moves.js';
import { createEntitlements } from './services/entitlements.js';
import { CSRF_HEADER, OPERATOR_COOKIE } from './services/operator-sessions.js';
import { type PlatformKeySource, StoredPlatformKeys, configuredKeyHashes, ensurePlatformKey } from './services/platform-keys.js';
import { StorageSamples, TenantRateLimit } from './services/quotas.js';
import { createLoginLimiters, createPricingLimiter, createSignupLimiter } from './services/rate-limit.js';
import { UsageMeter } from './usage/meter.js';
import { withTimeout } from './timeout.js';
import { createCallerFactory, limitOfTenant } from './trpc.js';

const STRIPE_WEBHOOK_PATH = '/v1/billing/stripe/webhook';
const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);

/** On shutdown: how long open connections may still deliver the request they were sending. */
const IDLE_CONNECTION_GRACE_MS = 500;

/** How long boot waits for the first Redis connection. */
const REDIS_BOOT_WAIT_MS = 3_000;

/** Largest JSON body accepted on any route. */
const MAX_BODY_BYTES = 1024 * 1024;

/** Most procedure calls one tRPC batch request may carry (docs/api.md). */
export const MAX_TRPC_BATCH = 10;

/**
 * Hold a tRPC request to the same input rules as REST before tRPC sees it: a batch of at
 * most MAX_TRPC_BATCH calls (each call still meets every limiter on its own), strict
 * percent-encoding, and JSON parsed strictly (strict-json.ts). The checked body is handed
 * to tRPC as text (`req.body`), so tRPC parses exactly what was checked.
 */
async function admitTrpcRequest(req: IncomingMessage, url: URL): Promise<void> {
  if (url.searchParams.get('batch') === '1') {
    const calls = url.pathname.slice('/trpc/'.length).split(',').length;
    if (calls > MAX_TRPC_BATCH) throw new BadRequestError('batch_too_large', `A tRPC batch may hold at most ${MAX_TRPC_BATCH} calls; this one holds ${calls}`);
  }
  const query = new Map(strictQueryPairs(url.search));
  if (req.method === 'GET' || req.method === 'HEAD') {
    const input = query.get('input');
    if (input) parseStrictJson(input);
    return;
  }
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
    throw new UnsupportedMediaTypeError('The body must be JSON (Content-Type: application/json)');
  }
  const text = decodeUtf8(await readBodyBytes(req, MAX_BODY_BYTES));
  if (text !== '') parseStrictJson(text);
  (req as IncomingMessage & { body?: string }).body = text;
}

export interface ApiInstance {
  server: Server;
  deps: ApiDeps;
  /** Where this api's platform keys come from (said in the start-up line). */
  platformKeySource: PlatformKeySource;
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

  const platformKeySource = await ensurePlatformKey(
    db,
    configuredKeyHashes(config.PLATFORM_API_KEY),
    logger,
    options.printSecret ?? ((line) => process.stdout.write(`${line}\n`)),
  );

  const metrics = createApiMetrics();
  const redisSettings = redisSettingsOf(config);
  const redis = createFailFastRedis(redisSettings, 'tenantry-api');
  const producerRedis = createQueueingRedis(redisSettings, 'tenantry-api-producer');
  const entitlements = await createEntitlements(config, db, redis, logger).catch(async (err: unknown) => {
    // A bad license stops the boot: release what is already open, then report it.
    redis.disconnect();
    producerRedis.disconnect();
    await db.destroy();
    throw err;
  });
  // Tenant data, through the tenant's isolation driver: schema tenants in the shared
  // database; database and cluster tenants through a bounded LRU of per-tenant pools,
  // their credentials opened with the installation key.
  const secretKey = await loadInstallationKey({
    configured: config.TENANT_SECRET_KEY,
    dataDir: config.TENANTRY_DATA_DIR,
    onGenerated: (file) => logger.warn({ file }, GENERATED_KEY_NOTICE),
  });
  const isolation = createIsolationRegistry(db, {
    controlPlaneUrl: config.DATABASE_URL,
    secretKey,
    database: { servers: config.TENANT_DB_SERVERS },
    cluster: { driver: config.TENANT_CLUSTER_DRIVER },
    pools: { maxPools: config.TENANT_POOL_MAX, connectionsPerPool: config.TENANT_POOL_SIZE, applicationName: 'tenantry-api-tenant' },
    warn: (message, fields) => logger.warn(fields ?? {}, message),
  });
  const tenantStore = new MovingAwareStore(isolation, db);
  const fileStorage = createFileStorage(config);
  const realtime = new RealtimeHub({
    redis: redisSettings,
    windowMs: config.REALTIME_WINDOW_MS,
    slotTtlMs: config.REALTIME_SLOT_TTL_MS,
    maxBufferBytes: config.REALTIME_MAX_BUFFER_BYTES,
    recheckMs: config.REALTIME_RECHECK_MS,
    logger,
    metrics,
  });
  // Postgres announces every change to what a credential resolves to; the cache listens.
  const credentials = new CredentialCache(
    { get listening() { return tenantChanges.listening; } },
    { ttlMs: config.CREDENTIAL_CACHE_TTL_MS, maxEntries: config.CREDENTIAL_CACHE_MAX_ENTRIES, onLookup: (result) => metrics.credentialLookups.inc({ result }) },
  );
  const platformKeys = new StoredPlatformKeys(db, { get listening() { return tenantChanges.listening; } }, config.CREDENTIAL_CACHE_TTL_MS, (result) =>
    metrics.platformKeyLookups.inc({ result }),
  );
  const storageSamples = new StorageSamples(db);
  const tenantChanges = new TenantChangeFeed({
    connectionString: config.DATABASE_URL,
    applicationName: 'tenantry-api-changes',
    onChange: (tenantId) => {
      credentials.invalidateTenant(tenantId);
      // Its open streams too, whoever made the change (the api, the worker, an operator's SQL).
      void realtime.recheck(tenantId);
    },
    // A storage sample on the other side of the tenant's limit: the next write reads it.
    onStorageCrossed: (tenantId) => storageSamples.forget(tenantId),
    onPlatformKeysChanged: () => platformKeys.invalidate(),
    onReset: () => {
      credentials.clear();
      platformKeys.invalidate();
    },
    onError: (message) => logger.warn(message),
  });
  await tenantChanges.start();
  const deps: ApiDeps = {
    config,
    secretKey,
    credentials,
    openApiDocument: appOpenApiDocument() as unknown as Record<string, unknown>,
    db,
    redis,
    provisioningQueue: createProvisioningQueue(producerRedis, redisSettings),
    webhookQueue: createWebhookQueue(producerRedis, redisSettings),
    moveQueue: createMoveQueue(producerRedis, redisSettings),
    signupLimiter: createSignupLimiter(redis, config.REDIS_PREFIX, config.SIGNUP_RATE_LIMIT_PER_HOUR),
    loginLimiters: createLoginLimiters(redis, config.REDIS_PREFIX, config.LOGIN_ATTEMPTS_PER_ADDRESS),
    tenantRateLimit: new TenantRateLimit(redis, config.REDIS_PREFIX, metrics, config.RATE_LIMIT_LEASE_SHARE),
    storageSamples,
    usage: config.USAGE_METERING
      ? new UsageMeter({ databaseUrl: config.DATABASE_URL, flushIntervalMs: config.USAGE_FLUSH_INTERVAL_MS, flushTimeoutMs: config.USAGE_FLUSH_TIMEOUT_MS, logger, metrics })
      : undefined,
    pricingLimiter: createPricingLimiter(redis, config.REDIS_PREFIX, config.PRICING_RATE_LIMIT_PER_MINUTE),
    metrics,
    dns: createDnsProvider(config),
    documents: new DocumentsService(tenantStore, config.DOCUMENT_MAX_BYTES, realtime),
    files: new FilesService(db, fileStorage, config.FILE_UPLOAD_RESERVATION_TTL_MS, metrics, logger),
    realtime,
    tenantStore,
    isolation,
    platformKeyHashes: configuredKeyHashes(config.PLATFORM_API_KEY),
    platformKeys,
    entitlements: entitlements.source,
    onBillingChanged: async (tenantId) => {
      await entitlements.invalidate(tenantId);
      // A plan without realtime any more closes its streams too (after the caches heard of it).
      setTimeout(() => void realtime.requestRecheck(tenantId), 200).unref();
    },
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
  // Realtime's own connection too, when Redis is there at all: a write before it is up would cost its tenant's streams a reset.
  if (redis.status === 'ready') await realtime.ready(REDIS_BOOT_WAIT_MS);
  deps.provisioningQueue.on('error', (err) => logger.warn({ err: err.message }, 'provisioning queue error'));
  deps.usage?.start();
  // An open stream is checked again when its tenant or credential changes (and on a timer):
  // the credential still resolves to the tenant, which may still be served, with realtime.
  realtime.start(async (tenantId, bearer) => {
    try {
      const { principal, tenant } = await authenticateTenant(db, bearer);
      if (principal.tenantId !== tenantId || tenantAccessRefusal(tenant.status)) return false;
      return (await entitlements.source.get(tenantId)).capabilities.includes('realtime');
    } catch (err) {
      if (err instanceof UnauthorizedError) return false;
      throw err;
    }
  });
  deps.webhookQueue.on('error', (err) => logger.warn({ err: err.message }, 'webhook queue error'));
  deps.moveQueue.on('error', (err) => logger.warn({ err: err.message }, 'move queue error'));

  // Per request: the id (echoed as x-request-id), headers procedures add, fields for the log line.
  const requestState = new WeakMap<
    IncomingMessage,
    {
      requestId: string;
      responseHeaders: Record<string, string>;
      responseStatus: { value: number | undefined };
      logFields: Record<string, string>;
      usage: { tenantId: string | undefined };
      inputError?: DomainError;
    }
  >();
  const stateOf = (req: IncomingMessage) => {
    let state = requestState.get(req);
    if (!state) {
      const given = req.headers['x-request-id'];
      // Accept a caller's id only if it is short and plain; it ends up in logs.
      const requestId = typeof given === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(given) ? given : randomUUID();
      state = { requestId, responseHeaders: {}, responseStatus: { value: undefined }, logFields: {}, usage: { tenantId: undefined } };
      requestState.set(req, state);
    }
    return state;
  };
  const contextOf = (req: IncomingMessage): RequestContext => {
    const state = stateOf(req);
    return {
      deps,
      // Worked out only by the routes that limit per address (login, signup, pricing).
      clientIp: () => clientAddressOf(req, config.TRUST_PROXY),
      bearer: bearerOf(req),
      operatorToken: cookieOf(req, OPERATOR_COOKIE),
      csrfToken: headerOf(req, CSRF_HEADER),
      host: hostOf(req),
      requestId: state.requestId,
      responseHeaders: state.responseHeaders,
      logFields: state.logFields,
      usage: state.usage,
      responseStatus: state.responseStatus,
    };
  };

  const callerFactory = createCallerFactory(appRouter);
  const handleRest = createRestHandler({
    router: appRouter,
    prefix: '/v1',
    maxBodyBytes: MAX_BODY_BYTES,
    createCaller: async (req, res, signal) => callerFactory({ ...contextOf(req), http: { req, res }, outgoing: res }, { signal }) as unknown as Record<string, unknown>,
    responseHeaders: (req) => stateOf(req).responseHeaders,
    responseStatus: (req) => stateOf(req).responseStatus.value,
    heartbeatMs: config.REALTIME_HEARTBEAT_MS,
    onServerError: (err, path) => logger.error({ err, path }, 'request failed'),
    // What the tenant ladder's first step would do for a credential over its rate limit
    // (trpc.ts, authenticateTenantCall), metered the same way (meterTenantCall).
    refuseEarly: async (req, route) => {
      if (route.rest.auth !== 'tenant') return undefined;
      const state = stateOf(req);
      const blocked = await deps.tenantRateLimit.blockedRefusal(bearerOf(req), limitOfTenant(deps), state.responseHeaders);
      if (!blocked) return undefined;
      state.usage.tenantId = blocked.tenantId;
      state.logFields.tenantId = blocked.tenantId;
      deps.usage?.record(blocked.tenantId, 'apiRequests', 1, { route: route.template, method: route.rest.method, statusClass: statusClass(429) });
      return blocked.error;
    },
  });
  const handleTrpc = createHTTPHandler({
    router: appRouter,
    basePath: '/trpc/',
    maxBodySize: MAX_BODY_BYTES,
    // A request admitTrpcRequest refused is answered here, in tRPC's own (batch) shape.
    createContext: ({ req, res }) => {
      const refused = stateOf(req).inputError;
      if (refused) throw toTRPCError(refused);
      return { ...contextOf(req), outgoing: res };
    },
    onError: ({ error, path }) => {
      if (toWireError(error).status >= 500) logger.error({ err: error, path }, 'request failed');
    },
    responseMeta: ({ ctx, errors }) => {
      // Like REST: answers are per caller (the dashboard reads tenants and its CSRF token
      // over GET), so no browser or proxy cache may keep them.
      const headers = { 'cache-control': 'no-store', ...ctx?.responseHeaders, ...(errors[0] ? toWireError(errors[0]).headers : {}) };
      return { headers };
    },
  });

  // Mounted only with a signing secret; without one the path falls through to REST's 404.
  // Outside tRPC on purpose: the signature covers the raw body, which must not be re-encoded.
  const handleStripeWebhook = config.STRIPE_WEBHOOK_SECRET
    ? createStripeWebhookHandler({ db, webhookSecret: config.STRIPE_WEBHOOK_SECRET, logger, onBillingChanged: deps.onBillingChanged })
    : undefined;

  const handleDashboard = createDashboardHandler(config.DASHBOARD_DIR);

  let draining = false;
  /** The response our handler is writing on a socket (see the clientError handler). */
  const inFlight = new WeakMap<object, ServerResponse>();
  // Timeouts are checked every second (Node's default is every 30 s, far coarser than them).
  const server = createServer({ connectionsCheckingInterval: 1_000 }, async (req, res) => {
    const started = performance.now();
    inFlight.set(req.socket, res);
    const sent = countBodyBytes(res);
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
        await admitTrpcRequest(req, url).catch((err: unknown) => {
          if (!(err instanceof DomainError)) throw err;
          state.inputError = err;
          // tRPC must not read what is left of a refused body; the connection closes after the answer.
          (req as IncomingMessage & { body?: string }).body = '';
          res.setHeader('connection', 'close');
        });
        // A body that stalled was already answered (408) by the clientError handler.
        if (!res.headersSent) {
          handleTrpc(req, res);
          await new Promise((resolve) => res.once('close', resolve));
        }
      } else if (handleStripeWebhook && url.pathname === STRIPE_WEBHOOK_PATH) {
        route = STRIPE_WEBHOOK_PATH;
        await handleStripeWebhook(req, res);
      } else if (url.pathname === DASHBOARD_PATH || url.pathname.startsWith(`${DASHBOARD_PATH}/`)) {
        route = DASHBOARD_PATH;
        handleDashboard(req, res, url);
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
      inFlight.delete(req.socket);
      // egressBytes: the body bytes sent to a tenant on its authenticated calls.
      if (state.usage.tenantId) deps.usage?.record(state.usage.tenantId, 'egressBytes', sent.bytes);
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
  server.requestTimeout = config.REQUEST_TIMEOUT_MS;
  server.headersTimeout = Math.min(10_000, config.REQUEST_TIMEOUT_MS);

  // Requests Node refuses before our handler runs (headers too large, malformed, too slow)
  // still get a JSON body with a code, and are logged and counted as the 4xx they are.
  // A request our handler already took (its body stalled) is answered and counted there.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, code, message] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'headers_too_large', 'The request headers are too large']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'request_timeout', 'The request did not arrive in time']
          : [400, 'bad_request', 'The request is not valid HTTP'];
    const res = inFlight.get(socket);
    if (res) {
      // Our handler is still waiting for this request's body: answer through it (it logs
      // and counts the request when its body read fails), then drop the connection.
      if (!res.headersSent) sendJson(res, status, { code, message }, { connection: 'close' });
      res.once('finish', () => socket.destroy());
      return;
    }
    const body = JSON.stringify({ code, message });
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    metrics.httpDuration.observe({ route: 'unmatched', method: 'OTHER', status_class: statusClass(status) }, 0);
    logger.info({ status, code, err: err.code }, 'request refused before routing');
  });

  let metricsServer: Awaited<ReturnType<typeof serveMetrics>> | undefined;
  return {
    server,
    deps,
    platformKeySource,
    listen: async () => {
      const port = await listenOn(server, config.PORT, config.HOST, 'PORT');
      metricsServer = await serveMetrics(metrics.registry, config.API_METRICS_PORT, config.HOST, 'API_METRICS_PORT').catch((err: unknown) => {
        server.close();
        throw err;
      });
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
      // Open streams never finish by themselves: end them (clients reconnect elsewhere and resume).
      await realtime.close();
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
      await withTimeout(Promise.all([deps.provisioningQueue.close(), deps.webhookQueue.close(), deps.moveQueue.close()]), 2_000).catch(() => undefined);
      await entitlements.close();
      await tenantChanges.close();
      // Every request is answered by now: the counts are final; write them before exiting.
      await deps.usage?.close(config.SHUTDOWN_TIMEOUT_MS);
      redis.disconnect();
      producerRedis.disconnect();
      await isolation.close();
      await fileStorage.close();
      await db.destroy();
    },
  };
}
