import { CreateWebhookRequest, CreatedWebhookEndpoint, WebhookEndpointIdRequest, WebhookEndpointList, WebhookEndpointView } from '@tenantry/domain';
import { createWebhookEndpoint, deleteWebhookEndpoint, listWebhookEndpoints } from '../services/webhooks.js';
import { platformProcedure, router } from '../trpc.js';

/** Endpoints of billing systems that receive signed events (Standard Webhooks). Platform key only. */
export const webhooksRouter = router({
  create: platformProcedure
    .meta({ rest: { method: 'POST', path: '/webhooks', successStatus: 201, auth: 'platform' } })
    .input(CreateWebhookRequest)
    .output(CreatedWebhookEndpoint)
    .mutation(({ ctx, input }) => createWebhookEndpoint(ctx.deps, ctx.principal, input)),

  list: platformProcedure
    .meta({ rest: { method: 'GET', path: '/webhooks', auth: 'platform' } })
    .output(WebhookEndpointList)
    .query(({ ctx }) => listWebhookEndpoints(ctx.deps.db)),

  delete: platformProcedure
    .meta({ rest: { method: 'DELETE', path: '/webhooks/{id}', auth: 'platform' } })
    .input(WebhookEndpointIdRequest)
    .output(WebhookEndpointView)
    .mutation(({ ctx, input }) => deleteWebhookEndpoint(ctx.deps, ctx.principal, input.id)),
});
