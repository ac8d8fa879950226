import type { ProvisioningTenant, StorageSupervision } from '../driver.js';
import type { ClusterPlacement } from './local.js';

/**
 * Where a cluster tenant's dedicated instance runs: the variant TENANT_CLUSTER_DRIVER
 * picks (local.ts: initdb + pg_ctl on this host; kubernetes.ts: CloudNativePG manifests,
 * rendered only). The cluster driver (driver.ts) adds what every variant shares: the
 * placement columns, the per-tenant pools, health.
 */
export interface ClusterRuntime {
  /** Why this variant cannot make instances here, or undefined when it can. */
  unavailable(): string | undefined;
  /** Make (or finish making) and start the tenant's instance, recording it on the row. */
  provision(tenant: ProvisioningTenant): Promise<unknown>;
  /** Stop and remove the tenant's instance; `dataDir` from its row, if any. Idempotent. */
  drop(tenantId: string, dataDir: string | null): Promise<void>;
  /** Start the tenant's instance if it is down; true if it was started. Absent when this variant cannot. */
  restartIfDown?(tenantId: string): Promise<boolean>;
  /** A move's target: choose where the tenant's instance goes, making nothing (IsolationDriver.placeMove). */
  placeMove(tenantId: string): Promise<ClusterPlacement>;
  /** A move's target: make and start the instance at `placement`, the tenant row untouched (IsolationDriver.provisionAt). */
  provisionAt(tenantId: string, placement: ClusterPlacement): Promise<ClusterPlacement>;
  /** One watch pass over the replicated tenants this variant runs (standbys, failover). Absent when this variant cannot. */
  supervise?(): Promise<StorageSupervision>;
}

/**
 * The runtime of a process that serves cluster tenants but does not run their instances
 * (the api): it reaches them through the per-tenant pools and leaves the rest to the worker.
 */
export class RemoteClusters implements ClusterRuntime {
  unavailable(): undefined {
    return undefined;
  }

  provision(): Promise<never> {
    return Promise.reject(new Error('this process does not run tenant clusters (the worker does)'));
  }

  drop(): Promise<never> {
    return Promise.reject(new Error('this process does not run tenant clusters (the worker does)'));
  }

  placeMove(): Promise<never> {
    return Promise.reject(new Error('this process does not run tenant clusters (the worker does)'));
  }

  provisionAt(): Promise<never> {
    return Promise.reject(new Error('this process does not run tenant clusters (the worker does)'));
  }
}
