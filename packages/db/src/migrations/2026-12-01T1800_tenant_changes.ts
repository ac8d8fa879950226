import { type Kysely, sql } from 'kysely';

/**
 * Postgres announces every change that can alter what a tenant credential resolves to:
 * `NOTIFY tenantry_tenant_changes, '<tenant id>'`, delivered to every listener when (and
 * only if) the transaction commits. The api caches resolved credentials and drops a
 * tenant's entries on the announcement (apps/api/src/services/credential-cache.ts).
 *
 * Triggers rather than a publish call in each code path: suspension, deletion, restore,
 * purge, trial expiry, a move's write pause and switch, a failover, a logout, a revoked key
 * or a changed membership are made by the api, the worker and operators' SQL alike, and a
 * path that forgot to publish would leave a revoked credential working. A trigger cannot
 * be forgotten. The payload is the tenant id only (NOTIFY stops at 8,000 bytes), and these
 * rows change rarely, so NOTIFY's lock at commit costs nothing that matters.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create function tenantry_announce_tenant_change() returns trigger
    language plpgsql
    set search_path = pg_catalog, public
    as $$
    begin
      -- tenants has the id itself; sessions, memberships and tenant_api_keys name it.
      if tg_table_name = 'tenants' then
        perform pg_notify('tenantry_tenant_changes', old.id::text);
      else
        perform pg_notify('tenantry_tenant_changes', old.tenant_id::text);
      end if;
      return null;
    end
    $$`.execute(db);

  // A tenant: what a credential carries of it (slug for the hostname check, status,
  // routing, a move's pause). Other columns (name, plan, usage figures) change without it.
  await sql`
    create trigger tenants_announce_change
    after update on tenants
    for each row
    when ((old.slug, old.status, old.isolation, old.schema_name, old.placement_generation, old.writes_paused_at)
          is distinct from (new.slug, new.status, new.isolation, new.schema_name, new.placement_generation, new.writes_paused_at))
    execute function tenantry_announce_tenant_change()`.execute(db);
  await sql`create trigger tenants_announce_delete after delete on tenants for each row execute function tenantry_announce_tenant_change()`.execute(db);
  // Credentials: a new one needs no announcement (nothing cached it yet); a changed or
  // removed one does (logout, expiry moved, key revoked, role changed, member removed).
  await sql`create trigger sessions_announce_change after update or delete on sessions for each row execute function tenantry_announce_tenant_change()`.execute(db);
  await sql`create trigger tenant_api_keys_announce_change after update or delete on tenant_api_keys for each row execute function tenantry_announce_tenant_change()`.execute(db);
  await sql`create trigger memberships_announce_change after update or delete on memberships for each row execute function tenantry_announce_tenant_change()`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop trigger if exists memberships_announce_change on memberships`.execute(db);
  await sql`drop trigger if exists tenant_api_keys_announce_change on tenant_api_keys`.execute(db);
  await sql`drop trigger if exists sessions_announce_change on sessions`.execute(db);
  await sql`drop trigger if exists tenants_announce_delete on tenants`.execute(db);
  await sql`drop trigger if exists tenants_announce_change on tenants`.execute(db);
  await sql`drop function if exists tenantry_announce_tenant_change()`.execute(db);
}
