import { type Kysely, sql } from 'kysely';

/**
 * Replicated cluster tenants: every postmaster of a cluster tenant (its primary and its
 * streaming standbys) is a row of cluster_instances, and every failover a row of
 * cluster_failovers whose `step` records how far it got, so a worker that dies midway
 * leaves a failover the next one resumes. The tenants row keeps naming the primary in
 * database_server / cluster_port / cluster_data_dir (what requests route by); a failover
 * rewrites those, the instances' roles and its own step in one transaction.
 *
 * Existing cluster tenants get their one instance recorded as the primary (name 0, the
 * directory they already have); the worker adds their standbys on its next pass.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    alter table tenants
      add column cluster_replication_password_enc bytea,
      add column cluster_replicas integer check (cluster_replicas between 0 and 5),
      add column cluster_synchronous boolean,
      add column cluster_last_generation integer not null default 0`.execute(db);
  await sql`
    create table cluster_instances (
      id uuid primary key default gen_random_uuid(),
      tenant_id uuid not null references tenants (id) on delete cascade,
      generation integer not null check (generation >= 0),
      role text not null check (role in ('primary', 'standby')),
      state text not null check (state in ('creating', 'active', 'fenced')),
      port integer not null check (port between 1 and 65535),
      data_dir text not null,
      slot_name text,
      down_since timestamptz,
      observed_state text,
      observed_at timestamptz,
      lag_bytes bigint,
      lag_seconds double precision,
      sync_state text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      unique (tenant_id, generation)
    )`.execute(db);
  // The database itself refuses a second primary: whatever two workers race to do, one wins.
  await sql`create unique index cluster_instances_one_primary on cluster_instances (tenant_id) where role = 'primary' and state <> 'fenced'`.execute(db);
  await sql`
    create table cluster_failovers (
      id uuid primary key default gen_random_uuid(),
      tenant_id uuid not null references tenants (id) on delete cascade,
      step text not null check (step in ('fencing', 'promoting', 'switching', 'rebuilding', 'done', 'abandoned')),
      old_instance_id uuid,
      new_instance_id uuid,
      detected_at timestamptz not null,
      started_at timestamptz not null default now(),
      promoted_at timestamptz,
      switched_at timestamptz,
      finished_at timestamptz,
      last_error text
    )`.execute(db);
  await sql`create unique index cluster_failovers_one_open on cluster_failovers (tenant_id) where step not in ('done', 'abandoned')`.execute(db);
  await sql`create index cluster_failovers_tenant_idx on cluster_failovers (tenant_id, started_at desc)`.execute(db);
  await sql`
    insert into cluster_instances (tenant_id, generation, role, state, port, data_dir)
    select id, 0, 'primary', 'active', cluster_port, cluster_data_dir
    from tenants
    where isolation = 'cluster' and cluster_port is not null and cluster_data_dir is not null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('cluster_failovers').ifExists().execute();
  await db.schema.dropTable('cluster_instances').ifExists().execute();
  await sql`
    alter table tenants
      drop column if exists cluster_replication_password_enc,
      drop column if exists cluster_replicas,
      drop column if exists cluster_synchronous,
      drop column if exists cluster_last_generation`.execute(db);
}
