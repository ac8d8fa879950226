import pg from 'pg';
import { TEST_PG_URL } from './env.js';

/** Run `fn` on a short-lived superuser connection to the test server (CREATE/DROP DATABASE). */
export async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_PG_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
