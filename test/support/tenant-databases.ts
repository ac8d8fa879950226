import pg from 'pg';
import { withAdmin } from './admin.js';
import { databaseUrl } from './env.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Tenant databases and roles are cluster-wide, but their names (td_/tr_ + the tenant id)
 * are recorded in the control-plane database of the run that made them: every tenant id
 * of that database (tenants and signups, so failed attempts too) names what to drop.
 * Used by test files after themselves, and by global setup for runs that died.
 */
export async function dropTenantDatabasesOf(controlPlaneDatabase: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl(controlPlaneDatabase) });
  let ids: string[] = [];
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string }>(
      `select id::text from tenants union select tenant_id::text from signups`,
    );
    ids = rows.map((r) => r.id).filter((id) => UUID.test(id));
  } catch (err) {
    // Not migrated (yet): nothing of ours can be in it.
    if ((err as { code?: string }).code !== '42P01') throw err;
  } finally {
    await client.end();
  }
  const dropped: string[] = [];
  await withAdmin(async (admin) => {
    for (const id of ids) {
      const hex = id.replaceAll('-', '');
      const { rows } = await admin.query<{ name: string; kind: string }>(
        `select datname as name, 'database' as kind from pg_database where datname = $1
         union all select rolname, 'role' from pg_roles where rolname = $2`,
        [`td_${hex}`, `tr_${hex}`],
      );
      for (const row of rows.filter((r) => r.kind === 'database')) {
        await admin.query(`drop database if exists ${admin.escapeIdentifier(row.name)} with (force)`);
        dropped.push(row.name);
      }
      for (const row of rows.filter((r) => r.kind === 'role')) {
        await admin.query(`drop role if exists ${admin.escapeIdentifier(row.name)}`);
        dropped.push(row.name);
      }
    }
  });
  return dropped;
}
