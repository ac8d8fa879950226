import { type Kysely, sql } from 'kysely';

/**
 * Usage metering: one set of hourly rollups that quotas, the usage API, invoices and charts
 * all read. No raw per-request rows are ever kept.
 *
 * - usage_hourly: per tenant, meter, UTC hour and dimensions (route template, method and
 *   status class for apiRequests; empty otherwise). Counters add to `count`; gauges keep
 *   the hour's peak (`max_value`), the value in effect at its end (`last_value`) and
 *   their integral over the sampled time (`value_seconds` over `covered_seconds`: the
 *   time-weighted average).
 * - usage_gauges: each gauge's latest sample per tenant, from which the next sample
 *   integrates.
 * - usage_instances: per api instance, the last flush sequence applied (flushes are
 *   idempotent: a retried flush whose first attempt did commit changes nothing) and up to
 *   when its counts are in (asOf).
 * - pg_freespacemap: storageBytes leaves out space Postgres has marked reusable, read from
 *   the free space map (no row is read).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create extension if not exists pg_freespacemap`.execute(db);

  await sql`
    create table usage_hourly (
      tenant_id uuid not null references tenants (id) on delete cascade,
      meter text not null check (meter in ('apiRequests', 'egressBytes', 'storageBytes', 'fileStorageBytes', 'realtimeConnections')),
      hour timestamptz not null check (extract(epoch from hour)::bigint % 3600 = 0),
      route text not null default '',
      method text not null default '',
      status_class text not null default '',
      count bigint not null default 0 check (count >= 0),
      max_value bigint check (max_value >= 0),
      last_value bigint check (last_value >= 0),
      value_seconds numeric not null default 0 check (value_seconds >= 0),
      covered_seconds numeric not null default 0 check (covered_seconds >= 0),
      primary key (tenant_id, meter, hour, route, method, status_class)
    )`.execute(db);

  await sql`
    create table usage_gauges (
      tenant_id uuid not null references tenants (id) on delete cascade,
      meter text not null check (meter in ('storageBytes', 'fileStorageBytes', 'realtimeConnections')),
      value bigint not null check (value >= 0),
      sampled_at timestamptz not null,
      primary key (tenant_id, meter)
    )`.execute(db);

  await sql`
    create table usage_instances (
      instance_id uuid primary key,
      last_seq bigint not null,
      flushed_up_to timestamptz not null,
      seen_at timestamptz not null default now()
    )`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('usage_instances').ifExists().execute();
  await db.schema.dropTable('usage_gauges').ifExists().execute();
  await db.schema.dropTable('usage_hourly').ifExists().execute();
}
