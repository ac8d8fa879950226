import { randomUUID } from 'node:crypto';
import { LazyBeginPostgresDialect, type Database, createGuardedPool, provisionTenantSchema, tenantContextStatement, withTenant } from '@tenantry/db';
import { tenantSchemaName } from '@tenantry/domain';
import { Kysely, sql } from 'kysely';
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type TestDatabase, createTestDatabase } from './support/database.js';

/**
 * LazyBeginPostgresDialect (packages/db/src/dialect.ts): a transaction's BEGIN travels with
 * its first statement when that statement has no parameters. What Postgres is sent is
 * read off the real pg client (every `query` call is one message and one round trip);
 * what it did is read back from Postgres.
 */

let database: TestDatabase;
let db: Kysely<Database>;
/** The SQL of every message the dialect's connection sent, in order. */
let sent: string[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  // One connection: every transaction below runs on the same session, so anything that
  // leaked out of one would be seen by the next.
  const pool = createGuardedPool({ connectionString: database.url, max: 1 }, 'dialect test');
  pool.on('connect', (client: pg.PoolClient) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    client.query = ((...args: unknown[]) => {
      sent.push(typeof args[0] === 'string' ? args[0] : '(object)');
      return query(...args);
    }) as typeof client.query;
  });
  db = new Kysely<Database>({ dialect: new LazyBeginPostgresDialect(pool) });
  await sql`create table dialect_probe (n int not null)`.execute(db);
});

afterAll(async () => {
  await db?.destroy();
  await database?.drop();
});

beforeEach(async () => {
  await sql`truncate dialect_probe`.execute(db);
  sent = [];
});

const rowsOf = async () => (await sql<{ n: number }>`select n from dialect_probe order by n`.execute(db)).rows.map((r) => r.n);

describe('LazyBeginPostgresDialect', () => {
  it('sends BEGIN with a first statement that has no parameters: a tenant transaction is three round trips, not four', async () => {
    const tenantId = randomUUID();
    const found = await db.transaction().execute(async (trx) => {
      await tenantContextStatement(tenantId, { asDataRole: false }).execute(trx);
      return (await sql<{ tenant: string }>`select current_setting('app.tenant_id') as tenant where ${1} = 1`.execute(trx)).rows;
    });
    expect(found).toEqual([{ tenant: tenantId }]);
    expect(sent).toEqual([`begin; select set_config('app.tenant_id', '${tenantId}', true)`, "select current_setting('app.tenant_id') as tenant where $1 = 1", 'commit']);
  });

  it('keeps the transaction whole: the first statement rolls back with the rest', async () => {
    await expect(
      db.transaction().execute(async (trx) => {
        await sql`insert into dialect_probe (n) values (1)`.execute(trx);
        await sql`insert into dialect_probe (n) values (${null})`.execute(trx);
      }),
    ).rejects.toThrow(/null value/);
    expect(sent[0]).toBe('begin; insert into dialect_probe (n) values (1)');
    expect(sent).toContain('rollback');
    expect(await rowsOf()).toEqual([]);
  });

  it('answers the first statement with its own rows and counts, not BEGIN’s', async () => {
    const result = await db.transaction().execute(async (trx) => {
      const inserted = await sql`insert into dialect_probe (n) values (1), (2)`.execute(trx);
      const selected = await sql<{ n: number }>`select n from dialect_probe order by n`.execute(trx);
      return { affected: inserted.numAffectedRows, rows: selected.rows };
    });
    expect(result).toEqual({ affected: 2n, rows: [{ n: 1 }, { n: 2 }] });
    expect(await rowsOf()).toEqual([1, 2]);
  });

  it('sends BEGIN on its own before a first statement with parameters', async () => {
    await db.transaction().execute((trx) => sql`insert into dialect_probe (n) values (${7})`.execute(trx));
    expect(sent).toEqual(['begin', 'insert into dialect_probe (n) values ($1)', 'commit']);
    expect(await rowsOf()).toEqual([7]);
  });

  it('sends nothing for a transaction that runs no statement', async () => {
    await db.transaction().execute(async () => undefined);
    await expect(db.transaction().execute(async () => Promise.reject(new Error('changed my mind')))).rejects.toThrow('changed my mind');
    expect(sent).toEqual([]);
  });

  it('a failing first statement leaves no transaction open on the pooled connection', async () => {
    await expect(db.transaction().execute((trx) => sql`select 1 / 0`.execute(trx))).rejects.toThrow(/division by zero/);
    expect(sent).toEqual(['begin; select 1 / 0', 'rollback']);
    // The same (only) connection: outside any transaction, and not aborted.
    const { rows } = await sql<{ open: boolean }>`select now() = statement_timestamp() as open`.execute(db);
    expect(rows).toEqual([{ open: true }]);
  });

  it('keeps the isolation level and access mode asked for', async () => {
    const seen = await db
      .transaction()
      .setIsolationLevel('serializable')
      .setAccessMode('read only')
      .execute(async (trx) => (await sql<{ level: string; ro: string }>`select current_setting('transaction_isolation') as level, current_setting('transaction_read_only') as ro`.execute(trx)).rows[0]);
    expect(seen).toEqual({ level: 'serializable', ro: 'on' });
    expect(sent[0]).toMatch(/^start transaction isolation level serializable read only; select /);
  });

  it("savepoints go through the dialect's driver, inside a lazily begun transaction", async () => {
    const trx = await db.startTransaction().execute();
    await sql`insert into dialect_probe (n) values (1)`.execute(trx);
    const marked = await trx.savepoint('before two').execute();
    await sql`insert into dialect_probe (n) values (2)`.execute(marked);
    const back = await marked.rollbackToSavepoint('before two').execute();
    const released = await back.releaseSavepoint('before two').execute();
    await released.commit().execute();
    expect(await rowsOf()).toEqual([1]);
    expect(sent).toEqual([
      'begin; insert into dialect_probe (n) values (1)',
      'savepoint "before two"',
      'insert into dialect_probe (n) values (2)',
      'rollback to savepoint "before two"',
      'release savepoint "before two"',
      'commit',
      'select n from dialect_probe order by n',
    ]);
  });

  it("a tenant's context set with BEGIN is gone after the transaction (the next request on the connection sees none)", async () => {
    const tenant = { tenantId: randomUUID(), schemaName: '' };
    tenant.schemaName = tenantSchemaName(tenant.tenantId);
    await db.transaction().execute((trx) => provisionTenantSchema(trx, tenant.schemaName));
    await withTenant(db, tenant, (trx) => sql`insert into documents (collection, data) values ('notes', '{}'::jsonb)`.execute(trx));
    const inside = await withTenant(db, tenant, async (trx) => (await sql<{ role: string; path: string; n: number }>`select current_user as role, current_setting('search_path') as path, (select count(*)::int from documents) as n`.execute(trx)).rows[0]);
    expect(inside).toEqual({ role: 'tenantry_data', path: `"${tenant.schemaName}"`, n: 1 });
    const after = (await sql<{ role: string; tenant: string }>`select current_user as role, current_setting('app.tenant_id', true) as tenant`.execute(db)).rows[0];
    expect(after?.role).not.toBe('tenantry_data');
    expect(after?.tenant ?? '').toBe('');
  });
});

describe('tenantContextStatement', () => {
  it('refuses values that are not a tenant id or a tenant schema, before anything is sent', () => {
    expect(() => tenantContextStatement("x', true); drop table documents; --", { asDataRole: true })).toThrow(/not a tenant id/);
    expect(() => tenantContextStatement(randomUUID(), { schemaName: 'public', asDataRole: true })).toThrow(/not a tenant schema name/);
    expect(sent).toEqual([]);
  });
});
