/**
 * The servers of the data-plane benchmark (test/bench/data-plane.ts), each in a child
 * process of its own so that the load generator does not share their event loop:
 *
 *   api   — the real api (test/support/apps.ts startApi), configured like the tests, with
 *           usage metering on (the default);
 *
 * The api also takes `{ meter: false }` and `{ meter: true }`: the first flushes
 * what its meter holds and then stops counting (the api's `deps.usage` unset, as with
 * USAGE_METERING=false), the second counts again; each is answered with `{ metered }` once
 * done. data-plane.ts measures metering's cost by switching it off and on under load.
 *   bare  — the floor: node:http + pg, serving the same two routes with the same SQL in the
 *           same kind of transaction, and nothing else: no auth, no tRPC, no validation, no
 *           entitlements, no per-request tenant lookup. It reads every tenant's placement
 *           (and decrypts database tenants' role passwords) once at startup — which the api
 *           cannot do — and takes the tenant from the `x-tenant-id` header.
 *
 * Not meant to be run by hand: data-plane.ts forks it (`node --import tsx`, with an IPC
 * channel), passes its config in the environment, and reads `{ ready, port, … }` back; it
 * exits on the message `close`, or when its parent goes away.
 *
 * Env: DATABASE_URL, REDIS_PREFIX, DB_POOL_SIZE, TENANT_POOL_MAX, TENANT_POOL_SIZE
 * (unset: the api's defaults; data-plane.ts always passes the api's effective values to bare),
 * USAGE_FLUSH_INTERVAL_MS (api), BARE_BEGIN_WITH_CONTEXT (bare: 1 sends BEGIN with the tenant
 * context, three round trips as the api, instead of four).
 */
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DATA_ROLE, decryptSecret, parseSecretKey } from '@tenantry/db';
import pg from 'pg';
import { TENANT_SECRET_KEY, startApi } from '../support/apps.js';

export interface ServerReady {
  ready: true;
  port: number;
  /** The api's Prometheus endpoint (api). */
  metricsUrl?: string;
  /** The pool sizes the server runs with (the api's effective config). */
  dbPoolSize: number;
  tenantPoolMax: number;
  tenantPoolSize: number;
}

const mode = process.argv[2];
const send = (message: unknown) => process.send?.(message);
// Never outlive the benchmark that started us.
process.on('disconnect', () => process.exit(1));

function env(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value === '' ? undefined : value;
}

async function serveApi(): Promise<void> {
  const overrides = Object.fromEntries(
    ['DB_POOL_SIZE', 'TENANT_POOL_MAX', 'TENANT_POOL_SIZE', 'USAGE_FLUSH_INTERVAL_MS'].flatMap((name) => (env(name) ? [[name, env(name)!]] : [])),
  );
  const api = await startApi({ DATABASE_URL: env('DATABASE_URL')!, REDIS_PREFIX: env('REDIS_PREFIX')!, ...overrides });
  const { deps } = api.api;
  const { config } = deps;
  const meter = deps.usage;
  process.on('message', (message) => {
    if (message === 'close') void api.close().finally(() => process.exit(0));
    if (typeof message === 'object' && message !== null && 'meter' in message) {
      const on = (message as { meter: boolean }).meter;
      void (async () => {
        // Off: what was counted is flushed while still counting, so that flush's cost falls
        // in the metered stretch; only what arrives during it is left for a later flush.
        if (!on && deps.usage) await deps.usage.flush();
        deps.usage = on ? meter : undefined;
        send({ metered: deps.usage !== undefined });
      })();
    }
  });
  send({
    ready: true,
    port: Number(new URL(api.baseUrl).port),
    metricsUrl: api.metricsUrl,
    dbPoolSize: config.DB_POOL_SIZE,
    tenantPoolMax: config.TENANT_POOL_MAX,
    tenantPoolSize: config.TENANT_POOL_SIZE,
  } satisfies ServerReady);
}

// ---------------------------------------------------------------------------------------
// bare
// ---------------------------------------------------------------------------------------

interface Tenant {
  id: string;
  isolation: 'schema' | 'database';
  /** Schema tenants: `"t_…"`, as withTenant sets search_path. */
  searchPath?: string;
  /** Database tenants: a connection URL to its database as its role. */
  url?: string;
}

interface PoolEntry {
  pool: pg.Pool;
  active: number;
  evicted: boolean;
}

const SELECT = 'select id, collection, data, created_at, updated_at from documents where id = $1 and collection = $2';
const INSERT = 'insert into documents (collection, data) values ($1, $2::jsonb) returning id, collection, data, created_at, updated_at';
const ROUTE = /^\/v1\/collections\/([A-Za-z0-9_-]+)\/documents(?:\/([0-9a-f-]{36}))?$/;

interface DocumentRow {
  id: string;
  collection: string;
  data: unknown;
  created_at: Date;
  updated_at: Date;
}

async function serveBare(): Promise<void> {
  const databaseUrl = env('DATABASE_URL')!;
  const dbPoolSize = Number(env('DB_POOL_SIZE'));
  const tenantPoolMax = Number(env('TENANT_POOL_MAX'));
  const tenantPoolSize = Number(env('TENANT_POOL_SIZE'));
  const beginWithContext = env('BARE_BEGIN_WITH_CONTEXT') === '1';
  if (![dbPoolSize, tenantPoolMax, tenantPoolSize].every((n) => Number.isInteger(n) && n > 0)) throw new Error('bare needs DB_POOL_SIZE, TENANT_POOL_MAX and TENANT_POOL_SIZE');

  // Schema tenants: the shared database, as the api's control-plane pool reaches it.
  const shared = new pg.Pool({ connectionString: databaseUrl, max: dbPoolSize, application_name: 'tenantry-bench-bare' });
  shared.on('error', () => undefined);

  // Every tenant's placement and credentials, once.
  const key = parseSecretKey(TENANT_SECRET_KEY);
  const tenants = new Map<string, Tenant>();
  const { rows } = await shared.query<{
    id: string;
    isolation: string;
    schema_name: string | null;
    database_server: string | null;
    database_name: string | null;
    database_role: string | null;
    database_password_enc: Buffer | null;
  }>(`select id, isolation, schema_name, database_server, database_name, database_role, database_password_enc from tenants where status = 'active'`);
  for (const row of rows) {
    if (row.isolation === 'schema' && row.schema_name) {
      tenants.set(row.id, { id: row.id, isolation: 'schema', searchPath: `"${row.schema_name}"` });
    } else if (row.isolation === 'database' && row.database_server && row.database_name && row.database_role && row.database_password_enc) {
      const url = new URL(databaseUrl);
      const [host, port] = row.database_server.split(':');
      url.hostname = host!;
      url.port = port!;
      url.pathname = `/${row.database_name}`;
      url.username = row.database_role;
      url.password = encodeURIComponent(decryptSecret(key, row.database_password_enc, row.id));
      tenants.set(row.id, { id: row.id, isolation: 'database', url: url.toString() });
    }
  }

  // Database tenants: per-tenant pools under the api's bound (TENANT_POOL_MAX pools of
  // TENANT_POOL_SIZE, least recently used closed first, the api's idle timeout): the
  // server's max_connections could not hold one pool per tenant anyway.
  const pools = new Map<string, PoolEntry>();
  const closeEntry = (entry: PoolEntry) => void entry.pool.end().catch(() => undefined);
  const acquire = (tenant: Tenant): PoolEntry => {
    let entry = pools.get(tenant.id);
    if (entry) {
      pools.delete(tenant.id);
    } else {
      const pool = new pg.Pool({ connectionString: tenant.url, max: tenantPoolSize, idleTimeoutMillis: 10_000, application_name: 'tenantry-bench-bare-tenant' });
      pool.on('error', () => undefined);
      entry = { pool, active: 0, evicted: false };
    }
    pools.set(tenant.id, entry);
    while (pools.size > tenantPoolMax) {
      const [oldestId, oldest] = pools.entries().next().value as [string, PoolEntry];
      pools.delete(oldestId);
      oldest.evicted = true;
      if (oldest.active === 0) closeEntry(oldest);
    }
    entry.active += 1;
    return entry;
  };

  /**
   * The api's transaction, statement for statement: begin, tenant context, the query,
   * commit; four round trips, or with BARE_BEGIN_WITH_CONTEXT=1 three, BEGIN going with the
   * tenant context as the api's dialect sends it (packages/db/src/dialect.ts).
   */
  async function inTenant(tenant: Tenant, text: string, values: unknown[]): Promise<DocumentRow | undefined> {
    const entry = tenant.isolation === 'database' ? acquire(tenant) : undefined;
    try {
      const client = await (entry ? entry.pool : shared).connect();
      try {
        if (beginWithContext) {
          const settings = [`set_config('app.tenant_id', ${client.escapeLiteral(tenant.id)}, true)`];
          if (tenant.searchPath) settings.push(`set_config('search_path', ${client.escapeLiteral(tenant.searchPath)}, true)`, `set_config('role', ${client.escapeLiteral(DATA_ROLE)}, true)`);
          await client.query(`begin; select ${settings.join(', ')}`);
        } else {
          await client.query('begin');
          if (tenant.isolation === 'schema') {
            await client.query(`select set_config('app.tenant_id', $1, true), set_config('search_path', $2, true), set_config('role', $3, true)`, [tenant.id, tenant.searchPath, DATA_ROLE]);
          } else {
            await client.query(`select set_config('app.tenant_id', $1, true)`, [tenant.id]);
          }
        }
        const result = await client.query<DocumentRow>(text, values);
        await client.query('commit');
        client.release();
        return result.rows[0];
      } catch (err) {
        await client.query('rollback').catch(() => undefined);
        client.release(err as Error);
        throw err;
      }
    } finally {
      if (entry) {
        entry.active -= 1;
        if (entry.evicted && entry.active === 0) closeEntry(entry);
      }
    }
  }

  const reply = (res: ServerResponse, status: number, body: unknown) => {
    const json = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
    res.end(json);
  };
  const view = (row: DocumentRow) => ({
    id: row.id,
    collection: row.collection,
    data: row.data,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  });
  const readBody = (req: IncomingMessage) =>
    new Promise<string>((resolve, reject) => {
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (text += chunk));
      req.on('end', () => resolve(text));
      req.on('error', reject);
    });

  const server = createServer(async (req, res) => {
    try {
      const tenant = tenants.get(String(req.headers['x-tenant-id']));
      const route = ROUTE.exec(req.url ?? '');
      if (!tenant || !route) return reply(res, 404, { code: 'not_found' });
      const [, collection, id] = route;
      if (req.method === 'GET' && id) {
        const row = await inTenant(tenant, SELECT, [id, collection]);
        return row ? reply(res, 200, view(row)) : reply(res, 404, { code: 'document_not_found' });
      }
      if (req.method === 'POST' && !id) {
        const body = JSON.parse(await readBody(req)) as { data: Record<string, unknown> };
        const row = await inTenant(tenant, INSERT, [collection, JSON.stringify(body.data)]);
        return reply(res, 201, view(row!));
      }
      reply(res, 405, { code: 'method_not_allowed' });
    } catch (err) {
      if (!res.headersSent) reply(res, 500, { code: 'internal', message: (err as Error).message });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  process.on('message', (message) => {
    if (message === 'close') {
      server.closeAllConnections();
      server.close();
      void Promise.allSettled([shared.end(), ...[...pools.values()].map((e) => e.pool.end())]).finally(() => process.exit(0));
    }
  });
  send({ ready: true, port: (server.address() as AddressInfo).port, dbPoolSize, tenantPoolMax, tenantPoolSize } satisfies ServerReady);
}

(mode === 'api' ? serveApi() : mode === 'bare' ? serveBare() : Promise.reject(new Error(`usage: data-plane-server.ts api|bare (got ${mode})`))).catch((err) => {
  console.error(`data-plane ${mode} server failed:`, err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
