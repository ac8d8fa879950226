import { randomUUID } from 'node:crypto';
import { DATA_ROLE, provisionTenantSchema, withTenant } from '@tenantry/db';
import { tenantSchemaName } from '@tenantry/domain';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestDatabase, createTestDatabase } from './support/database.js';

let database: TestDatabase;
const tenantA = { tenantId: randomUUID(), schemaName: '' };
const tenantB = { tenantId: randomUUID(), schemaName: '' };
tenantA.schemaName = tenantSchemaName(tenantA.tenantId);
tenantB.schemaName = tenantSchemaName(tenantB.tenantId);

beforeAll(async () => {
  database = await createTestDatabase();
  for (const tenant of [tenantA, tenantB]) {
    await database.db.transaction().execute((trx) => provisionTenantSchema(trx, tenant.schemaName));
    await withTenant(database.db, tenant, (trx) =>
      sql`insert into documents (collection, data) values ('notes', ${JSON.stringify({ owner: tenant.tenantId })}::jsonb)`.execute(trx),
    );
  }
});

afterAll(async () => {
  await database?.drop();
});

/** Every row of `schema`.documents visible in a transaction as the data role with `tenantId` as context ('' = none). */
async function visibleRows(schema: string, tenantId: string | null) {
  return database.db.transaction().execute(async (trx) => {
    if (tenantId !== null) await sql`select set_config('app.tenant_id', ${tenantId}, true)`.execute(trx);
    await sql`set local role ${sql.id(DATA_ROLE)}`.execute(trx);
    const { rows } = await sql<{ tenant_id: string }>`select tenant_id from ${sql.id(schema, 'documents')}`.execute(trx);
    return rows;
  });
}

describe('row-level security with the data role', () => {
  it('each tenant sees exactly its own row', async () => {
    const a = await withTenant(database.db, tenantA, (trx) => sql<{ tenant_id: string }>`select tenant_id from documents`.execute(trx));
    expect(a.rows.map((r) => r.tenant_id)).toEqual([tenantA.tenantId]);
  });

  it("tenant A's context sees none of B's rows, even naming B's schema", async () => {
    expect(await visibleRows(tenantB.schemaName, tenantA.tenantId)).toEqual([]);
    expect(await visibleRows(tenantB.schemaName, tenantB.tenantId)).toHaveLength(1);
  });

  it('no tenant context sees zero rows: unset, and the empty string a pooled connection is left with', async () => {
    expect(await visibleRows(tenantA.schemaName, null)).toEqual([]);
    expect(await visibleRows(tenantA.schemaName, '')).toEqual([]);
  });

  it("writing B's tenant_id from A's context fails", async () => {
    await expect(
      withTenant(database.db, tenantA, (trx) =>
        sql`insert into documents (tenant_id, collection, data) values (${tenantB.tenantId}, 'notes', '{}'::jsonb)`.execute(trx),
      ),
    ).rejects.toThrow(/row-level security/);
    await expect(
      withTenant(database.db, tenantA, (trx) => sql`update documents set tenant_id = ${tenantB.tenantId}`.execute(trx)),
    ).rejects.toThrow(/row-level security/);
    expect(await visibleRows(tenantB.schemaName, tenantB.tenantId)).toHaveLength(1);
  });

  it("A's context can neither update nor delete B's rows (they are invisible to it)", async () => {
    const result = await database.db.transaction().execute(async (trx) => {
      await sql`select set_config('app.tenant_id', ${tenantA.tenantId}, true)`.execute(trx);
      await sql`set local role ${sql.id(DATA_ROLE)}`.execute(trx);
      const updated = await sql`update ${sql.id(tenantB.schemaName, 'documents')} set data = '{"pwned":true}'::jsonb`.execute(trx);
      const deleted = await sql`delete from ${sql.id(tenantB.schemaName, 'documents')}`.execute(trx);
      return [updated.numAffectedRows, deleted.numAffectedRows];
    });
    expect(result).toEqual([0n, 0n]);
    expect(await visibleRows(tenantB.schemaName, tenantB.tenantId)).toHaveLength(1);
  });

  it('the tenant context does not outlive its transaction on a pooled connection', async () => {
    await withTenant(database.db, tenantA, async () => undefined);
    const { rows } = await sql<{ setting: string | null }>`select current_setting('app.tenant_id', true) as setting`.execute(database.db);
    expect(rows[0]?.setting ?? '').toBe('');
  });

  it('the data role is not superuser, cannot bypass RLS, owns nothing and cannot TRUNCATE', async () => {
    const role = await sql<{ rolsuper: boolean; rolbypassrls: boolean; rolcanlogin: boolean }>`
      select rolsuper, rolbypassrls, rolcanlogin from pg_roles where rolname = ${DATA_ROLE}`.execute(database.db);
    expect(role.rows[0]).toEqual({ rolsuper: false, rolbypassrls: false, rolcanlogin: false });
    const owned = await sql<{ n: string }>`
      select count(*) as n from pg_class c join pg_roles r on r.oid = c.relowner where r.rolname = ${DATA_ROLE}`.execute(database.db);
    expect(Number(owned.rows[0]?.n)).toBe(0);
    const truncate = await sql<{ allowed: boolean }>`
      select has_table_privilege(${DATA_ROLE}, ${`${tenantA.schemaName}.documents`}, 'TRUNCATE') as allowed`.execute(database.db);
    expect(truncate.rows[0]?.allowed).toBe(false);
    await expect(
      database.db.transaction().execute(async (trx) => {
        await sql`set local role ${sql.id(DATA_ROLE)}`.execute(trx);
        await sql`truncate ${sql.id(tenantA.schemaName, 'documents')}`.execute(trx);
      }),
    ).rejects.toThrow(/permission denied/);
  });

  it('RLS is enabled and forced on the tenant table', async () => {
    const { rows } = await sql<{ relrowsecurity: boolean; relforcerowsecurity: boolean }>`
      select relrowsecurity, relforcerowsecurity from pg_class
      where oid = ${`${tenantA.schemaName}.documents`}::regclass`.execute(database.db);
    expect(rows[0]).toEqual({ relrowsecurity: true, relforcerowsecurity: true });
  });
});
