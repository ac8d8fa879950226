import { z } from 'zod';
import { createApiKey, listApiKeys, revokeApiKey } from '../services/api-keys.js';
import { router, tenantProcedure } from '../trpc.js';

const ApiKeyView = z.object({
  id: z.string(),
  name: z.string(),
  scope: z.enum(['read', 'write']),
  createdAt: z.string(),
  revokedAt: z.string().nullable(),
});

/** A tenant's API keys for its own programs (plans with the `api_keys` capability). */
export const apiKeysRouter = router({
  create: tenantProcedure
    .meta({
      rest: {
        method: 'POST',
        path: '/api-keys',
        summary: 'Create a tenant API key',
        description: "Creates an API key for the caller's tenant, for its own programs. The key is shown once, in this answer, and stored only as a hash. A `read` key may call queries only. Needs the plan capability `api_keys`; audited.",
        successStatus: 201,
        auth: 'tenant',
      },
      requires: 'api_keys',
    })
    .input(z.strictObject({ name: z.string().trim().min(1).max(100), scope: z.enum(['read', 'write']) }))
    .output(ApiKeyView.extend({ key: z.string() }))
    .mutation(({ ctx, input }) => createApiKey(ctx.deps.db, ctx.principal, input)),

  list: tenantProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/api-keys',
        summary: "List the tenant's API keys",
        description: "Lists the caller's tenant's API keys, revoked ones included, without their secrets.",
        auth: 'tenant',
      },
    })
    .output(z.object({ items: z.array(ApiKeyView) }))
    .query(({ ctx }) => listApiKeys(ctx.deps.db, ctx.principal)),

  revoke: tenantProcedure
    .meta({
      rest: {
        method: 'DELETE',
        path: '/api-keys/{id}',
        summary: 'Revoke a tenant API key',
        description: "Revokes one of the caller's tenant's API keys at once; a key of another tenant is 404. Audited.",
        auth: 'tenant',
      },
    })
    .input(z.strictObject({ id: z.uuid() }))
    .output(ApiKeyView)
    .mutation(async ({ ctx, input }) => {
      const revoked = await revokeApiKey(ctx.deps.db, ctx.principal, input.id);
      // Refused here from the next call on, without waiting for Postgres's announcement.
      ctx.deps.credentials.invalidateTenant(ctx.principal.tenantId);
      // Streams opened with the key close on every instance now.
      await ctx.deps.realtime.requestRecheck(ctx.principal.tenantId);
      return revoked;
    }),
});
