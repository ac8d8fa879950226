import { type Kysely, sql } from 'kysely';
import type { Db } from './client.js';
import type { Database } from './schema.js';

/**
 * One advisory lock per tenant, the same key everywhere: the provisioning saga, the
 * isolation drivers (provision, restart) and the teardown (compensation, purge) take it,
 * so a redelivered job, its stalled original, a health pass and a purge never work on the
 * same tenant's storage at once.
 */
const key = (tenantId: string) => sql`hashtextextended(${tenantId}, 0)`;

/** Take the tenant's lock until the end of the transaction `trx` is in. */
export async function lockTenant(trx: Kysely<Database>, tenantId: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(${key(tenantId)})`.execute(trx);
}

/**
 * Hold the tenant's lock on a connection of its own while `fn` runs, for work that cannot
 * sit inside a transaction (CREATE DATABASE, initdb, pg_ctl). `fn` gets that connection.
 */
export async function withTenantLock<T>(db: Db, tenantId: string, fn: (conn: Db) => Promise<T>): Promise<T> {
  return db.connection().execute(async (conn) => {
    await sql`select pg_advisory_lock(${key(tenantId)})`.execute(conn);
    try {
      return await fn(conn);
    } finally {
      await sql`select pg_advisory_unlock(${key(tenantId)})`.execute(conn);
    }
  });
}

/**
 * Like withTenantLock, but only if the lock is free now: undefined (and `fn` not run) when
 * someone holds it. For passes that come round again (the cluster watch), where waiting
 * behind a long provisioning or failover would only stall the other tenants.
 */
export async function tryWithTenantLock<T>(db: Db, tenantId: string, fn: (conn: Db) => Promise<T>): Promise<T | undefined> {
  return db.connection().execute(async (conn) => {
    const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_lock(${key(tenantId)}) as locked`.execute(conn);
    if (!rows[0]?.locked) return undefined;
    try {
      return await fn(conn);
    } finally {
      await sql`select pg_advisory_unlock(${key(tenantId)})`.execute(conn);
    }
  });
}
