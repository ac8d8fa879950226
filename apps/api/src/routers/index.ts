import { router } from '../trpc.js';
import { authRouter } from './auth.js';
import { signupRouter } from './signup.js';

/** The api's table of contents. REST routes come from each procedure's `rest` meta. */
export const appRouter = router({
  signup: signupRouter,
  auth: authRouter,
});

export type AppRouter = typeof appRouter;
