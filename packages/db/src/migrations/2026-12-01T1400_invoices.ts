import { type Kysely, sql } from 'kysely';

/**
 * Invoices (the month close) and what they are computed from.
 *
 * - tenant_billing_history: each tenant's lifecycle status, plan and price book version
 *   over time, one row per change, so a month can be cut into plan segments and suspended
 *   intervals long after the fact (billing_states is deleted on purge; the audit log is
 *   not a timeline). Written by triggers on tenants and billing_states, in the same
 *   transaction as the change, whichever code path makes it — the api's lifecycle routes,
 *   billing-state changes (admin and Stripe), the worker's saga, trial expiry and purge.
 *   Existing tenants get one row with their current state from their creation.
 * - usage_hourly learns the `availability` meter: health probes per hour by status class
 *   (`up` | `down`), whose ratio is the month's measured availability.
 * - invoices: finalized invoices and voids, each with its canonical JSON document, never
 *   changed once written (a trigger refuses it: a correction is a void plus a new
 *   invoice). Only the first rendering of its PDF may be added (with its sha256), and the
 *   void that cancels it recorded, once. One live (finalized, not voided) invoice per
 *   tenant and month.
 * - invoice_counters: the gapless number sequence per year, advanced in the transaction
 *   that inserts the invoice (a rolled-back insert rolls the number back too).
 * - billing_closes: which months have been closed, when, and whether forced.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table tenant_billing_history (
      id bigint generated always as identity primary key,
      tenant_id uuid not null references tenants (id) on delete cascade,
      at timestamptz not null,
      status text not null,
      plan text not null,
      plan_version integer not null
    )`.execute(db);
  await sql`create index tenant_billing_history_tenant_at on tenant_billing_history (tenant_id, at, id)`.execute(db);

  // The tenant's row lock serialises the writers of one tenant's history (a lifecycle change
  // and a plan change at once); the state is then read in a statement of its own, so it sees
  // what the other writer committed. clock_timestamp(), not now(): taken under that lock, it
  // orders the rows as the changes really happened, whenever their transactions began.
  await sql`
    create function tenantry_record_billing_history(tid uuid) returns void language plpgsql as $$
    declare
      cur record;
      prev record;
    begin
      perform 1 from tenants where id = tid for update;
      select t.status, coalesce(b.plan, t.plan) as plan, coalesce(b.plan_version, 1) as plan_version
        into cur
        from tenants t left join billing_states b on b.tenant_id = t.id
        where t.id = tid;
      if not found then
        return;
      end if;
      select h.status, h.plan, h.plan_version into prev
        from tenant_billing_history h where h.tenant_id = tid order by h.at desc, h.id desc limit 1;
      if not found or (prev.status, prev.plan, prev.plan_version) is distinct from (cur.status, cur.plan, cur.plan_version) then
        insert into tenant_billing_history (tenant_id, at, status, plan, plan_version)
        values (tid, clock_timestamp(), cur.status, cur.plan, cur.plan_version);
      end if;
    end
    $$`.execute(db);
  await sql`
    create function tenantry_tenant_billing_history() returns trigger language plpgsql as $$
    begin
      perform tenantry_record_billing_history(new.id);
      return null;
    end
    $$`.execute(db);
  await sql`
    create function tenantry_billing_state_history() returns trigger language plpgsql as $$
    begin
      perform tenantry_record_billing_history(new.tenant_id);
      return null;
    end
    $$`.execute(db);
  await sql`create trigger tenants_billing_history_insert after insert on tenants for each row execute function tenantry_tenant_billing_history()`.execute(db);
  await sql`
    create trigger tenants_billing_history_update after update of status, plan on tenants for each row
    when (old.status is distinct from new.status or old.plan is distinct from new.plan)
    execute function tenantry_tenant_billing_history()`.execute(db);
  await sql`create trigger billing_states_history_insert after insert on billing_states for each row execute function tenantry_billing_state_history()`.execute(db);
  // Only plan changes: a subscription-state change must not take the tenant's row lock too.
  await sql`
    create trigger billing_states_history_update after update of plan, plan_version on billing_states for each row
    when (old.plan is distinct from new.plan or old.plan_version is distinct from new.plan_version)
    execute function tenantry_billing_state_history()`.execute(db);
  await sql`
    insert into tenant_billing_history (tenant_id, at, status, plan, plan_version)
    select t.id, t.created_at, t.status, coalesce(b.plan, t.plan), coalesce(b.plan_version, 1)
    from tenants t left join billing_states b on b.tenant_id = t.id`.execute(db);

  await sql`alter table usage_hourly drop constraint usage_hourly_meter_check`.execute(db);
  await sql`
    alter table usage_hourly add constraint usage_hourly_meter_check
    check (meter in ('apiRequests', 'egressBytes', 'storageBytes', 'fileStorageBytes', 'realtimeConnections', 'availability'))`.execute(db);

  await sql`create table invoice_counters (year integer primary key, last_number bigint not null check (last_number > 0))`.execute(db);
  await sql`
    create table invoices (
      id uuid primary key default gen_random_uuid(),
      seq bigint generated always as identity,
      number text not null,
      tenant_id uuid not null references tenants (id),
      month text not null check (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
      status text not null check (status in ('finalized', 'void')),
      currency text not null,
      total_minor bigint not null,
      issued_at timestamptz not null,
      document jsonb not null,
      voids_id uuid references invoices (id),
      replaces_id uuid references invoices (id),
      voided_by_id uuid references invoices (id),
      reason text check (length(reason) <= 500),
      pdf bytea,
      pdf_sha256 bytea,
      created_at timestamptz not null default now(),
      constraint invoices_number_key unique (number),
      constraint invoices_seq_key unique (seq),
      constraint invoices_void_names_its_invoice check ((status = 'void') = (voids_id is not null)),
      constraint invoices_pdf_with_digest check ((pdf is null) = (pdf_sha256 is null))
    )`.execute(db);
  await sql`create unique index invoices_one_live_per_month on invoices (tenant_id, month) where status = 'finalized' and voided_by_id is null`.execute(db);
  await sql`create index invoices_tenant_seq on invoices (tenant_id, seq)`.execute(db);
  await sql`create index invoices_month on invoices (month, tenant_id) where status = 'finalized'`.execute(db);
  // The references between invoices (a void, a replacement), few and never deleted; indexed
  // like every foreign key.
  await sql`create index invoices_voids_id on invoices (voids_id) where voids_id is not null`.execute(db);
  await sql`create index invoices_replaces_id on invoices (replaces_id) where replaces_id is not null`.execute(db);
  await sql`create index invoices_voided_by_id on invoices (voided_by_id) where voided_by_id is not null`.execute(db);
  await sql`
    create function tenantry_invoice_is_immutable() returns trigger language plpgsql as $$
    begin
      if tg_op <> 'UPDATE' then
        raise exception 'invoices are never removed (% refused): void them', tg_op using errcode = 'insufficient_privilege';
      end if;
      if (new.id, new.seq, new.number, new.tenant_id, new.month, new.status, new.currency, new.total_minor, new.issued_at,
          new.document, new.voids_id, new.replaces_id, new.reason, new.created_at)
         is distinct from
         (old.id, old.seq, old.number, old.tenant_id, old.month, old.status, old.currency, old.total_minor, old.issued_at,
          old.document, old.voids_id, old.replaces_id, old.reason, old.created_at) then
        raise exception 'invoice % is final and never changes: void it and issue a new one', old.number using errcode = 'insufficient_privilege';
      end if;
      if old.voided_by_id is not null and new.voided_by_id is distinct from old.voided_by_id then
        raise exception 'invoice % is voided already', old.number using errcode = 'insufficient_privilege';
      end if;
      if old.pdf is not null and (new.pdf is distinct from old.pdf or new.pdf_sha256 is distinct from old.pdf_sha256) then
        raise exception 'the PDF of invoice % is stored already and never changes', old.number using errcode = 'insufficient_privilege';
      end if;
      return new;
    end
    $$`.execute(db);
  await sql`create trigger invoices_immutable before update or delete on invoices for each row execute function tenantry_invoice_is_immutable()`.execute(db);
  await sql`create trigger invoices_no_truncate before truncate on invoices for each statement execute function tenantry_invoice_is_immutable()`.execute(db);

  await sql`
    create table billing_closes (
      month text primary key check (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
      first_closed_at timestamptz not null,
      last_closed_at timestamptz not null,
      forced boolean not null default false,
      invoices integer not null default 0
    )`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('billing_closes').ifExists().execute();
  await db.schema.dropTable('invoices').ifExists().execute();
  await sql`drop function if exists tenantry_invoice_is_immutable()`.execute(db);
  await db.schema.dropTable('invoice_counters').ifExists().execute();
  await sql`delete from usage_hourly where meter = 'availability'`.execute(db);
  await sql`alter table usage_hourly drop constraint usage_hourly_meter_check`.execute(db);
  await sql`
    alter table usage_hourly add constraint usage_hourly_meter_check
    check (meter in ('apiRequests', 'egressBytes', 'storageBytes', 'fileStorageBytes', 'realtimeConnections'))`.execute(db);
  await sql`drop trigger if exists billing_states_history_update on billing_states`.execute(db);
  await sql`drop trigger if exists billing_states_history_insert on billing_states`.execute(db);
  await sql`drop trigger if exists tenants_billing_history_update on tenants`.execute(db);
  await sql`drop trigger if exists tenants_billing_history_insert on tenants`.execute(db);
  await sql`drop function if exists tenantry_billing_state_history()`.execute(db);
  await sql`drop function if exists tenantry_tenant_billing_history()`.execute(db);
  await sql`drop function if exists tenantry_record_billing_history(uuid)`.execute(db);
  await db.schema.dropTable('tenant_billing_history').ifExists().execute();
}
