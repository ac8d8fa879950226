import { createDb, migrateToLatest } from '@tenantry/db';
import type pg from 'pg';
import type { TestProject } from 'vitest/node';
import { withAdmin } from './admin.js';
import { databaseUrl } from './env.js';
import { APPS_BUILT_ENV, ensureAppsBuilt } from './process.js';
import { dropTenantDatabasesOf } from './tenant-databases.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The migrated template of this run, which each test file clones. */
    templateDatabase: string;
  }
}

/** Databases of a run carry the pid of its vitest process: tenantry_t_<pid>_… and tenantry_tpl_<pid>. */
const RUN_DATABASE = /^tenantry_(?:t|tpl)_(\d+)(?:_|$)/;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function dropDatabases(client: pg.Client, names: string[]): Promise<void> {
  for (const name of names) {
    // First the tenant databases and roles (cluster-wide) its tenants were given.
    if (name.startsWith('tenantry_t_')) await dropTenantDatabasesOf(name).catch(() => undefined);
    await client.query(`drop database if exists ${client.escapeIdentifier(name)} with (force)`);
  }
}

/**
 * Once per run: build this run's migrated template (CREATE DATABASE … TEMPLATE is a file
 * copy, far faster than migrating per file), and drop what runs that no longer exist left
 * behind — never the databases of a run still going in another shell.
 */
export default async function setup(project: TestProject) {
  const template = `tenantry_tpl_${process.pid}`;
  await withAdmin(async (client) => {
    const { rows } = await client.query<{ datname: string }>("select datname from pg_database where datname like 'tenantry\\_%'");
    const stale = rows
      .map((r) => r.datname)
      .filter((name) => {
        const pid = RUN_DATABASE.exec(name)?.[1];
        return pid !== undefined && (Number(pid) === process.pid || !isAlive(Number(pid)));
      });
    await dropDatabases(client, stale);
    await client.query(`create database ${client.escapeIdentifier(template)}`);
  });
  const db = createDb(databaseUrl(template), { maxConnections: 1 });
  try {
    await migrateToLatest(db);
  } finally {
    await db.destroy();
  }
  project.provide('templateDatabase', template);
  // The apps as production runs them, built once for every test file that starts one as a
  // process (test/support/process.ts); the test files inherit this environment.
  await ensureAppsBuilt();
  process.env[APPS_BUILT_ENV] = '1';

  return async function teardown() {
    await withAdmin(async (client) => {
      const { rows } = await client.query<{ datname: string }>('select datname from pg_database where datname like $1 or datname = $2', [
        `tenantry\\_t\\_${process.pid}\\_%`,
        template,
      ]);
      await dropDatabases(
        client,
        rows.map((r) => r.datname),
      );
    });
  };
}
