import { Kysely } from 'kysely';
import { LazyBeginPostgresDialect } from './dialect.js';
import { type PgErrorSink, createGuardedPool, withClient } from './pg-faults.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;

export interface DbOptions {
  /** Pool size. The api and worker each hold one pool; keep the sum under max_connections. */
  maxConnections?: number;
  /** Fail a connection attempt instead of queueing forever when Postgres is down. */
  connectionTimeoutMillis?: number;
  applicationName?: string;
  /** Where lost connections are reported (default: a JSON line on stderr). */
  onError?: PgErrorSink;
}

export function createDb(databaseUrl: string, options: DbOptions = {}): Db {
  const pool = createGuardedPool(
    {
      connectionString: databaseUrl,
      max: options.maxConnections ?? 10,
      connectionTimeoutMillis: options.connectionTimeoutMillis ?? 5_000,
      application_name: options.applicationName ?? 'tenantry',
    },
    options.applicationName ?? 'tenantry',
    options.onError,
  );
  return new Kysely<Database>({ dialect: new LazyBeginPostgresDialect(pool) });
}

/**
 * Create the database named in `databaseUrl` if it does not exist, connecting to the
 * server's `postgres` maintenance database to do so. Safe to race: a concurrent creator's
 * duplicate error is taken as success.
 */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_-]{1,63}$/.test(name)) throw new Error(`unsupported database name in DATABASE_URL: ${JSON.stringify(name)}`);
  const admin = new URL(databaseUrl);
  admin.pathname = '/postgres';
  await withClient({ connectionString: admin.toString(), connectionTimeoutMillis: 5_000, application_name: 'tenantry-ensure-database' }, async (client) => {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (rowCount === 0) {
      try {
        // The name was checked against a strict pattern above and is quoted as an identifier.
        await client.query(`create database ${client.escapeIdentifier(name)}`);
      } catch (err) {
        // duplicate_database, or unique_violation when two creators race in the catalog.
        const code = (err as { code?: string }).code;
        if (code !== '42P04' && code !== '23505') throw err;
      }
    }
  });
}
