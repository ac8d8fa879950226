import { createDb, ensureDatabase } from '../client.js';
import { migrateToLatest } from '../migrate.js';
import { loadMigrateConfig } from './config.js';

const { DATABASE_URL } = loadMigrateConfig();
await ensureDatabase(DATABASE_URL);
const db = createDb(DATABASE_URL, { maxConnections: 1, applicationName: 'tenantry-migrate' });
try {
  const applied = await migrateToLatest(db);
  console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
} finally {
  await db.destroy();
}
