import { type Kysely, sql } from 'kysely';

/**
 * Online moves of a tenant between isolation models.
 *
 * - tenants.placement_generation: bumped by every routing switch, so a per-tenant pool
 *   opened for an older placement is never reused for the new one (a tenant can move away
 *   and back to a database of the same name with a new password).
 * - tenants.writes_paused_at: set while a move's cutover runs; tenant writes wait (then
 *   503 tenant_moving) until the switch clears it. Reads are not affected. The source's
 *   own write privileges are what really stop writes (see the drivers' freeze); this only
 *   keeps writers from queueing on it.
 * - tenant_moves: one row per move, the state machine's truth. The target's placement is
 *   kept here (not on the tenant row) until the switch copies it over in one transaction;
 *   the source's placement is kept here after the switch, until the source is dropped.
 *   At most one open move per tenant (partial unique index).
 * - tenant_move_steps: every transition with its time and details, for operators.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    alter table tenants
      add column placement_generation integer not null default 0,
      add column writes_paused_at timestamptz`.execute(db);

  await sql`
    create table tenant_moves (
      id uuid primary key default gen_random_uuid(),
      tenant_id uuid not null references tenants (id) on delete cascade,
      from_isolation text not null check (from_isolation in ('schema', 'database', 'cluster')),
      to_isolation text not null check (to_isolation in ('schema', 'database', 'cluster')),
      status text not null default 'pending'
        check (status in ('pending', 'copying', 'cutover', 'verifying', 'done', 'failed', 'rolled_back')),
      target_placement jsonb,
      source_placement jsonb,
      error text,
      requested_by text not null,
      copy_passes integer not null default 0,
      rows_copied bigint not null default 0,
      cutover_attempts integer not null default 0,
      verification jsonb,
      paused_at timestamptz,
      switched_at timestamptz,
      write_pause_ms integer,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      finished_at timestamptz,
      check (from_isolation <> to_isolation)
    )`.execute(db);
  await sql`create unique index tenant_moves_one_open_idx on tenant_moves (tenant_id) where status not in ('done', 'rolled_back')`.execute(db);
  await sql`create index tenant_moves_tenant_idx on tenant_moves (tenant_id, created_at)`.execute(db);
  // The reconciler's scan: open moves nobody has touched for a while.
  await sql`create index tenant_moves_open_idx on tenant_moves (updated_at) where status not in ('done', 'rolled_back')`.execute(db);

  await sql`
    create table tenant_move_steps (
      id bigint generated always as identity primary key,
      move_id uuid not null references tenant_moves (id) on delete cascade,
      status text not null,
      at timestamptz not null default clock_timestamp(),
      detail jsonb not null default '{}'
    )`.execute(db);
  await sql`create index tenant_move_steps_move_idx on tenant_move_steps (move_id, id)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('tenant_move_steps').ifExists().execute();
  await db.schema.dropTable('tenant_moves').ifExists().execute();
  await sql`alter table tenants drop column if exists writes_paused_at, drop column if exists placement_generation`.execute(db);
}
