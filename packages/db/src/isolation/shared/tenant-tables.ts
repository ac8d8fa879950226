import type pg from 'pg';
import { FreezeTimeoutError } from '../driver.js';

/**
 * The tables of every tenant store (a tenant schema, a tenant database, a tenant
 * cluster's database `tenant`), with the columns a move copies and checksums: the one
 * list the move's copy, its verification and the drivers' freeze go by. A table added to
 * the stores' DDL is added here, or moves would leave it behind.
 */
export interface TenantTable {
  name: string;
  /** Its primary key (one column, ordered: copies and checksums walk it in batches). */
  key: string;
  /** Every column, in order, with the SQL type its text form is cast back to. */
  columns: ReadonlyArray<{ name: string; type: string }>;
}

export const TENANT_TABLES: readonly TenantTable[] = [
  {
    name: 'documents',
    key: 'id',
    columns: [
      { name: 'id', type: 'uuid' },
      { name: 'tenant_id', type: 'uuid' },
      { name: 'collection', type: 'text' },
      { name: 'data', type: 'jsonb' },
      { name: 'created_at', type: 'timestamptz' },
      { name: 'updated_at', type: 'timestamptz' },
    ],
  },
];

const LOCK_NOT_AVAILABLE = '55P03';

/**
 * Stop `role`'s writes to the tenant tables in `schema` (see IsolationDriver.freeze), on a
 * connection that may alter them (their owner). EXCLUSIVE mode waits for the writers
 * already in there and conflicts with no reader (only ACCESS EXCLUSIVE blocks SELECT);
 * the REVOKE commits with it, so a writer that queued behind the lock finds, once it has
 * it, that it may no longer write.
 */
export async function freezeTenantTables(client: pg.Client, schema: string, role: string, timeoutMs: number): Promise<void> {
  await client.query('begin');
  try {
    await client.query(`set local lock_timeout = ${Math.max(1, Math.floor(timeoutMs))}`);
    for (const table of TENANT_TABLES) {
      const name = `${client.escapeIdentifier(schema)}.${client.escapeIdentifier(table.name)}`;
      await client.query(`lock table ${name} in exclusive mode`);
      await client.query(`revoke insert, update, delete on ${name} from ${client.escapeIdentifier(role)}`);
    }
    await client.query('commit');
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    if ((err as { code?: string }).code === LOCK_NOT_AVAILABLE) {
      throw new FreezeTimeoutError(`writes to the tenant's tables did not finish within ${timeoutMs} ms`, { cause: err });
    }
    throw err;
  }
}

/** Give `role` its writes to the tenant tables in `schema` back (what provisioning granted). */
export async function thawTenantTables(client: pg.Client, schema: string, role: string): Promise<void> {
  for (const table of TENANT_TABLES) {
    const name = `${client.escapeIdentifier(schema)}.${client.escapeIdentifier(table.name)}`;
    await client.query(`grant select, insert, update, delete on ${name} to ${client.escapeIdentifier(role)}`);
  }
}
