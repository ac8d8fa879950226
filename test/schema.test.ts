import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestDatabase, createTestDatabase } from './support/database.js';

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database?.drop();
});

describe('control-plane schema', () => {
  it('every foreign key has an index led by its columns (deleting a tenant or user never scans a table)', async () => {
    const { rows } = await sql<{ fk: string }>`
      select c.conrelid::regclass || '(' || string_agg(a.attname, ', ' order by k.ord) || ')' as fk
      from pg_constraint c
      cross join lateral unnest(c.conkey) with ordinality as k(attnum, ord)
      join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.attnum
      where c.contype = 'f' and c.connamespace = 'public'::regnamespace
        and not exists (
          select 1 from pg_index i
          where i.indrelid = c.conrelid
            and (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey and c.conkey @> (i.indkey::int2[])[0:cardinality(c.conkey) - 1]
        )
      group by c.oid, c.conrelid`.execute(database.db);
    expect(rows.map((r) => r.fk)).toEqual([]);
  });
});
