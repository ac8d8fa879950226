import { type OpenApiDocument, createOpenApiDocument } from '../http/openapi.js';
import { router } from '../trpc.js';
import { apiKeysRouter } from './api-keys.js';
import { auditRouter } from './audit.js';
import { authRouter } from './auth.js';
import { billingRouter } from './billing.js';
import { documentsRouter } from './documents.js';
import { invoicesRouter } from './invoices.js';
import { filesRouter } from './files.js';
import { realtimeRouter } from './realtime.js';
import { metaRouter } from './meta.js';
import { movesRouter } from './moves.js';
import { operatorRouter } from './operator.js';
import { pricingRouter } from './pricing.js';
import { signupRouter } from './signup.js';
import { tenantsRouter } from './tenants.js';
import { usageRouter } from './usage.js';
import { webhooksRouter } from './webhooks.js';

/** The api's table of contents. REST routes come from each procedure's `rest` meta. */
export const appRouter = router({
  signup: signupRouter,
  auth: authRouter,
  meta: metaRouter,
  tenants: tenantsRouter,
  moves: movesRouter,
  billing: billingRouter,
  audit: auditRouter,
  apiKeys: apiKeysRouter,
  documents: documentsRouter,
  files: filesRouter,
  realtime: realtimeRouter,
  usage: usageRouter,
  operator: operatorRouter,
  pricing: pricingRouter,
  webhooks: webhooksRouter,
  invoices: invoicesRouter,
});

export type AppRouter = typeof appRouter;

/** What each part of the api is for: the tags of the OpenAPI document (one per router above). */
export const ROUTER_TAGS: Readonly<Record<keyof AppRouter['_def']['record'], string>> = {
  signup: 'Public signup of a new tenant, and following it until the tenant is ready (hosted mode)',
  auth: 'Password login and the signed-in user',
  meta: 'The API description itself',
  tenants: 'Operators and billing systems: create, list, read, rename and steer tenants through their lifecycle (platform key)',
  moves: 'Online moves of a tenant between isolation models (schema, database, cluster), run by the worker (platform key, hosted mode)',
  billing: "A tenant's plan, subscription state and quota overrides (platform key, hosted mode)",
  audit: 'The tamper-evident audit log (platform key)',
  apiKeys: "A tenant's API keys for its own programs",
  documents: "The tenant data plane: JSON documents in named collections, only ever the caller's tenant's",
  files: "The tenant's files (capability `files`): bytes streamed up and down over REST, held to the tenant's `fileStorageBytes` and `fileBytes`",
  realtime: "The tenant's document changes as they happen (capability `realtime`): Server-Sent Events over REST, a subscription over tRPC",
  pricing: 'The public pricing calculator: what a month of usage costs on a plan',
  webhooks: 'Endpoints of billing systems that receive signed events: tenant lifecycle and invoices (platform key)',
  operator: 'Operator sessions of the web dashboard (tRPC only: a platform key exchanged for an HttpOnly cookie)',
  usage: 'Metered usage per tenant and month (UTC), from the rollups quotas and invoices read: platform key for any tenant, a tenant credential for its own',
  invoices:
    "Monthly invoices: finalized by the month close, gaplessly numbered, never changed (corrected by a void and a replacement), as JSON, CSV or PDF; the current month's live draft. Platform key for any tenant, a tenant credential for its own",
};

/** info.version of the OpenAPI document: the REST surface is /v1. */
export const API_VERSION = '1.0.0';

/** The OpenAPI document of this api (served at /v1/openapi.json; docs/api.md is rendered from it). */
export function appOpenApiDocument(options: { serverUrl?: string } = {}): OpenApiDocument {
  return createOpenApiDocument(appRouter, { version: API_VERSION, tags: ROUTER_TAGS, ...options });
}
