import { SignupAccepted, SignupRequest, SignupStatusRequest, SignupStatusResponse } from '@tenantry/domain';
import { isCommonPassword } from '@tenantry/domain/common-passwords';
import { getSignupStatus, submitSignup } from '../services/signup.js';
import { hostedProcedure, router } from '../trpc.js';

const SignupInput = SignupRequest.superRefine((input, ctx) => {
  if (isCommonPassword(input.password)) {
    ctx.addIssue({ code: 'custom', path: ['password'], message: 'is too common; choose a password that is harder to guess' });
  }
  // Only the schema driver exists so far; accepting another model would provision the
  // wrong kind of tenant silently.
  if (input.isolation !== undefined && input.isolation !== 'schema') {
    ctx.addIssue({ code: 'custom', path: ['isolation'], message: `"${input.isolation}" isolation is not available; use "schema"` });
  }
});

/**
 * Counts every signup attempt by outcome. Declared before .input(), so it also sees the
 * attempts that validation refuses (tRPC hands middlewares the result, not a throw).
 */
const countedSignup = hostedProcedure.use(async ({ ctx, next }) => {
  const result = await next();
  const code = result.ok ? null : result.error.code;
  const outcome = result.ok
    ? 'accepted'
    : code === 'BAD_REQUEST'
      ? 'invalid'
      : code === 'TOO_MANY_REQUESTS'
        ? 'rate_limited'
        : code === 'SERVICE_UNAVAILABLE'
          ? 'unavailable'
          : 'error';
  ctx.deps.metrics.signups.inc({ result: outcome });
  return result;
});

export const signupRouter = router({
  create: countedSignup
    .meta({ rest: { method: 'POST', path: '/signup', successStatus: 202, rateLimited: true } })
    .input(SignupInput)
    .output(SignupAccepted)
    .mutation(({ ctx, input }) => submitSignup(ctx.deps, input, ctx.clientIp)),

  status: hostedProcedure
    .meta({ rest: { method: 'GET', path: '/signup/{signupId}' } })
    .input(SignupStatusRequest)
    .output(SignupStatusResponse)
    .query(({ ctx, input }) => getSignupStatus(ctx.deps.db, input.signupId)),
});
