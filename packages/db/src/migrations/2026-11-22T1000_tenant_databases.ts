import { type Kysely, sql } from 'kysely';

/**
 * Placement of database-isolated tenants: which server holds the tenant's database, its
 * name, its login role, and the role's password encrypted with AES-256-GCM
 * (iv ‖ tag ‖ ciphertext; the key is TENANT_SECRET_KEY and never stored). All null for
 * schema tenants, and cleared again when a tenant is purged.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    alter table tenants
      add column database_server text,
      add column database_name text,
      add column database_role text,
      add column database_password_enc bytea`.execute(db);
  await sql`create unique index tenants_database_name_idx on tenants (database_server, database_name) where database_name is not null`.execute(db);
  // Placement counts tenants per server.
  await sql`create index tenants_database_server_idx on tenants (database_server) where database_server is not null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index if exists tenants_database_server_idx`.execute(db);
  await sql`drop index if exists tenants_database_name_idx`.execute(db);
  await sql`
    alter table tenants
      drop column if exists database_server,
      drop column if exists database_name,
      drop column if exists database_role,
      drop column if exists database_password_enc`.execute(db);
}
