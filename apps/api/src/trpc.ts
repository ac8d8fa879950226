import { DomainError, ForbiddenError, NotFoundError, tenantAccessRefusal } from '@tenantry/domain';
import { initTRPC } from '@trpc/server';
import type { RequestContext } from './context.js';
import { toTRPCError, toWireError } from './errors.js';
import { authenticatePlatform } from './services/platform-keys.js';
import { authenticateTenantToken } from './services/sessions.js';

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

/** Anyone on the internet. */
export const publicProcedure = t.procedure.use(mapDomainErrors);

/**
 * Routes that exist only in hosted mode (public signup, and later billing and lifecycle).
 * Outside it they answer 404 as if they did not exist.
 */
export const hostedProcedure = publicProcedure.use(({ ctx, next }) => {
  if (!ctx.deps.config.HOSTED_MODE) throw new NotFoundError('This route', 'not_found');
  return next();
});

/**
 * A signed-in tenant user (session token) whose tenant is active. A suspended or
 * pending-deletion tenant's sessions are refused, not deleted, so access comes back on
 * unsuspend or restore.
 */
export const tenantProcedure = publicProcedure.use(async ({ ctx, next }) => {
  const session = await authenticateTenantToken(ctx.deps.db, ctx.bearer);
  const tenant = await ctx.deps.db.selectFrom('tenants').select('status').where('id', '=', session.tenantId).executeTakeFirst();
  const refusal = tenantAccessRefusal(tenant?.status ?? 'deleted');
  if (refusal) throw new ForbiddenError(refusal.code, refusal.message);
  return next({ ctx: { session } });
});

/** An operator or billing system holding a platform API key. */
export const platformProcedure = publicProcedure.use(async ({ ctx, next }) => {
  const principal = await authenticatePlatform(ctx.deps.db, ctx.deps.platformKeyHashes, ctx.bearer);
  return next({ ctx: { principal } });
});

/** Platform routes that exist only in hosted mode (lifecycle, billing state). */
export const hostedPlatformProcedure = hostedProcedure.use(async ({ ctx, next }) => {
  const principal = await authenticatePlatform(ctx.deps.db, ctx.deps.platformKeyHashes, ctx.bearer);
  return next({ ctx: { principal } });
});
