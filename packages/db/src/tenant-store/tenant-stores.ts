import type { Isolation } from '@tenantry/domain';
import type { Db } from '../client.js';
import { ClusterTenantStore } from './cluster-store.js';
import { DatabaseTenantStore, type TenantDbServer } from './database-store.js';
import { RoutingTenantStore, SchemaTenantStore, type TenantStore } from './tenant-store.js';

export interface TenantStoresOptions {
  /** Servers of database tenants. */
  servers: TenantDbServer[];
  /** TENANT_SECRET_KEY: without it only schema tenants can be reached. */
  secretKey: Buffer | undefined;
  maxPools: number;
  connectionsPerPool: number;
  applicationName: string;
  onError: (message: string) => void;
}

/**
 * Every driver an app can reach tenants through, behind one RoutingTenantStore: schema
 * always; database and cluster when the key that opens their credentials is configured.
 * `close` ends the per-tenant pools.
 */
export function createTenantStores(db: Db, options: TenantStoresOptions): { store: TenantStore; close(): Promise<void> } {
  const drivers: Partial<Record<Isolation, TenantStore>> = { schema: new SchemaTenantStore(db) };
  const pooled: Array<{ close(): Promise<void> }> = [];
  if (options.secretKey) {
    const common = {
      secretKey: options.secretKey,
      maxPools: options.maxPools,
      connectionsPerPool: options.connectionsPerPool,
      applicationName: options.applicationName,
      onError: options.onError,
    };
    const database = new DatabaseTenantStore(db, { ...common, servers: options.servers });
    const cluster = new ClusterTenantStore(db, common);
    drivers.database = database;
    drivers.cluster = cluster;
    pooled.push(database, cluster);
  }
  return {
    store: new RoutingTenantStore(drivers),
    close: async () => {
      for (const stores of pooled) await stores.close();
    },
  };
}
