import { createDb, migrateToLatest } from '@tenantry/db';
import pg from 'pg';
import { TEMPLATE_DATABASE, TEST_PG_URL, databaseUrl } from './env.js';

/**
 * Once per run: build the migrated template database that each test file clones
 * (CREATE DATABASE … TEMPLATE is a file copy: far faster than migrating per file), and
 * drop databases an interrupted earlier run left behind.
 */
export default async function setup(): Promise<void> {
  const admin = new pg.Client({ connectionString: TEST_PG_URL });
  await admin.connect();
  try {
    const leftovers = await admin.query<{ datname: string }>(
      "select datname from pg_database where datname like 'tenantry\\_t\\_%' or datname = $1",
      [TEMPLATE_DATABASE],
    );
    for (const { datname } of leftovers.rows) {
      await admin.query(`drop database if exists ${admin.escapeIdentifier(datname)} with (force)`);
    }
    await admin.query(`create database ${admin.escapeIdentifier(TEMPLATE_DATABASE)}`);
  } finally {
    await admin.end();
  }
  const db = createDb(databaseUrl(TEMPLATE_DATABASE), { maxConnections: 1 });
  try {
    await migrateToLatest(db);
  } finally {
    await db.destroy();
  }
}
