import { type Kysely, sql } from 'kysely';

/**
 * The control plane's first tables. Frozen once released: later changes are new
 * migrations. Takes Kysely<any> on purpose, so today's types never rewrite history.
 */
export async function up(db: Kysely<any>): Promise<void> {
  // The role tenant data is read and written as. It owns nothing, logs in nowhere, and
  // can neither bypass row-level security nor TRUNCATE (which ignores RLS). The api
  // switches to it with SET LOCAL ROLE inside each tenant transaction. Roles are
  // cluster-wide, so create it only if another database has not already.
  await sql`
    do $$
    begin
      if not exists (select from pg_roles where rolname = 'tenantry_data') then
        create role tenantry_data nologin nosuperuser nocreatedb nocreaterole noinherit nobypassrls;
      end if;
    end
    $$`.execute(db);
  await sql`grant tenantry_data to current_user`.execute(db);

  await sql`
    create table tenants (
      id uuid primary key,
      slug text not null,
      name text not null,
      status text not null check (status in ('provisioning', 'active', 'suspended', 'pending_deletion', 'deleted')),
      plan text not null,
      isolation text not null check (isolation in ('schema', 'database', 'cluster')),
      schema_name text check (schema_name ~ '^t_[0-9a-f]{32}$'),
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      constraint tenants_slug_key unique (slug)
    )`.execute(db);

  await sql`
    create table users (
      id uuid primary key default gen_random_uuid(),
      email text not null check (email = lower(btrim(email)) and length(email) <= 254),
      password_hash text not null,
      created_at timestamptz not null default now(),
      constraint users_email_key unique (email)
    )`.execute(db);

  await sql`
    create table memberships (
      user_id uuid not null references users (id) on delete cascade,
      tenant_id uuid not null references tenants (id) on delete cascade,
      role text not null check (role in ('owner', 'admin', 'member')),
      created_at timestamptz not null default now(),
      primary key (user_id, tenant_id)
    )`.execute(db);
  await sql`create index memberships_tenant_idx on memberships (tenant_id)`.execute(db);

  await sql`
    create table signups (
      id uuid primary key default gen_random_uuid(),
      email text not null check (email = lower(btrim(email))),
      org_name text not null,
      isolation text not null check (isolation in ('schema', 'database', 'cluster')),
      password_hash text,
      status text not null check (status in ('pending', 'provisioning', 'ready', 'failed')),
      tenant_id uuid not null,
      generation integer not null default 1,
      last_error text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      constraint signups_email_key unique (email)
    )`.execute(db);
  // The reconciler scans for signups stuck in a non-final state.
  await sql`create index signups_unfinished_idx on signups (updated_at) where status in ('pending', 'provisioning')`.execute(db);

  await sql`
    create table billing_states (
      tenant_id uuid primary key references tenants (id) on delete cascade,
      plan text not null,
      subscription_state text not null check (subscription_state in ('trial', 'active', 'grace', 'expired', 'suspended')),
      trial_ends_at timestamptz,
      plan_version integer not null default 1,
      updated_at timestamptz not null default now()
    )`.execute(db);

  await sql`
    create table provisioning_steps (
      tenant_id uuid not null references tenants (id) on delete cascade,
      step text not null,
      completed_at timestamptz not null default now(),
      primary key (tenant_id, step)
    )`.execute(db);

  await sql`
    create table sessions (
      id uuid primary key default gen_random_uuid(),
      token_hash bytea not null,
      user_id uuid not null references users (id) on delete cascade,
      tenant_id uuid not null references tenants (id) on delete cascade,
      expires_at timestamptz not null,
      created_at timestamptz not null default now(),
      constraint sessions_token_hash_key unique (token_hash)
    )`.execute(db);

  // Append-only: no foreign key to tenants, because the trail outlives the tenant.
  await sql`
    create table audit_log (
      id bigint generated always as identity primary key,
      at timestamptz not null default now(),
      actor text not null,
      action text not null,
      tenant_id uuid,
      data jsonb not null default '{}'::jsonb
    )`.execute(db);
  await sql`create index audit_log_tenant_idx on audit_log (tenant_id, id)`.execute(db);
  await sql`
    create function tenantry_audit_log_is_append_only() returns trigger language plpgsql as $$
    begin
      raise exception 'audit_log is append-only (% refused)', tg_op using errcode = 'insufficient_privilege';
    end
    $$`.execute(db);
  await sql`
    create trigger audit_log_no_update_delete before update or delete on audit_log
    for each row execute function tenantry_audit_log_is_append_only()`.execute(db);
  await sql`
    create trigger audit_log_no_truncate before truncate on audit_log
    for each statement execute function tenantry_audit_log_is_append_only()`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['audit_log', 'sessions', 'provisioning_steps', 'billing_states', 'signups', 'memberships', 'users', 'tenants']) {
    await db.schema.dropTable(table).ifExists().cascade().execute();
  }
  await sql`drop function if exists tenantry_audit_log_is_append_only()`.execute(db);
}
