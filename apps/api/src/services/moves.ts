import { type Database, type Db, type TenantMove, type TenantRef, type TenantStore, appendAudit } from '@tenantry/db';
import {
  Capability,
  ConflictError,
  DomainError,
  ForbiddenError,
  type Isolation,
  type MoveView,
  NotFoundError,
  TenantMovingError,
  ValidationError,
  capabilitiesAllowIsolation,
  entitlementsOf,
  fromPublicId,
  toPublicId,
} from '@tenantry/domain';
import { enqueueMove } from '@tenantry/jobs';
import { type Transaction, sql } from 'kysely';
import type { ApiDeps } from '../context.js';
import { withTimeout } from '../timeout.js';
import type { PlatformPrincipal } from './platform-keys.js';
import type { CredentialTenant } from './tenant-auth.js';
import { findTenant } from './tenants.js';

/** How long a request waits on Redis to enqueue before leaving the move to the reconciler. */
const ENQUEUE_TIMEOUT_MS = 1_000;

/** How often a paused write looks whether the move has switched. */
const PAUSE_POLL_MS = 50;

/** What a unique violation of the one-open-move-per-tenant index means to the caller. */
const moveInProgress = () => new ConflictError('move_in_progress', 'A move of this tenant is already running; follow it with GET /v1/tenants/{id}/moves/{moveId}');

function toMoveView(move: TenantMove): MoveView {
  const view: MoveView = { moveId: toPublicId('mov', move.id), from: move.from_isolation, to: move.to_isolation, status: move.status };
  if (move.error && (move.status === 'failed' || move.status === 'rolled_back')) view.error = move.error;
  return view;
}

/**
 * An operator asks for a tenant to move to another isolation model. Checked in order:
 * the tenant exists (404), is not already there (409), its plan — with its billing
 * state's overrides, read now — includes the target (403 capability_missing), this
 * installation can make stores of that model (400), it is active (409), and no other move
 * of it is open (409, decided by a unique index). The move row, its first step and the
 * audit entry commit together; the job is enqueued after (Redis away: the worker's
 * reconciler enqueues it), so the answer is 202 either way.
 */
export async function startMove(deps: ApiDeps, principal: PlatformPrincipal, input: { id: string; isolation: Isolation }) {
  const to = input.isolation;
  const move = await deps.db
    .transaction()
    .execute(async (trx) => {
      const tenant = await findTenant(trx, input.id, { lock: true });
      if (tenant.status === 'deleted') throw new NotFoundError('Tenant', 'tenant_not_found');
      if (tenant.isolation === to) throw new ConflictError('isolation_unchanged', `The tenant already uses ${to} isolation`);
      const billing = await trx.selectFrom('billing_states').selectAll().where('tenant_id', '=', tenant.id).executeTakeFirst();
      const { capabilities } = entitlementsOf({
        plan: billing?.plan ?? tenant.plan,
        planVersion: billing?.plan_version ?? 1,
        subscriptionState: billing?.subscription_state ?? 'trial',
        capabilities: billing?.capabilities ? billing.capabilities.filter((c): c is Capability => Capability.safeParse(c).success) : null,
      });
      if (!capabilitiesAllowIsolation(capabilities, to)) {
        throw new ForbiddenError('capability_missing', `The tenant's plan does not include "isolation.${to}"`);
      }
      const unavailable = deps.isolation.unavailable(to);
      if (unavailable) throw new ValidationError([{ field: 'isolation', message: unavailable }]);
      if (tenant.status !== 'active') throw new ConflictError('tenant_not_active', `Only an active tenant can move; this one is ${tenant.status}`);
      const open = await trx.selectFrom('tenant_moves').select('id').where('tenant_id', '=', tenant.id).where('status', 'not in', ['done', 'rolled_back']).executeTakeFirst();
      if (open) throw moveInProgress();
      const created = await trx
        .insertInto('tenant_moves')
        .values({ tenant_id: tenant.id, from_isolation: tenant.isolation, to_isolation: to, requested_by: `platform:${principal.keyId}` })
        .returningAll()
        .executeTakeFirstOrThrow();
      await trx.insertInto('tenant_move_steps').values({ move_id: created.id, status: 'pending', detail: JSON.stringify({ requestedBy: created.requested_by }) }).execute();
      await appendAudit(trx, {
        actor: `platform:${principal.keyId}`,
        action: 'tenant.move_requested',
        tenantId: tenant.id,
        data: { moveId: created.id, from: tenant.isolation, to },
      });
      return created;
    })
    .catch((err: unknown) => {
      // A twin request that committed between our check and our insert.
      if ((err as { code?: string }).code === '23505') throw moveInProgress();
      throw err;
    });
  try {
    await withTimeout(enqueueMove(deps.moveQueue, move.id), ENQUEUE_TIMEOUT_MS);
  } catch (err) {
    deps.logger.warn({ err, moveId: move.id }, 'enqueue failed; the reconciler will pick the move up');
  }
  deps.metrics.movesRequested.inc({ from: move.from_isolation, to: move.to_isolation });
  return { moveId: toPublicId('mov', move.id), status: move.status };
}

/** One move of one tenant; another tenant's move id is 404, like an unknown one. */
export async function getMove(db: Db, input: { id: string; moveId: string }): Promise<MoveView> {
  const tenant = await findTenant(db, input.id);
  const moveId = fromPublicId('mov', input.moveId);
  const move = moveId ? await db.selectFrom('tenant_moves').selectAll().where('id', '=', moveId).where('tenant_id', '=', tenant.id).executeTakeFirst() : undefined;
  if (!move) throw new NotFoundError('Move', 'move_not_found');
  return toMoveView(move);
}

/**
 * A write of a tenant whose move is in its cutover: wait for the switch (polling the
 * tenant row: no instance keeps state about it), up to MOVE_WRITE_WAIT_MS, then 503
 * tenant_moving with Retry-After. Answers the tenant as it is now — on its new store,
 * once switched — for the write to go to.
 */
export async function awaitWritesResumed(deps: ApiDeps, tenant: CredentialTenant): Promise<CredentialTenant> {
  const deadline = Date.now() + deps.config.MOVE_WRITE_WAIT_MS;
  let current = tenant;
  while (current.writes_paused_at !== null) {
    if (Date.now() >= deadline) {
      deps.metrics.pausedWrites.inc({ outcome: 'refused' });
      throw new TenantMovingError();
    }
    await new Promise((resolve) => setTimeout(resolve, PAUSE_POLL_MS));
    const row = await deps.db
      .selectFrom('tenants')
      .select(['slug', 'status', 'isolation', 'schema_name', 'placement_generation', 'writes_paused_at'])
      .where('id', '=', tenant.id)
      .executeTakeFirst();
    if (!row) throw new NotFoundError('Tenant', 'tenant_not_found');
    current = { id: tenant.id, ...row };
  }
  deps.metrics.pausedWrites.inc({ outcome: 'waited' });
  return current;
}

/**
 * The tenant store of the api: the isolation registry, plus one rule. A request routed
 * just before a move's switch can reach the store the tenant is leaving: a write there is
 * refused (the source is frozen), and once the source is dropped anything fails. When a
 * request fails and the tenant's routing has changed since it was read (or its writes are
 * paused), nothing was written and the same request goes to the new store on a retry: 503
 * tenant_moving, not a 500.
 */
export class MovingAwareStore implements TenantStore {
  constructor(
    private readonly inner: TenantStore,
    private readonly db: Db,
  ) {}

  async run<T>(tenant: TenantRef, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    try {
      return await this.inner.run(tenant, fn);
    } catch (err) {
      if (err instanceof DomainError || !(await this.movedUnder(tenant))) throw err;
      throw new TenantMovingError(1, { cause: err });
    }
  }

  private async movedUnder(tenant: TenantRef): Promise<boolean> {
    const row = await this.db
      .selectFrom('tenants')
      .select(['isolation', 'placement_generation', sql<boolean>`writes_paused_at is not null`.as('paused')])
      .where('id', '=', tenant.id)
      .executeTakeFirst()
      .catch(() => undefined);
    return !!row && (row.paused || row.isolation !== tenant.isolation || row.placement_generation !== tenant.placementGeneration);
  }
}
