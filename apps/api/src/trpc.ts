import { type Capability, DomainError, ForbiddenError, NotFoundError, PaymentRequiredError, ValidationError, isReadOnly, tenantAccessRefusal } from '@tenantry/domain';
import { type TRPCError, type TRPCProcedureType, initTRPC } from '@trpc/server';
import type { ZodType } from 'zod';
import type { ApiDeps, RequestContext } from './context.js';
import { toTRPCError, toWireError } from './errors.js';
import { REST_PREFIX } from './http/route-table.js';
import { statusClass } from './metrics.js';
import { authenticateOperator } from './services/operator-sessions.js';
import { awaitWritesResumed } from './services/moves.js';
import { assertUnderQuota } from './services/quotas.js';

/**
 * REST exposure of a procedure: its method and path under /v1, and the status of a
 * success. http/route-table.ts reads these once; the REST adapter routes from that table
 * and the OpenAPI document describes it. Nothing else declares routes.
 */
export interface RestRoute {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: `/${string}`;
  successStatus?: number;
  /**
   * `raw`: the request body is the content itself (any media type), handed to the
   * procedure as a stream (`ctx.http`), never read as JSON; the input comes from the path
   * and the query string. Default: a JSON body on POST/PUT/PATCH.
   */
  requestBody?: 'json' | 'raw';
  /**
   * `raw`: the procedure answers a RawResponse (status, headers, a body stream) that is
   * sent as it is; `event-stream`: the procedure is a subscription, sent as Server-Sent
   * Events (each event named by its `type`, with its tracked id). Default: JSON.
   */
  response?: 'json' | 'raw' | 'event-stream';
  /** For `event-stream`: the schema of one event's data (the OpenAPI document describes it). */
  events?: ZodType;
  /**
   * The path's last parameter may hold `/` (a file key: `/files/reports/q4.pdf`), as well
   * as `%2F`. Paths are matched as sent, never normalised, so `..` reaches validation.
   */
  lastParamSpansSegments?: boolean;
  /** Other statuses the route can answer (e.g. 206, 304, 413, 416), for the OpenAPI document. */
  responses?: Readonly<Record<number, string>>;
  /** One line for the reference (OpenAPI `summary`). */
  summary: string;
  /** What it does and when to use it (OpenAPI `description`; Markdown). */
  description: string;
  /**
   * Who may call it, for the OpenAPI document (http/openapi.ts): 'tenant' and 'platform'
   * take a bearer token and can answer 401/403. Documentation only; the procedure ladder
   * enforces it. Default 'public'.
   */
  auth?: 'public' | 'tenant' | 'platform';
  /** Rate limited: can answer 429 with Retry-After. Documentation only. */
  rateLimited?: boolean;
  /**
   * Content types the route may answer with instead of JSON: when its procedure returns a
   * FileDownload (@tenantry/domain), the REST adapter sends the file's bytes with its
   * Content-Type and Content-Disposition, and the OpenAPI document lists these types as
   * the success response's other content. Over tRPC the FileDownload itself is the answer.
   */
  files?: readonly string[];
}

export interface RestMeta {
  rest?: RestRoute;
  /** A tenant procedure that needs a plan capability (403 capability_missing otherwise). */
  requires?: Capability;
  /** A tenant mutation that adds to a quota-held gauge: refused (402 quota_exceeded) once the tenant is at its limit. */
  addsTo?: 'storageBytes';
}

/**
 * What a `response: 'raw'` procedure answers: the REST adapter writes the status and
 * headers and streams the body (none for HEAD, 304 or 416).
 */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  /** A Node stream in practice; typed structurally so the SDK's types need no Node. */
  body?: (AsyncIterable<Uint8Array> & { destroy(error?: Error): unknown }) | undefined;
}

const t = initTRPC
  .context<RequestContext>()
  .meta<RestMeta>()
  .create({
    errorFormatter({ shape, error }) {
      const wire = toWireError(error);
      // Same code, message and fields as the REST body; never a stack trace.
      return {
        ...shape,
        message: wire.body.message,
        data: { ...shape.data, stack: undefined, code: wire.body.code, httpStatus: wire.status, fields: wire.body.fields, resource: wire.body.resource },
      };
    },
    // Subscriptions over /trpc (httpSubscriptionLink): a comment line every 15 s keeps
    // proxies from closing idle streams, as REALTIME_HEARTBEAT_MS does over REST.
    sse: { ping: { enabled: true, intervalMs: 15_000 }, client: { reconnectAfterInactivityMs: 40_000 } },
  });

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;

/** True if any string (or key) in `value` holds a NUL character. */
function containsNul(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (depth > 64 || value === null || typeof value !== 'object') return false;
  return Object.entries(value).some(([key, v]) => key.includes('\u0000') || containsNul(v, depth + 1));
}

/**
 * The door of every procedure, for two jobs (every procedure passes it exactly once: it is
 * publicProcedure's middleware, and the first step of tenantProcedure's):
 * - Postgres text and jsonb cannot hold NUL, and would fail the query with a 500: NUL is
 *   refused here as the bad input it is, for every procedure and every field.
 * - Domain errors, thrown by the steps `pass` runs or returned as a failed result (tRPC
 *   does not rethrow a procedure's error through `next()`), become TRPCErrors of their
 *   kind here: the single translation point.
 */
async function throughDoor<TResult extends { ok: true } | { ok: false; error: TRPCError }>(getRawInput: () => Promise<unknown>, pass: () => Promise<TResult>): Promise<TResult> {
  if (containsNul(await getRawInput())) {
    throw toTRPCError(new ValidationError([{ field: '(body)', message: 'must not contain NUL characters' }]));
  }
  let result: TResult;
  try {
    result = await pass();
  } catch (error) {
    throw error instanceof DomainError ? toTRPCError(error) : error;
  }
  if (!result.ok && result.error.cause instanceof DomainError) {
    return { ...result, error: toTRPCError(result.error.cause) } as TResult;
  }
  return result;
}

const guard = t.middleware(({ getRawInput, next }) => throughDoor(getRawInput, () => next()));

/** Anyone on the internet. */
export const publicProcedure = t.procedure.use(guard);

/**
 * Routes that exist only in hosted mode (public signup, and later billing and lifecycle).
 * Outside it they answer 404 as if they did not exist.
 */
export const hostedProcedure = publicProcedure.use(({ ctx, next }) => {
  if (!ctx.deps.config.HOSTED_MODE) throw new NotFoundError('This route', 'not_found');
  return next();
});

/** How stale the entitlements a tenant call was judged by are, in seconds (0: fresh). */
export const STALENESS_HEADER = 'tenantry-entitlements-staleness';

/** A tenant's request rate limit now, for TenantRateLimit.blockedRefusal. */
export const limitOfTenant = (deps: ApiDeps) => async (tenantId: string) => (await deps.entitlements.get(tenantId)).limits.apiRequestsPerMinute;

/**
 * Every tenant call that names its tenant counts toward that tenant's `apiRequests`,
 * refused ones included (a 429, a 402, a 403 for a missing capability), by the route
 * template, method and status class it answered with. A procedure without a REST route is
 * counted under `trpc:<path>`. (Egress is counted by the HTTP layer, which sees the bytes.)
 * A call whose credential does not resolve (401) names no tenant and is not counted.
 */
function meterTenantCall(ctx: RequestContext, meta: RestMeta | undefined, path: string, type: TRPCProcedureType, failure: unknown): void {
  const tenantId = ctx.usage.tenantId;
  if (!tenantId) return;
  const status = failure === undefined ? (meta?.rest?.successStatus ?? 200) : toWireError(failure).status;
  const route = meta?.rest ? `${REST_PREFIX}${meta.rest.path}` : `trpc:${path}`;
  const method = meta?.rest?.method ?? type.toUpperCase();
  ctx.deps.usage?.record(tenantId, 'apiRequests', 1, { route, method, statusClass: statusClass(status) });
}

/**
 * A tenant credential, resolved (401 otherwise): who calls, for which tenant. A credential
 * whose tenant is over its request rate is refused right here, before the credential query,
 * for as long as its limit window lasts: a tenant hammering past its limit costs this
 * instance next to nothing, so it cannot slow its neighbours down.
 */
async function authenticateTenantCall(ctx: RequestContext) {
  const blocked = await ctx.deps.tenantRateLimit.blockedRefusal(ctx.bearer, limitOfTenant(ctx.deps), ctx.responseHeaders);
  if (blocked) {
    ctx.usage.tenantId = blocked.tenantId;
    ctx.logFields.tenantId = blocked.tenantId;
    throw blocked.error;
  }
  const resolved = await ctx.deps.credentials.resolve(ctx.deps.db, ctx.bearer);
  ctx.logFields.tenantId = resolved.principal.tenantId;
  ctx.usage.tenantId = resolved.principal.tenantId;
  return resolved;
}

/**
 * Whether an authenticated tenant call may go ahead, judged against the tenant's state
 * and entitlements (the list at tenantProcedure); throws the refusal otherwise.
 */
async function admitTenantCall(ctx: RequestContext, type: TRPCProcedureType, meta: RestMeta | undefined) {
  const { principal, tenant: resolvedTenant } = await authenticateTenantCall(ctx);
  let tenant = resolvedTenant;
  const refusal = tenantAccessRefusal(tenant.status);
  if (refusal) throw new ForbiddenError(refusal.code, refusal.message);

  // On a tenant's own hostname (<slug>.<TENANT_DNS_ZONE>) a credential of another tenant
  // is refused, so a token leaked to or phished by one tenant's site is no key to another's.
  const zone = ctx.deps.dns.zone;
  if (zone && ctx.host?.endsWith(`.${zone}`) && ctx.host !== `${tenant.slug}.${zone}`) {
    throw new ForbiddenError('tenant_host_mismatch', "This credential belongs to another tenant than this hostname's");
  }
  const entitlements = await ctx.deps.entitlements.get(principal.tenantId);
  ctx.responseHeaders[STALENESS_HEADER] = String(Math.round(entitlements.staleSeconds));
  ctx.deps.metrics.observeStaleness(entitlements.staleSeconds);
  await ctx.deps.tenantRateLimit.consume(principal.tenantId, ctx.bearer, entitlements.limits.apiRequestsPerMinute, ctx.responseHeaders);
  if (type === 'mutation') {
    if (principal.kind === 'api_key' && principal.scope === 'read') {
      throw new ForbiddenError('scope_insufficient', 'This API key is read-only');
    }
    if (isReadOnly(entitlements.subscriptionState)) {
      throw new PaymentRequiredError(
        `subscription_${entitlements.subscriptionState}`,
        `The subscription is ${entitlements.subscriptionState}: reads still work, writes need an active subscription`,
      );
    }
  }
  const required = meta?.requires;
  if (required && !entitlements.capabilities.includes(required)) {
    throw new ForbiddenError('capability_missing', `The plan does not include "${required}"`);
  }
  if (meta?.addsTo) await assertUnderQuota(ctx.deps, principal.tenantId, meta.addsTo, entitlements.limits);
  // Last, so nothing above is held up by it: a write waits out a move's cutover and then
  // goes to wherever the tenant is now.
  if (type === 'mutation' && tenant.writes_paused_at !== null) {
    tenant = await awaitWritesResumed(ctx.deps, tenant);
    const meanwhile = tenantAccessRefusal(tenant.status);
    if (meanwhile) throw new ForbiddenError(meanwhile.code, meanwhile.message);
  }
  return { principal, entitlements, tenant };
}

/**
 * A tenant call: a session token or tenant API key, for an active tenant, judged against
 * the tenant's entitlements. Every tenant call:
 * - is refused while the tenant is suspended or pending deletion (sessions are kept, so
 *   access comes back on unsuspend or restore);
 * - is held to the tenant's request rate, across every api instance (429 with
 *   Retry-After; RateLimit-* headers on every answer);
 * - may not write (mutations) with a read-scoped API key, nor while the subscription is
 *   expired or billing-suspended (402: reads still work);
 * - needs the capability its meta `requires`, if any (403 naming it);
 * - may not add data past a quota its meta names (402 quota_exceeded; deletes are never
 *   held back, so a tenant can always get under its limit again);
 * - waits, if it writes, while a move of the tenant pauses its writes (up to
 *   MOVE_WRITE_WAIT_MS, then 503 tenant_moving with Retry-After); reads never wait;
 * - answers with how stale the entitlements were (header), so fail-open is visible;
 * - is metered, whatever it answers (meterTenantCall).
 * One middleware for all of it, the door (throughDoor) included, as plain steps rather
 * than one middleware per step: each tRPC middleware level costs about 2.4 µs of CPU per
 * call, and was 8 µs before tRPC's object-spread helper was patched
 * (`pnpm bench:trpc-middleware`, tRPC 11.25; patches/@trpc__server@11.25.2.patch),
 * against 0.5–0.7 ms of api CPU for a whole document read.
 */
export const tenantProcedure = t.procedure.use(({ ctx, next, type, meta, path, getRawInput }) =>
  throughDoor(getRawInput, async () => {
    let result;
    try {
      result = await next({ ctx: await admitTenantCall(ctx, type, meta) });
    } catch (refusal) {
      meterTenantCall(ctx, meta, path, type, refusal);
      throw refusal;
    }
    meterTenantCall(ctx, meta, path, type, result.ok ? undefined : result.error);
    return result;
  }),
);

/**
 * A platform key as bearer, or the dashboard's operator session cookie standing in for
 * the key it came from (a write then also needs the session's CSRF token).
 */
const platformAuth = t.middleware(async ({ ctx, type, next }) => next({ ctx: { principal: await authenticateOperator(ctx, type) } }));

/** An operator or billing system holding a platform API key. */
export const platformProcedure = publicProcedure.use(platformAuth);

/** Platform routes that exist only in hosted mode (lifecycle, billing state). */
export const hostedPlatformProcedure = hostedProcedure.use(platformAuth);
