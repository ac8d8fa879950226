import { type Kysely, sql } from 'kysely';

/**
 * The tenant search's trigram indexes write through instead of into a GIN pending list.
 *
 * With `fastupdate` on (the default), new tenants' trigrams gather in the index's pending
 * list until it reaches gin_pending_list_limit (4 MB) or (auto)vacuum merges it, and the
 * planner charges every index scan for reading that whole list: bench:growth saw a search
 * that matches nothing at 50,000 tenants fall back to a sequential scan of the table
 * (58 ms, linear in tenants) where the bitmap-or of the two trigram indexes takes 0.2 ms
 * once the list is merged. Tenants are created a few a second at most, so paying the
 * index update at insert is cheap; the search stays on the indexes whatever autovacuum has
 * got round to. The lists already there are merged now.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter index tenants_name_trgm set (fastupdate = off)`.execute(db);
  await sql`alter index tenants_slug_trgm set (fastupdate = off)`.execute(db);
  await sql`select gin_clean_pending_list('tenants_name_trgm'::regclass), gin_clean_pending_list('tenants_slug_trgm'::regclass)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter index tenants_name_trgm reset (fastupdate)`.execute(db);
  await sql`alter index tenants_slug_trgm reset (fastupdate)`.execute(db);
}
