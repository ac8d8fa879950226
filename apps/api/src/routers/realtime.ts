import { RealtimeEvent, RealtimeRequest } from '@tenantry/domain';
import { router, tenantProcedure } from '../trpc.js';

/** Realtime streams of the tenant's document changes (capability `realtime`): SSE over REST, a subscription over tRPC. */
export const realtimeRouter = router({
  subscribe: tenantProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/realtime',
        response: 'event-stream',
        events: RealtimeEvent,
        responses: { 429: "The tenant has as many streams open as its `realtimeConnections` allows, across all api instances (code `quota_exceeded`, `resource: \"realtimeConnections\"`), answered before the stream starts" },
        summary: 'Follow document changes',
        description:
          "A `text/event-stream` of the caller's tenant's document changes, as they commit, from every api instance: events `document.created`, `document.updated` (`data` is the document after the change) and `document.deleted`, each with `{collection, id, data?, at}` and an `id:`. `collections=a,b` limits it to some collections. Reconnect with `Last-Event-ID` to get what was missed, within the resume window (`REALTIME_WINDOW_MS`, default 5 minutes); from outside it, or after a Redis outage lost events, the stream starts with a `reset` event: re-read, then go on. A comment line comes every `REALTIME_HEARTBEAT_MS` (default 15 s). The stream closes when the tenant is suspended or the credential revoked. The same stream is the tRPC subscription `realtime.subscribe`.",
        auth: 'tenant',
      },
      requires: 'realtime',
    })
    .input(RealtimeRequest)
    .subscription(({ ctx, input, signal }) =>
      ctx.deps.realtime.subscribe({
        tenantId: ctx.principal.tenantId,
        bearer: ctx.bearer,
        collections: input.collections,
        lastEventId: input.lastEventId,
        limit: ctx.entitlements.limits.realtimeConnections,
        signal,
        outgoing: ctx.outgoing,
        positions: ctx.http !== undefined,
      }),
    ),
});
