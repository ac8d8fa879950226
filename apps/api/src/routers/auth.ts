import { LoginRequest, LoginResponse, MeResponse } from '@tenantry/domain';
import { login, me } from '../services/auth.js';
import { publicProcedure, router, tenantProcedure } from '../trpc.js';

export const authRouter = router({
  login: publicProcedure
    .meta({ rest: { method: 'POST', path: '/auth/login' } })
    .input(LoginRequest)
    .output(LoginResponse)
    .mutation(({ ctx, input }) => login(ctx.deps.db, input, ctx.deps.config.SESSION_TTL_HOURS)),

  me: tenantProcedure
    .meta({ rest: { method: 'GET', path: '/me' } })
    .output(MeResponse)
    .query(({ ctx }) => me(ctx.deps.db, ctx.session)),
});
