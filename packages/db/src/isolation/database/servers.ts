import pg from 'pg';
import { withClient } from '../../pg-faults.js';
import { connectionUrl } from '../shared/tenant-database.js';

/** A Postgres server tenant databases may be placed on: `key` (host:port) is what tenant rows store. */
export interface TenantDbServer {
  key: string;
  /** An admin (superuser, or CREATEDB + CREATEROLE) connection URL; its database part is ignored. */
  adminUrl: string;
}

/** host:port of a postgres URL; what a tenant row names its server by (never credentials). */
export function serverKeyOf(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || '5432'}`;
}

/** TENANT_DB_SERVERS, or else the control plane's own server. */
export function tenantDbServers(urls: readonly string[] | undefined, controlPlaneUrl: string): TenantDbServer[] {
  const servers = new Map<string, TenantDbServer>();
  for (const url of urls && urls.length > 0 ? urls : [controlPlaneUrl]) {
    const key = serverKeyOf(url);
    if (!servers.has(key)) servers.set(key, { key, adminUrl: url });
  }
  return [...servers.values()];
}

export function serverOf(servers: readonly TenantDbServer[], key: string): TenantDbServer {
  const server = servers.find((s) => s.key === key);
  if (!server) throw new Error(`tenant database server ${key} is not in TENANT_DB_SERVERS`);
  return server;
}

export function withAdmin<T>(server: TenantDbServer, database: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  return withClient({ connectionString: connectionUrl(server.adminUrl, database), connectionTimeoutMillis: 5_000, application_name: 'tenantry-provisioner' }, fn);
}

/**
 * Connections to each server's maintenance database (`postgres`), kept for the next
 * tenant: creating a role and a database from the template needs one, and opening it
 * cost 10–20 ms of every database tenant's provisioning (a backend forked and
 * authenticated) that its raw floor does not pay. At most two per server, closed after
 * 30 s idle. A connection that errored is discarded rather than reused (after a server
 * restart every kept one is dead), and one lost while idle is dropped by the pool.
 * Connections into a tenant's own database are not kept: each is needed once.
 */
export class MaintenanceConnections {
  private readonly pools = new Map<string, pg.Pool>();

  async run<T>(server: TenantDbServer, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let pool = this.pools.get(server.key);
    if (!pool) {
      pool = new pg.Pool({
        connectionString: connectionUrl(server.adminUrl, 'postgres'),
        application_name: 'tenantry-provisioner',
        connectionTimeoutMillis: 5_000,
        idleTimeoutMillis: 30_000,
        max: 2,
        allowExitOnIdle: true,
      });
      // An idle connection the server closed: the pool drops it; nobody is waiting on it.
      pool.on('error', () => undefined);
      this.pools.set(server.key, pool);
    }
    const client = await pool.connect();
    try {
      const result = await fn(client);
      client.release();
      return result;
    } catch (err) {
      client.release(true);
      throw err;
    }
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((pool) => pool.end().catch(() => undefined)));
  }
}
