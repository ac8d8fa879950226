import { SignupAccepted, SignupRequest, SignupStatusRequest, SignupStatusResponse, TRIAL_PLAN, planHasIsolation } from '@tenantry/domain';
import { isCommonPassword } from '@tenantry/domain/common-passwords';
import { getSignupStatus, submitSignup } from '../services/signup.js';
import { hostedProcedure, router } from '../trpc.js';

const SignupInput = SignupRequest.superRefine((input, ctx) => {
  if (isCommonPassword(input.password)) {
    ctx.addIssue({ code: 'custom', path: ['password'], message: 'is too common; choose a password that is harder to guess' });
  }
  // Public signup always starts on the trial plan, which lacks isolation.database (and
  // isolation.cluster): known from the input alone, so a 400 on the field, before the rate
  // limiter and the password hash. Operators create database tenants on a paid plan
  // through POST /v1/tenants.
  if (input.isolation !== undefined && !planHasIsolation(TRIAL_PLAN, input.isolation)) {
    ctx.addIssue({
      code: 'custom',
      path: ['isolation'],
      message: `"${input.isolation}" isolation needs a plan with the "isolation.${input.isolation}" capability; signup starts on the trial plan, so use "schema"`,
    });
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
    .meta({
      rest: {
        method: 'POST',
        path: '/signup',
        summary: 'Sign up',
        description: 'Public signup (hosted mode): validates the input, rate-limits per client address, and queues the provisioning of a new tenant with its owner on a trial. Always 202 with a signup id, whether or not the email was seen before; poll `GET /v1/signup/{signupId}`.',
        successStatus: 202,
        rateLimited: true,
      },
    })
    .input(SignupInput)
    .output(SignupAccepted)
    .mutation(({ ctx, input }) => submitSignup(ctx.deps, input, ctx.clientIp())),

  status: hostedProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/signup/{signupId}',
        summary: 'Follow a signup',
        description: 'The state of a signup: `pending`, `provisioning`, `ready` (with the tenant id) or `failed` (then the same email may sign up again).',
      },
    })
    .input(SignupStatusRequest)
    .output(SignupStatusResponse)
    .query(({ ctx, input }) => getSignupStatus(ctx.deps.db, input.signupId)),
});
