import { LoginRequest, LoginResponse, MeResponse } from '@tenantry/domain';
import { login, me } from '../services/auth.js';
import { publicProcedure, router, tenantProcedure } from '../trpc.js';

export const authRouter = router({
  login: publicProcedure
    .meta({ rest: { method: 'POST', path: '/auth/login', rateLimited: true } })
    .input(LoginRequest)
    .output(LoginResponse)
    .mutation(({ ctx, input }) => login(ctx.deps, input, ctx.clientIp)),

  me: tenantProcedure
    .meta({ rest: { method: 'GET', path: '/me', auth: 'tenant' } })
    .output(MeResponse)
    .query(({ ctx }) => me(ctx.deps.db, ctx.principal)),
});
