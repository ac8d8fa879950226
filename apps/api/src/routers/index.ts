import { router } from '../trpc.js';
import { apiKeysRouter } from './api-keys.js';
import { auditRouter } from './audit.js';
import { authRouter } from './auth.js';
import { billingRouter } from './billing.js';
import { documentsRouter } from './documents.js';
import { metaRouter } from './meta.js';
import { pricingRouter } from './pricing.js';
import { signupRouter } from './signup.js';
import { tenantsRouter } from './tenants.js';
import { webhooksRouter } from './webhooks.js';

/** The api's table of contents. REST routes come from each procedure's `rest` meta. */
export const appRouter = router({
  signup: signupRouter,
  auth: authRouter,
  meta: metaRouter,
  tenants: tenantsRouter,
  billing: billingRouter,
  audit: auditRouter,
  apiKeys: apiKeysRouter,
  documents: documentsRouter,
  pricing: pricingRouter,
  webhooks: webhooksRouter,
});

export type AppRouter = typeof appRouter;
