import { LoginRequest, LoginResponse, MeResponse } from '@tenantry/domain';
import { z } from 'zod';
import { login, logout, me } from '../services/auth.js';
import { publicProcedure, router, tenantProcedure } from '../trpc.js';

export const authRouter = router({
  login: publicProcedure
    .meta({
      rest: {
        method: 'POST',
        path: '/auth/login',
        summary: 'Log in with a password',
        description: "Exchanges an owner's or member's email and password for an opaque session token (`Bearer`). Unknown email and wrong password are the same 401. Limited per account and client address, per address across accounts, and slowed per account across addresses (429 with `Retry-After`).",
        rateLimited: true,
      },
    })
    .input(LoginRequest)
    .output(LoginResponse)
    .mutation(({ ctx, input }) => login(ctx.deps, input, ctx.clientIp())),

  me: tenantProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/me',
        summary: 'Who am I',
        description: 'The signed-in user and their tenant. Needs a session token (an API key has no user: 403 `session_required`).',
        auth: 'tenant',
      },
    })
    .output(MeResponse)
    .query(({ ctx }) => me(ctx.deps.db, ctx.principal)),

  logout: tenantProcedure
    .meta({
      rest: {
        method: 'POST',
        path: '/auth/logout',
        successStatus: 204,
        summary: 'Log out',
        description:
          'Ends the session whose token is the bearer: from the next call on, on every api instance, the token is refused with 401 (a cached credential is dropped the moment the session row goes). Needs a session token (an API key is revoked with `DELETE /v1/api-keys/{id}` instead: 403 `session_required`).',
        auth: 'tenant',
      },
    })
    .output(z.void())
    .mutation(async ({ ctx }) => {
      await logout(ctx.deps.db, ctx.principal);
      // This instance refuses the token from its very next call; the others when Postgres's
      // announcement reaches them (milliseconds).
      ctx.deps.credentials.invalidateTenant(ctx.principal.tenantId);
    }),
});
