import { randomBytes } from 'node:crypto';
import { type Db, createDb } from '@tenantry/db';
import { inject } from 'vitest';
import { withAdmin } from './admin.js';
import { databaseUrl } from './env.js';
import { dropTenantDatabasesOf } from './tenant-databases.js';

export interface TestDatabase {
  name: string;
  url: string;
  /** A superuser connection for assertions and fault injection. */
  db: Db;
  /** Drop it, and first the tenant databases and roles its tenants and signups name. */
  drop(): Promise<void>;
}

/** A fresh database cloned from the migrated template: one per test file. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const template = inject('templateDatabase');
  // The run's pid (in the template's name) marks the database as this run's, for cleanup.
  const name = `tenantry_t_${template.replace('tenantry_tpl_', '')}_${randomBytes(6).toString('hex')}`;
  await withAdmin(async (client) => {
    // Two files cloning the template at the same instant: Postgres refuses a template that
    // is in use, so retry briefly.
    for (let attempt = 0; ; attempt++) {
      try {
        await client.query(`create database ${client.escapeIdentifier(name)} template ${client.escapeIdentifier(template)}`);
        return;
      } catch (err) {
        if ((err as { code?: string }).code !== '55006' || attempt >= 50) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  });
  const url = databaseUrl(name);
  const db = createDb(url, { maxConnections: 3, applicationName: 'tenantry-test' });
  return {
    name,
    url,
    db,
    async drop() {
      await db.destroy();
      // Tenant databases live outside this one: a file that made database tenants and did
      // not drop them itself (the shared stack, say) left them behind, run after run.
      await dropTenantDatabasesOf(name);
      await withAdmin((client) => client.query(`drop database if exists ${client.escapeIdentifier(name)} with (force)`));
    },
  };
}
