import { GetMoveRequest, MoveAccepted, MoveView, StartMoveRequest } from '@tenantry/domain';
import { getMove, startMove } from '../services/moves.js';
import { hostedPlatformProcedure, router } from '../trpc.js';

/** Moves of a tenant between isolation models, run by the worker (platform key, hosted mode). */
export const movesRouter = router({
  start: hostedPlatformProcedure
    .meta({
      rest: {
        method: 'POST',
        path: '/tenants/{id}/move',
        summary: 'Move a tenant to another isolation model',
        description:
          "Starts an online move of an active tenant to `schema`, `database` or `cluster` isolation; follow it with the move's own route. The tenant keeps working throughout: its data is copied while it reads and writes, then its writes pause for a moment (they wait, or get 503 `tenant_moving` with `Retry-After`; reads never stop) while the last changes are copied and every table's row count and checksum are compared, and its routing switches in one transaction. A failed verification rolls the move back, leaving the tenant where it was. The target must be in the tenant's plan (403 `capability_missing`); a tenant not `active` (409 `tenant_not_active`), already on that model (409 `isolation_unchanged`) or already moving (409 `move_in_progress`) is refused. API keys, sessions, DNS and usage history are untouched. Audited. Hosted mode only.",
        successStatus: 202,
        auth: 'platform',
      },
    })
    .input(StartMoveRequest)
    .output(MoveAccepted)
    .mutation(({ ctx, input }) => startMove(ctx.deps, ctx.principal, input)),

  get: hostedPlatformProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/tenants/{id}/moves/{moveId}',
        summary: 'Follow a move',
        description:
          'Where a move is: `pending` → `copying` → `cutover` → `verifying` → `done`, or `failed` → `rolled_back` (with `error`). Until `done` the tenant is served by its old store; from the switch in `verifying` on, by its new one. Hosted mode only.',
        auth: 'platform',
      },
    })
    .input(GetMoveRequest)
    .output(MoveView)
    .query(({ ctx, input }) => getMove(ctx.deps.db, input)),
});
