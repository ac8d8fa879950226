import { CreateWebhookRequest, CreatedWebhookEndpoint, WebhookEndpointIdRequest, WebhookEndpointList, WebhookEndpointView } from '@tenantry/domain';
import { createWebhookEndpoint, deleteWebhookEndpoint, listWebhookEndpoints } from '../services/webhooks.js';
import { platformProcedure, router } from '../trpc.js';

/** Endpoints of billing systems that receive signed events (Standard Webhooks). Platform key only. */
export const webhooksRouter = router({
  create: platformProcedure
    .meta({
      rest: {
        method: 'POST',
        path: '/webhooks',
        summary: 'Register a webhook endpoint',
        description:
          "Registers a billing system's endpoint for signed events (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`). The signing secret (`whsec_…`) is shown only in this answer. The target must be https and resolve to a public address. Audited.",
        successStatus: 201,
        auth: 'platform',
      },
    })
    .input(CreateWebhookRequest)
    .output(CreatedWebhookEndpoint)
    .mutation(({ ctx, input }) => createWebhookEndpoint(ctx.deps, ctx.principal, input)),

  list: platformProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/webhooks',
        summary: 'List webhook endpoints',
        description: 'The registered endpoints, with their state (enabled, or disabled after failing for a day) and since when they fail; never their secrets.',
        auth: 'platform',
      },
    })
    .output(WebhookEndpointList)
    .query(({ ctx }) => listWebhookEndpoints(ctx.deps.db)),

  delete: platformProcedure
    .meta({
      rest: {
        method: 'DELETE',
        path: '/webhooks/{id}',
        summary: 'Remove a webhook endpoint',
        description: 'Removes an endpoint: nothing more is sent to it, and its pending deliveries are cancelled. Audited.',
        auth: 'platform',
      },
    })
    .input(WebhookEndpointIdRequest)
    .output(WebhookEndpointView)
    .mutation(({ ctx, input }) => deleteWebhookEndpoint(ctx.deps, ctx.principal, input.id)),
});
