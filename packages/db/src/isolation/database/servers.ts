import type pg from 'pg';
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
