import { z } from 'zod';
import { currentOperatorSession, sessionCookie, signInOperator, signOutOperator } from '../services/operator-sessions.js';
import { publicProcedure, router } from '../trpc.js';

const OperatorSessionView = z.object({
  /** The platform key the session stands in for: a stored key's id, or `env:<n>`. */
  keyId: z.string(),
  expiresAt: z.string(),
  /** Send as the X-CSRF-Token header on every write made with the session cookie. */
  csrfToken: z.string(),
});

/**
 * The dashboard's sign-in, over tRPC only: a session lives in a browser cookie, which REST
 * clients have no use for (they send the platform key itself), so these procedures carry
 * no `rest` meta and are not part of /v1.
 */
export const operatorRouter = router({
  /** Exchange the platform key (Authorization: Bearer) for a session cookie. */
  signIn: publicProcedure.output(OperatorSessionView).mutation(async ({ ctx }) => {
    const { token, view } = await signInOperator(ctx.deps, ctx.bearer);
    ctx.responseHeaders['set-cookie'] = sessionCookie(token, ctx.deps.config.OPERATOR_SESSION_TTL_MINUTES * 60);
    return view;
  }),

  /** The cookie's session: its expiry and CSRF token (401 once it has ended). */
  session: publicProcedure.output(OperatorSessionView).query(({ ctx }) => currentOperatorSession(ctx)),

  /** End the cookie's session (needs its CSRF token, like every write). */
  signOut: publicProcedure.output(z.object({ signedOut: z.literal(true) })).mutation(({ ctx }) => signOutOperator(ctx)),
});
