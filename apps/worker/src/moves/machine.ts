import {
  type AttachedStore,
  type Db,
  FreezeTimeoutError,
  type IsolationDriver,
  type IsolationRegistry,
  type Placement,
  type TableVerification,
  type Tenant,
  type TenantMove,
  appendAudit,
  loadPlacement,
  lockTenant,
  placementOf,
  placementUpdate,
  storePlacement,
  syncTenantTables,
  verifyTenantTables,
} from '@tenantry/db';
import type { Isolation, MoveStatus } from '@tenantry/domain';
import { type Transaction, sql } from 'kysely';
import type { Database } from '@tenantry/db';

/**
 * The move state machine: pending → copying → cutover → verifying → done, or failed →
 * rolled_back. The move row is the truth; each run of `runMove` loads it and carries on
 * from whatever state it is in, so a worker killed anywhere leaves a move the next run
 * resumes (BullMQ redelivers the job; the reconciler re-enqueues a lost one).
 *
 * - pending: choose the target's placement (kept on the move row, never the tenant row)
 *   and make the target's storage.
 * - copying: diff passes from source to target while the tenant keeps reading and
 *   writing, until a pass changes few rows.
 * - cutover: pause the tenant's writes at the api (they wait, then 503 tenant_moving),
 *   freeze the source (its role loses INSERT/UPDATE/DELETE once in-flight writes have
 *   committed), and make the target exact with a last pass.
 * - verifying: row counts and checksums of every table on both sides; on a match, ONE
 *   control-plane transaction points the tenant row at the target (isolation, placement,
 *   generation) and lifts the pause; then, after a short grace for requests routed just
 *   before, the source is dropped through its driver, and the move is done.
 * - failed: (any step before the switch) give the source its writes back, lift the
 *   pause, drop the target: rolled_back. After the switch nothing rolls back.
 *
 * Until the switch commits the tenant row names the source, which keeps every row the
 * tenant wrote (it is only read-only from the cutover on); after it, the row names the
 * target, which then holds exactly the same rows. So the tenant is never split.
 */

export interface MoveSettings {
  /** Keys per batch of a copy pass or a checksum walk. */
  batchRows: number;
  /** How long the cutover waits for writes already running at the source before it gives up (and tries later). */
  freezeTimeoutMs: number;
  /** From the switch to the source's drop: requests routed just before the switch finish against it. */
  sourceGraceMs: number;
}

export interface MoveObserver {
  /** A move reached `done` or `rolled_back` in this run. */
  finished(move: { from: Isolation; to: Isolation; status: 'done' | 'rolled_back'; durationSeconds: number; writePauseSeconds: number | null }): void;
}

export interface MoveContext {
  db: Db;
  isolation: IsolationRegistry;
  settings: MoveSettings;
  observer?: MoveObserver;
  log: (message: string, fields?: Record<string, unknown>) => void;
}

export type MoveOutcome = { status: MoveStatus } | { status: 'busy' | 'missing' };

/** Thrown between steps when the worker shuts down: the job is handed back, not failed. */
export class MoveInterrupted extends Error {}

/** A copy pass that changed at most this many rows leaves little for the cutover's last pass. */
const CAUGHT_UP_ROWS = 100;
/** Diff passes per run of the copying step before the cutover is tried anyway. */
const MAX_COPY_PASSES = 5;
/** Cutovers abandoned because writes did not drain in time, before the move fails. */
const MAX_CUTOVER_ATTEMPTS = 3;
const MAX_ERROR_LENGTH = 500;
const ACTOR = 'system:worker';

/**
 * Run move `moveId` from its recorded state to `done` or `rolled_back`. One run at a time
 * per move (a session advisory lock, released if the worker dies): a redelivered job that
 * finds its original still running answers `busy` and leaves it be.
 */
export async function runMove(ctx: MoveContext, moveId: string, signal?: AbortSignal): Promise<MoveOutcome> {
  return withMoveLock(ctx.db, moveId, async () => {
    for (;;) {
      const move = await loadMove(ctx.db, moveId);
      if (!move) return { status: 'missing' as const };
      switch (move.status) {
        case 'done':
        case 'rolled_back':
          return { status: move.status };
        case 'pending':
          interruptible(signal);
          await prepareTarget(ctx, move);
          break;
        case 'copying':
          await copy(ctx, move, signal);
          break;
        case 'cutover':
          interruptible(signal);
          await cutover(ctx, move);
          break;
        case 'verifying':
          await verifyAndSwitch(ctx, move);
          break;
        case 'failed':
          await rollBack(ctx, move);
          break;
      }
    }
  });
}

/**
 * The job's last attempt failed: fail the move and roll it back — unless it was already
 * switched, in which case it only has the source's drop left and must go forward (it
 * stays open; the reconciler runs it again later).
 */
export async function giveUpMove(ctx: MoveContext, moveId: string, error: unknown): Promise<MoveOutcome> {
  const move = await loadMove(ctx.db, moveId);
  if (!move || move.status === 'done' || move.status === 'rolled_back') return { status: move?.status ?? 'missing' };
  if (move.switched_at) return { status: move.status };
  if (move.status !== 'failed') await fail(ctx.db, move, describe(error));
  return runMove(ctx, moveId);
}

/** Note the error of an attempt that will be retried (operators see why a move is slow). */
export async function recordMoveError(db: Db, moveId: string, error: unknown): Promise<void> {
  await db
    .updateTable('tenant_moves')
    .set({ error: describe(error), updated_at: sql`now()` })
    .where('id', '=', moveId)
    .where('status', 'not in', ['done', 'rolled_back'])
    .execute();
}

// ---- steps -------------------------------------------------------------------------

async function prepareTarget(ctx: MoveContext, move: TenantMove): Promise<void> {
  const tenant = await loadTenant(ctx.db, move.tenant_id);
  if (!tenant || tenant.status === 'deleted' || tenant.isolation !== move.from_isolation) {
    await fail(ctx.db, move, tenant ? `the tenant is ${tenant.status} on ${tenant.isolation} isolation` : 'the tenant no longer exists');
    return;
  }
  const target = ctx.isolation.driver(move.to_isolation);
  let placement = move.target_placement ? loadPlacement(move.target_placement) : undefined;
  if (!placement) {
    // Recorded before anything is made: a retry makes the same storage, and a rollback knows what to drop.
    placement = await target.placeMove(move.tenant_id);
    await ctx.db.updateTable('tenant_moves').set({ target_placement: storePlacement(placement), updated_at: sql`now()` }).where('id', '=', move.id).execute();
  }
  const made = await target.provisionAt(move.tenant_id, placement);
  await advance(ctx.db, move, 'copying', { target: move.to_isolation }, { target_placement: storePlacement(made) });
}

async function copy(ctx: MoveContext, move: TenantMove, signal: AbortSignal | undefined): Promise<void> {
  const tenant = await requireSource(ctx, move);
  if (!tenant) return;
  await withStores(ctx, move, tenant, async (source, target) => {
    let passes = 0;
    let last = { upserted: 0, deleted: 0, sourceRows: 0 };
    do {
      interruptible(signal);
      // A big tenant's pass takes a while: a shutdown stops it between batches (the next run diffs again).
      last = await syncTenantTables(source, target, ctx.settings.batchRows, () => interruptible(signal));
      passes += 1;
      await ctx.db
        .updateTable('tenant_moves')
        .set({ copy_passes: sql`copy_passes + 1`, rows_copied: sql`rows_copied + ${last.upserted}`, updated_at: sql`now()` })
        .where('id', '=', move.id)
        .execute();
    } while (last.upserted + last.deleted > CAUGHT_UP_ROWS && passes < MAX_COPY_PASSES);
    await advance(ctx.db, move, 'cutover', { passes, lastPass: last });
  });
}

async function cutover(ctx: MoveContext, move: TenantMove): Promise<void> {
  const tenant = await requireSource(ctx, move);
  if (!tenant) return;
  const sourceDriver = ctx.isolation.driver(move.from_isolation);
  const sourcePlacement = placementOf(sourceDriver.placementColumns, tenant);
  // Writes pause at the api first (they wait there rather than queue on the source's lock);
  // a resumed cutover keeps the first pause's start, so the pause it reports is the whole of it.
  await ctx.db.transaction().execute(async (trx) => {
    await trx.updateTable('tenants').set({ writes_paused_at: sql`coalesce(writes_paused_at, now())` }).where('id', '=', move.tenant_id).execute();
    await trx.updateTable('tenant_moves').set({ paused_at: sql`coalesce(paused_at, now())`, updated_at: sql`now()` }).where('id', '=', move.id).execute();
  });
  const started = performance.now();
  try {
    await sourceDriver.freeze(move.tenant_id, sourcePlacement, ctx.settings.freezeTimeoutMs);
  } catch (err) {
    if (!(err instanceof FreezeTimeoutError)) throw err;
    await abandonCutover(ctx, move, err.message);
    return;
  }
  const frozen = performance.now();
  await withStores(ctx, move, tenant, async (source, target) => {
    const last = await syncTenantTables(source, target, ctx.settings.batchRows);
    const timings = { freezeMs: Math.round(frozen - started), finalPassMs: Math.round(performance.now() - frozen) };
    await advance(ctx.db, move, 'verifying', { finalPass: last, ...timings }, { rows_copied: sql`rows_copied + ${last.upserted}` });
  });
}

/**
 * Writes at the source did not finish within the freeze timeout (a long transaction):
 * nothing was frozen; lift the pause and go back to copying, so the tenant is not held
 * up while it waits. After MAX_CUTOVER_ATTEMPTS the move fails instead.
 */
async function abandonCutover(ctx: MoveContext, move: TenantMove, reason: string): Promise<void> {
  const attempts = move.cutover_attempts + 1;
  await ctx.db.transaction().execute(async (trx) => {
    await trx.updateTable('tenants').set({ writes_paused_at: null }).where('id', '=', move.tenant_id).execute();
    await trx.updateTable('tenant_moves').set({ paused_at: null, cutover_attempts: attempts }).where('id', '=', move.id).execute();
  });
  ctx.log('move cutover abandoned: writes did not drain in time', { moveId: move.id, attempts });
  const current = (await loadMove(ctx.db, move.id))!;
  if (attempts >= MAX_CUTOVER_ATTEMPTS) await fail(ctx.db, current, `the tenant's writes could not be paused: ${reason} (${attempts} attempts)`);
  else await advance(ctx.db, current, 'copying', { cutoverAbandoned: reason, attempts });
}

async function verifyAndSwitch(ctx: MoveContext, move: TenantMove): Promise<void> {
  if (!move.switched_at) {
    const tenant = await requireSource(ctx, move);
    if (!tenant) return;
    const started = performance.now();
    const verification = await withStores(ctx, move, tenant, (source, target) => verifyTenantTables(source, target, ctx.settings.batchRows));
    const verifyMs = Math.round(performance.now() - started);
    const bad = verification.filter((v) => !v.ok);
    if (bad.length > 0) {
      const detail = bad.map((v) => `${v.table}: source ${v.sourceRows} rows ${v.sourceChecksum.slice(0, 12)}…, target ${v.targetRows} rows ${v.targetChecksum.slice(0, 12)}…`).join('; ');
      await fail(ctx.db, move, `verification failed: ${detail}`, { verification: JSON.stringify(verification) });
      return;
    }
    await switchRouting(ctx, move, verification, verifyMs);
    move = (await loadMove(ctx.db, move.id))!;
  }
  // Switched: the target serves. The source stays (read-only) a moment for requests that
  // were routed to it just before the switch, then goes.
  const sinceSwitch = Date.now() - new Date(move.switched_at!).getTime();
  if (sinceSwitch < ctx.settings.sourceGraceMs) await sleep(ctx.settings.sourceGraceMs - sinceSwitch);
  if (move.source_placement) await ctx.isolation.driver(move.from_isolation).dropAt(move.tenant_id, loadPlacement(move.source_placement));
  await advance(ctx.db, move, 'done', { sourceDropped: true }, { finished_at: sql`now()`, source_placement: null, target_placement: null, error: null });
  ctx.observer?.finished({
    from: move.from_isolation,
    to: move.to_isolation,
    status: 'done',
    durationSeconds: (Date.now() - move.created_at.getTime()) / 1000,
    writePauseSeconds: move.write_pause_ms === null ? null : move.write_pause_ms / 1000,
  });
  ctx.log('tenant moved', { moveId: move.id, from: move.from_isolation, to: move.to_isolation, writePauseMs: move.write_pause_ms });
}

/**
 * The switch, in one control-plane transaction: the tenant row takes the target's
 * isolation and placement (every other placement column cleared), a new placement
 * generation, and its writes back; the move keeps the source's placement for the drop.
 * Every api instance reads the tenant row on every call, so the next request of any of
 * them goes to the target.
 */
async function switchRouting(ctx: MoveContext, move: TenantMove, verification: TableVerification[], verifyMs: number): Promise<void> {
  const placement = loadPlacement(move.target_placement!);
  await ctx.db.transaction().execute(async (trx) => {
    await lockTenant(trx, move.tenant_id);
    const tenant = await trx.selectFrom('tenants').selectAll().where('id', '=', move.tenant_id).forUpdate().executeTakeFirst();
    if (!tenant || tenant.isolation !== move.from_isolation) throw new Error('the tenant changed under its move');
    const sourcePlacement = placementOf(ctx.isolation.driver(move.from_isolation).placementColumns, tenant);
    await trx
      .updateTable('tenants')
      .set({
        ...placementUpdate(ctx.isolation.placementColumns, placement),
        isolation: move.to_isolation,
        placement_generation: sql`placement_generation + 1`,
        writes_paused_at: null,
        updated_at: sql`now()`,
      })
      .where('id', '=', move.tenant_id)
      .execute();
    const { rows } = await sql<{ pause_ms: number | null }>`
      update tenant_moves set
        source_placement = ${storePlacement(sourcePlacement)}::jsonb,
        verification = ${JSON.stringify(verification)}::jsonb,
        switched_at = now(),
        write_pause_ms = (extract(epoch from (clock_timestamp() - paused_at)) * 1000)::int,
        updated_at = now()
      where id = ${move.id}
      returning write_pause_ms as pause_ms`.execute(trx);
    await trx.insertInto('tenant_move_steps').values({ move_id: move.id, status: 'switched', detail: JSON.stringify({ writePauseMs: rows[0]?.pause_ms ?? null, verifyMs }) }).execute();
    await appendAudit(trx, {
      actor: ACTOR,
      action: 'tenant.moved',
      tenantId: move.tenant_id,
      data: {
        moveId: move.id,
        from: move.from_isolation,
        to: move.to_isolation,
        rows: Object.fromEntries(verification.map((v) => [v.table, v.targetRows])),
        writePauseMs: rows[0]?.pause_ms ?? null,
      },
    });
  });
}

/** Before the switch only: the source gets its writes back, the pause is lifted, the target goes. */
async function rollBack(ctx: MoveContext, move: TenantMove): Promise<void> {
  if (move.switched_at) throw new Error('a switched move cannot be rolled back');
  const tenant = await loadTenant(ctx.db, move.tenant_id);
  if (tenant && tenant.status !== 'deleted' && tenant.isolation === move.from_isolation) {
    const sourceDriver = ctx.isolation.driver(move.from_isolation);
    // Thawed before the pause is lifted: writers released by it find the source writable.
    await sourceDriver.thaw(move.tenant_id, placementOf(sourceDriver.placementColumns, tenant));
    await ctx.db.updateTable('tenants').set({ writes_paused_at: null }).where('id', '=', move.tenant_id).execute();
  }
  if (move.target_placement) await ctx.isolation.driver(move.to_isolation).dropAt(move.tenant_id, loadPlacement(move.target_placement));
  await advance(
    ctx.db,
    move,
    'rolled_back',
    { error: move.error },
    { finished_at: sql`now()`, target_placement: null },
    { action: 'tenant.move_rolled_back', data: { moveId: move.id, from: move.from_isolation, to: move.to_isolation, error: move.error } },
  );
  ctx.observer?.finished({
    from: move.from_isolation,
    to: move.to_isolation,
    status: 'rolled_back',
    durationSeconds: (Date.now() - move.created_at.getTime()) / 1000,
    writePauseSeconds: null,
  });
  ctx.log('tenant move rolled back', { moveId: move.id, from: move.from_isolation, to: move.to_isolation, error: move.error });
}

// ---- helpers -----------------------------------------------------------------------

/** The tenant, still on the move's source model; otherwise the move fails (and this returns undefined). */
async function requireSource(ctx: MoveContext, move: TenantMove): Promise<Tenant | undefined> {
  const tenant = await loadTenant(ctx.db, move.tenant_id);
  if (tenant && tenant.status !== 'deleted' && tenant.isolation === move.from_isolation) return tenant;
  await fail(ctx.db, move, tenant ? `the tenant is ${tenant.status} on ${tenant.isolation} isolation` : 'the tenant no longer exists');
  return undefined;
}

/** The source (where the tenant row says) and the target (where the move row says), both as the tenant's own role. */
async function withStores<T>(ctx: MoveContext, move: TenantMove, tenant: Tenant, fn: (source: AttachedStore, target: AttachedStore) => Promise<T>): Promise<T> {
  const sourceDriver: IsolationDriver = ctx.isolation.driver(move.from_isolation);
  const sourcePlacement: Placement = placementOf(sourceDriver.placementColumns, tenant);
  const source = await sourceDriver.attach(move.tenant_id, sourcePlacement);
  try {
    const target = await ctx.isolation.driver(move.to_isolation).attach(move.tenant_id, loadPlacement(move.target_placement!));
    try {
      return await fn(source, target);
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}

async function fail(db: Db, move: TenantMove, error: string, set: { verification?: string } = {}): Promise<void> {
  await advance(db, move, 'failed', { error }, { error: error.slice(0, MAX_ERROR_LENGTH), ...set });
}

/**
 * Move to state `to` (only from the state the caller saw: a concurrent run that got
 * there first makes this throw), record the step, and optionally an audit entry, in one
 * transaction.
 */
async function advance(
  db: Db,
  move: TenantMove,
  to: MoveStatus,
  detail: Record<string, unknown>,
  set: Record<string, unknown> = {},
  audit?: { action: string; data: Record<string, unknown> },
): Promise<void> {
  await db.transaction().execute(async (trx: Transaction<Database>) => {
    const updated = await trx
      .updateTable('tenant_moves')
      // `set`: columns of tenant_moves, as this file writes them.
      .set({ ...(set as object), status: to, updated_at: sql`now()` })
      .where('id', '=', move.id)
      .where('status', '=', move.status)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) !== 1) throw new Error(`move ${move.id} is no longer ${move.status}`);
    await trx.insertInto('tenant_move_steps').values({ move_id: move.id, status: to, detail: JSON.stringify(detail) }).execute();
    if (audit) await appendAudit(trx, { actor: ACTOR, action: audit.action, tenantId: move.tenant_id, data: audit.data });
  });
}

function loadMove(db: Db, moveId: string): Promise<TenantMove | undefined> {
  return db.selectFrom('tenant_moves').selectAll().where('id', '=', moveId).executeTakeFirst();
}

function loadTenant(db: Db, tenantId: string): Promise<Tenant | undefined> {
  return db.selectFrom('tenants').selectAll().where('id', '=', tenantId).executeTakeFirst();
}

/** Hold the move's session advisory lock while `fn` runs (on a connection of its own); `busy` if another run holds it. */
async function withMoveLock(db: Db, moveId: string, fn: () => Promise<MoveOutcome>): Promise<MoveOutcome> {
  const key = sql`hashtextextended(${`tenant-move:${moveId}`}, 0)`;
  return db.connection().execute(async (conn) => {
    const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_lock(${key}) as locked`.execute(conn);
    if (!rows[0]?.locked) return { status: 'busy' as const };
    try {
      return await fn();
    } finally {
      await sql`select pg_advisory_unlock(${key})`.execute(conn).catch(() => undefined);
    }
  });
}

function interruptible(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new MoveInterrupted('worker is shutting down');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function describe(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, MAX_ERROR_LENGTH);
}
