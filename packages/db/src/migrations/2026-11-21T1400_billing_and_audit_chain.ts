import { type Kysely, sql } from 'kysely';

/**
 * Billing state overrides and history, Stripe event bookkeeping, and a tamper-evident
 * audit log: every entry carries the SHA-256 of its content chained to the previous
 * entry's hash, so an edited, deleted or reordered entry breaks the chain from there on.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    alter table billing_states
      add column capabilities jsonb,
      add column limits jsonb,
      add column state_before_suspension text check (state_before_suspension in ('trial', 'active', 'grace', 'expired')),
      add column last_event_at timestamptz`.execute(db);

  // One row per Stripe event id: a replay finds its row and changes nothing.
  await sql`
    create table billing_events (
      event_id text primary key,
      type text not null,
      tenant_id uuid,
      occurred_at timestamptz not null,
      received_at timestamptz not null default now(),
      outcome text not null
    )`.execute(db);

  // --- the audit chain -------------------------------------------------------------------
  await sql`alter table audit_log add column chain_seq bigint, add column prev_hash bytea, add column hash bytea`.execute(db);
  // The head of the chain: one row. Updating it under its row lock serialises writers in
  // commit order, so chain_seq is gap-free and each entry links to the one committed before.
  await sql`
    create table audit_chain_head (
      singleton boolean primary key default true check (singleton),
      seq bigint not null,
      hash bytea not null
    )`.execute(db);

  // The exact bytes an entry's hash covers. Text forms are fixed (UTC timestamp, jsonb's
  // canonical text), so the verifier recomputes the same value on any server.
  await sql`
    create function tenantry_audit_digest(prev bytea, seq bigint, at timestamptz, actor text, action text, tenant_id uuid, data jsonb)
    returns bytea language sql immutable parallel safe as $$
      select sha256(prev || convert_to(
        seq::text || '|' || to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '|' || actor || '|' || action
          || '|' || coalesce(tenant_id::text, '') || '|' || data::text,
        'UTF8'))
    $$`.execute(db);

  // Backfill: chain what is already there, in insertion order.
  await sql`
    with ordered as (select id, row_number() over (order by id) as seq from audit_log)
    update audit_log a set chain_seq = o.seq from ordered o where a.id = o.id`.execute(db);
  await sql`alter table audit_log disable trigger audit_log_no_update_delete`.execute(db);
  await sql`
    do $$
    declare
      r record;
      prev bytea := '\\x'::bytea;
    begin
      for r in select * from audit_log order by chain_seq loop
        update audit_log set prev_hash = prev,
          hash = tenantry_audit_digest(prev, r.chain_seq, r.at, r.actor, r.action, r.tenant_id, r.data)
        where id = r.id
        returning hash into prev;
      end loop;
      insert into audit_chain_head (seq, hash) values ((select count(*) from audit_log), prev);
    end
    $$`.execute(db);
  await sql`alter table audit_log enable trigger audit_log_no_update_delete`.execute(db);
  await sql`alter table audit_log alter column chain_seq set not null, alter column prev_hash set not null, alter column hash set not null`.execute(
    db,
  );
  await sql`alter table audit_log add constraint audit_log_chain_seq_key unique (chain_seq)`.execute(db);

  // Runs as the inserting role (no SECURITY DEFINER): that role needs SELECT and UPDATE on
  // the one-row head, which reveals nothing but the latest hash.
  await sql`
    create function tenantry_audit_chain() returns trigger language plpgsql as $$
    declare
      head audit_chain_head%rowtype;
    begin
      select * into head from audit_chain_head for update;
      new.chain_seq := head.seq + 1;
      new.prev_hash := head.hash;
      new.hash := tenantry_audit_digest(head.hash, new.chain_seq, new.at, new.actor, new.action, new.tenant_id, new.data);
      update audit_chain_head set seq = new.chain_seq, hash = new.hash;
      return new;
    end
    $$`.execute(db);
  await sql`create trigger audit_log_chain before insert on audit_log for each row execute function tenantry_audit_chain()`.execute(db);

  // The data role may append to the audit log and nothing else: no SELECT, UPDATE or DELETE.
  await sql`grant insert on audit_log to tenantry_data`.execute(db);
  await sql`grant select, update on audit_chain_head to tenantry_data`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`revoke all on audit_log from tenantry_data`.execute(db);
  await sql`drop trigger if exists audit_log_chain on audit_log`.execute(db);
  await sql`drop function if exists tenantry_audit_chain()`.execute(db);
  await sql`drop function if exists tenantry_audit_digest(bytea, bigint, timestamptz, text, text, uuid, jsonb)`.execute(db);
  await db.schema.dropTable('audit_chain_head').ifExists().execute();
  await sql`alter table audit_log drop column chain_seq, drop column prev_hash, drop column hash`.execute(db);
  await db.schema.dropTable('billing_events').ifExists().execute();
  await sql`
    alter table billing_states
      drop column capabilities, drop column limits, drop column state_before_suspension, drop column last_event_at`.execute(db);
}
