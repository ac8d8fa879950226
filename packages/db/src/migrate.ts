import { Migrator } from 'kysely';
import type { Db } from './client.js';
import { migrations } from './migrations/index.js';

/**
 * Bring the control-plane schema to the latest migration. Kysely's migrator takes a lock
 * in the database, so an api and a worker starting together migrate once.
 */
export async function migrateToLatest(db: Db): Promise<string[]> {
  return migrateUpTo(db, undefined);
}

/**
 * Bring the schema up to and including the migration `last` (all of them when undefined):
 * an installation as it was at that release, to test an upgrade from it.
 */
export async function migrateUpTo(db: Db, last: string | undefined): Promise<string[]> {
  if (last !== undefined && !(last in migrations)) throw new Error(`no migration named ${last}`);
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
  });
  const { error, results } = last === undefined ? await migrator.migrateToLatest() : await migrator.migrateTo(last);
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    throw new Error(`migration ${failed?.migrationName ?? ''} failed: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  return (results ?? []).map((r) => r.migrationName);
}
