import { type Kysely, sql } from 'kysely';

/**
 * Outgoing webhooks: endpoints (secret encrypted at rest), an outbox of events written in
 * the same transaction as the change they announce, one delivery per (event, endpoint) —
 * its id is the stable `webhook-id` — and every attempt made.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table webhook_endpoints (
      id uuid primary key default gen_random_uuid(),
      url text not null check (length(url) <= 2048),
      description text check (length(description) <= 200),
      events text[] check (events is null or cardinality(events) > 0),
      secret_enc bytea not null,
      status text not null default 'enabled' check (status in ('enabled', 'disabled')),
      disabled_reason text,
      failing_since timestamptz,
      created_by text not null,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )`.execute(db);
  await sql`
    create table webhook_events (
      id uuid primary key default gen_random_uuid(),
      type text not null,
      tenant_id uuid,
      payload jsonb not null,
      created_at timestamptz not null default now()
    )`.execute(db);
  await sql`create index webhook_events_tenant_idx on webhook_events (tenant_id, created_at)`.execute(db);
  await sql`
    create table webhook_deliveries (
      id uuid primary key default gen_random_uuid(),
      event_id uuid not null references webhook_events (id) on delete cascade,
      endpoint_id uuid not null references webhook_endpoints (id) on delete cascade,
      status text not null default 'pending' check (status in ('pending', 'delivered', 'failed', 'cancelled')),
      attempts integer not null default 0,
      next_attempt_at timestamptz not null default now(),
      last_attempt_at timestamptz,
      delivered_at timestamptz,
      created_at timestamptz not null default now(),
      constraint webhook_deliveries_event_endpoint_key unique (event_id, endpoint_id)
    )`.execute(db);
  await sql`create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt_at) where status = 'pending'`.execute(db);
  await sql`create index webhook_deliveries_endpoint_idx on webhook_deliveries (endpoint_id) where status = 'pending'`.execute(db);
  await sql`
    create table webhook_attempts (
      id bigint generated always as identity primary key,
      delivery_id uuid not null references webhook_deliveries (id) on delete cascade,
      attempt integer not null,
      at timestamptz not null default now(),
      status_code integer,
      error text,
      duration_ms integer not null
    )`.execute(db);
  await sql`create index webhook_attempts_delivery_idx on webhook_attempts (delivery_id, attempt)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('webhook_attempts').ifExists().execute();
  await db.schema.dropTable('webhook_deliveries').ifExists().execute();
  await db.schema.dropTable('webhook_events').ifExists().execute();
  await db.schema.dropTable('webhook_endpoints').ifExists().execute();
}
