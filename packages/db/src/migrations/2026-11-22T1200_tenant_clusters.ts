import { type Kysely, sql } from 'kysely';

/**
 * Cluster isolation (a dedicated Postgres instance per tenant). The database_* placement
 * columns are reused (server = 127.0.0.1:<port>, database `tenant`, the tenant's login
 * role and its encrypted password); these add what only a cluster has: its data
 * directory, its port, and its superuser's password (AES-256-GCM like the role's).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    alter table tenants
      add column cluster_data_dir text,
      add column cluster_port integer,
      add column cluster_admin_password_enc bytea`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    alter table tenants
      drop column if exists cluster_data_dir,
      drop column if exists cluster_port,
      drop column if exists cluster_admin_password_enc`.execute(db);
}
