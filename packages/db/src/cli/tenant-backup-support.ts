/**
 * What `tenant:backup` and `tenant:restore` share: finding the tenant, running the
 * PostgreSQL client tools (argument arrays, never a shell), the manifest format, and the
 * exit-code convention:
 *
 *   0  done
 *   1  failed unexpectedly (a tool or the database failed); everything is cleaned up
 *   2  refused: bad arguments, unknown tenant, wrong state, a file that is not a tenant
 *      backup, a target that is not empty …; nothing was changed
 *   130 interrupted (SIGINT/SIGTERM); everything is cleaned up
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { type TenantStatus, TenantRef, assertTenantSchemaName, fromPublicId, toPublicId } from '@tenantry/domain';
import { sql } from 'kysely';
import type { Db } from '../client.js';
import type { Tenant } from '../schema.js';

/** An operator-correctable refusal: printed without a stack, exit code 2, nothing changed. */
export class RefusalError extends Error {}

/** The audit actor of operator commands run on the server. */
export const OPERATOR_ACTOR = 'operator:cli';

export const MANIFEST_FORMAT = 'tenantry.tenant-backup.v1';

/** `<file>.json`, written next to the dump by tenant:backup. Never holds a secret. */
export interface BackupManifest {
  format: typeof MANIFEST_FORMAT;
  tenant_id: string;
  slug: string;
  schema: string;
  taken_at: string;
  row_counts: Record<string, number>;
  pg_dump_version: string;
  server_version: string;
  dump_file: string;
  dump_bytes: number;
  dump_sha256: string;
}

export function tenantLabel(tenant: Tenant): string {
  return `${toPublicId('ten', tenant.id)} (${tenant.slug})`;
}

/** A tenant by `ten_…` id or slug; RefusalError (exit 2) when there is none. */
export async function findTenantByRef(db: Db, ref: string): Promise<Tenant> {
  if (!TenantRef.safeParse(ref).success) throw new RefusalError(`not a tenant id (ten_…) or slug: ${JSON.stringify(ref)}`);
  const id = fromPublicId('ten', ref);
  const query = db.selectFrom('tenants').selectAll();
  const row = await (id ? query.where('id', '=', id) : query.where('slug', '=', ref)).executeTakeFirst();
  if (!row) throw new RefusalError(`no tenant ${ref} (no tenant has that ${id ? 'id' : 'slug'})`);
  return row;
}

/**
 * The validated schema of a schema-isolated tenant in one of `statuses`, whose schema
 * exists. Everything this returns has matched ^t_[0-9a-f]{32}$.
 */
export async function tenantSchemaFor(db: Db, tenant: Tenant, statuses: readonly TenantStatus[], action: string): Promise<string> {
  const label = `tenant ${tenantLabel(tenant)}`;
  if (!statuses.includes(tenant.status)) {
    throw new RefusalError(`${label} is ${tenant.status.replace('_', ' ')}; ${action} needs a tenant that is ${statuses.map((s) => s.replace('_', ' ')).join(', ')}`);
  }
  // Only the schema driver records a schema: a provisioned tenant without one lives elsewhere.
  if (!tenant.schema_name) throw new RefusalError(`${label} has no schema (it uses ${tenant.isolation} isolation); ${action} supports schema-isolated tenants only`);
  assertTenantSchemaName(tenant.schema_name);
  const { rows } = await sql<{ ok: boolean }>`
    select exists (
      select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = ${tenant.schema_name} and c.relname = 'documents' and c.relkind = 'r'
    ) as ok`.execute(db);
  if (!rows[0]?.ok) throw new RefusalError(`${label}: its schema ${tenant.schema_name} or its documents table does not exist`);
  return tenant.schema_name;
}

/** The tenant uuid a schema name `t_<32 hex>` is derived from. */
export function tenantIdOfSchema(schema: string): string {
  assertTenantSchemaName(schema);
  const hex = schema.slice(2);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * How the client tools connect: the URL as `--dbname`, but with any password moved into
 * PGPASSWORD of the child's environment, so that it never shows in the process list
 * (another user's `ps` sees arguments, not environments).
 */
export function toolConnection(databaseUrl: string): { dbname: string; env: NodeJS.ProcessEnv } {
  const url = new URL(databaseUrl);
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.DATABASE_URL;
  if (url.password) {
    env.PGPASSWORD = decodeURIComponent(url.password);
    url.password = '';
  }
  return { dbname: url.toString(), env };
}

// --- child processes ---------------------------------------------------------------------

const children = new Set<ChildProcess>();
const interruption = new AbortController();

/** Aborted on SIGINT/SIGTERM; long loops check it between steps. */
export const interrupted = interruption.signal;

export function throwIfInterrupted(): void {
  if (interrupted.aborted) throw interrupted.reason;
}

/** Spawn a client tool (no shell), tracked so an interrupt kills it. */
export function spawnTool(command: string, args: string[], options: SpawnOptions): ChildProcess {
  const child = spawn(command, args, { ...options, shell: false });
  children.add(child);
  child.once('close', () => children.delete(child));
  child.once('error', () => children.delete(child));
  return child;
}

/** A tool's exit, with a clear message if it is not installed. */
export function exitOf(child: ChildProcess, command: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'ENOENT' ? new Error(`${command} not found on PATH: install the PostgreSQL client tools (the server's major version or newer)`) : err),
    );
    child.once('close', (code) => resolve(code));
  });
}

export function collect(stream: NodeJS.ReadableStream | null | undefined): () => string {
  const chunks: Buffer[] = [];
  stream?.on('data', (chunk: Buffer) => chunks.push(chunk));
  return () => Buffer.concat(chunks).toString('utf8');
}

/** Run a tool to completion; throws (exit 1) with its stderr when it fails. */
export async function runTool(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const child = spawnTool(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout = collect(child.stdout);
  const stderr = collect(child.stderr);
  const code = await exitOf(child, command);
  throwIfInterrupted();
  if (code !== 0) throw new Error(`${command} failed (exit ${code}):\n${stderr().trim()}`);
  return stdout();
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Run a command's body with the exit-code convention above. Cleanup belongs in the body's
 * own finally blocks: on SIGINT/SIGTERM the running tools are killed, the body's awaits
 * fail, its finally blocks run, and the process exits 130.
 */
export async function runCli(body: () => Promise<void>): Promise<void> {
  const onSignal = (signal: NodeJS.Signals) => {
    if (interruption.signal.aborted) return;
    console.error(`${signal}: stopping and cleaning up…`);
    interruption.abort(new Error(`interrupted by ${signal}`));
    for (const child of children) child.kill('SIGKILL');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await body();
  } catch (err) {
    if (interrupted.aborted) {
      console.error('interrupted; nothing was left behind');
      process.exitCode = 130;
    } else if (err instanceof RefusalError) {
      console.error(`refused: ${err.message}`);
      process.exitCode = 2;
    } else {
      console.error(`failed: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * A path argument, relative to where the operator ran the command: pnpm runs package
 * scripts in the package's directory and reports the original one in INIT_CWD.
 */
export function operatorPath(file: string): string {
  return path.resolve(process.env.INIT_CWD || process.cwd(), file);
}
