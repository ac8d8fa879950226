import { type Capability, DomainError, ForbiddenError, NotFoundError, PaymentRequiredError, ValidationError, isReadOnly, tenantAccessRefusal } from '@tenantry/domain';
import { initTRPC } from '@trpc/server';
import type { RequestContext } from './context.js';
import { toTRPCError, toWireError } from './errors.js';
import { authenticateOperator } from './services/operator-sessions.js';
import { authenticateTenant } from './services/tenant-auth.js';

/**
 * REST exposure of a procedure: its method and path under /v1, and the status of a
 * success. The REST adapter (http/rest.ts) routes from this; nothing else declares routes.
 */
export interface RestMeta {
  rest?: {
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
    path: `/${string}`;
    successStatus?: number;
    /**
     * Who may call it, for the OpenAPI document (http/openapi.ts): 'tenant' and 'platform'
     * take a bearer token and can answer 401/403. Documentation only; the procedure ladder
     * enforces it. Default 'public'.
     */
    auth?: 'public' | 'tenant' | 'platform';
    /** Rate limited: can answer 429 with Retry-After. Documentation only. */
    rateLimited?: boolean;
  };
  /** A tenant procedure that needs a plan capability (403 capability_missing otherwise). */
  requires?: Capability;
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
        data: { ...shape.data, stack: undefined, code: wire.body.code, httpStatus: wire.status, fields: wire.body.fields },
      };
    },
  });

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;

/**
 * Domain errors thrown by a procedure reach middlewares as a failed result (tRPC does not
 * rethrow through `next()`), so this maps them on the result: the single translation point.
 */
const mapDomainErrors = t.middleware(async ({ next }) => {
  const result = await next();
  if (!result.ok && result.error.cause instanceof DomainError) {
    return { ...result, error: toTRPCError(result.error.cause) };
  }
  return result;
});

/** True if any string (or key) in `value` holds a NUL character. */
function containsNul(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (depth > 64 || value === null || typeof value !== 'object') return false;
  return Object.entries(value).some(([key, v]) => key.includes('\u0000') || containsNul(v, depth + 1));
}

/**
 * Postgres text and jsonb cannot hold NUL, and would fail the query with a 500: refuse it
 * at the door as the bad input it is, for every procedure and every field.
 */
const rejectNul = t.middleware(async ({ getRawInput, next }) => {
  if (containsNul(await getRawInput())) {
    throw new ValidationError([{ field: '(body)', message: 'must not contain NUL characters' }]);
  }
  return next();
});

/** Anyone on the internet. */
export const publicProcedure = t.procedure.use(mapDomainErrors).use(rejectNul);

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

/**
 * A tenant call: a session token or tenant API key, for an active tenant, judged against
 * the tenant's entitlements. Every tenant call:
 * - is refused while the tenant is suspended or pending deletion (sessions are kept, so
 *   access comes back on unsuspend or restore);
 * - may not write (mutations) with a read-scoped API key, nor while the subscription is
 *   expired or billing-suspended (402: reads still work);
 * - needs the capability its meta `requires`, if any (403 naming it);
 * - answers with how stale the entitlements were (header), so fail-open is visible.
 */
export const tenantProcedure = publicProcedure.use(async ({ ctx, next, type, meta }) => {
  const { principal, tenant } = await authenticateTenant(ctx.deps.db, ctx.bearer);
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
  ctx.logFields.tenantId = principal.tenantId;
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
  return next({ ctx: { principal, entitlements, tenant } });
});

/**
 * A platform key as bearer, or the dashboard's operator session cookie standing in for
 * the key it came from (a write then also needs the session's CSRF token).
 */
const platformAuth = t.middleware(async ({ ctx, type, next }) => next({ ctx: { principal: await authenticateOperator(ctx, type) } }));

/** An operator or billing system holding a platform API key. */
export const platformProcedure = publicProcedure.use(platformAuth);

/** Platform routes that exist only in hosted mode (lifecycle, billing state). */
export const hostedPlatformProcedure = hostedProcedure.use(platformAuth);
