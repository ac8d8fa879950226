import { type Kysely, sql } from 'kysely';

/** The worker's latest health probe of each tenant's store. */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table tenant_health (
      tenant_id uuid primary key references tenants (id) on delete cascade,
      last_probe_at timestamptz not null,
      last_success_at timestamptz,
      last_failure_at timestamptz,
      last_error text,
      consecutive_failures integer not null default 0
    )`.execute(db);
  await sql`create index tenant_health_failing_idx on tenant_health (last_failure_at) where consecutive_failures > 0`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('tenant_health').ifExists().execute();
}
