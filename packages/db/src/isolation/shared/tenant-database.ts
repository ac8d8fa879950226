import { assertTenantRoleName } from '@tenantry/domain';
import type pg from 'pg';
import { scramSha256Verifier } from './secrets.js';

/**
 * What database and cluster isolation share: a tenant reached in a database of its own,
 * through a login role of its own, whose password is stored only encrypted.
 */

/** The tenant tables of every tenant database, idempotent: the same documents table as a tenant schema, RLS enabled and forced. */
export const TEMPLATE_DDL = `
  create table if not exists documents (
    id uuid primary key default gen_random_uuid(),
    tenant_id uuid not null default nullif(current_setting('app.tenant_id', true), '')::uuid,
    collection text not null,
    data jsonb not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
  );
  create index if not exists documents_collection_idx on documents (tenant_id, collection, id);
  alter table documents enable row level security;
  alter table documents force row level security;
  drop policy if exists tenant_isolation on documents;
  create policy tenant_isolation on documents
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
  revoke all on documents from public;
  revoke create on schema public from public;
`;

export const codeOf = (err: unknown) => (err as { code?: string }).code;

/** The tenant's login role, created or brought back to the stored password and attributes. */
export async function ensureRole(client: pg.ClientBase, role: string, password: string): Promise<void> {
  assertTenantRoleName(role);
  // A SCRAM verifier, not the password: the statement may be logged by the server.
  const attributes = `login nosuperuser nocreatedb nocreaterole noinherit noreplication nobypassrls password ${client.escapeLiteral(scramSha256Verifier(password))}`;
  const { rowCount } = await client.query('select 1 from pg_roles where rolname = $1', [role]);
  if (!rowCount) {
    try {
      await client.query(`create role ${client.escapeIdentifier(role)} with ${attributes}`);
      return;
    } catch (err) {
      if (codeOf(err) !== '42710' && codeOf(err) !== '23505') throw err;
    }
  }
  await client.query(`alter role ${client.escapeIdentifier(role)} with ${attributes}`);
}

/** `url` pointed at `database`, optionally as other credentials (host, port and TLS options kept). */
export function connectionUrl(url: string, database: string, credentials?: { user: string; password: string }): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  if (credentials) {
    u.username = encodeURIComponent(credentials.user);
    u.password = encodeURIComponent(credentials.password);
  }
  return u.toString();
}
