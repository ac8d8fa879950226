import { Migrator } from 'kysely';
import type { Db } from './client.js';
import { migrations } from './migrations/index.js';

/**
 * Bring the control-plane schema to the latest migration. Kysely's migrator takes a lock
 * in the database, so an api and a worker starting together migrate once.
 */
export async function migrateToLatest(db: Db): Promise<string[]> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
  });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    throw new Error(`migration ${failed?.migrationName ?? ''} failed: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  return (results ?? []).map((r) => r.migrationName);
}
