import type { ClusterRuntime } from './runtime.js';

/**
 * Cluster isolation, driver `kubernetes`: what a tenant's dedicated instance is as
 * CloudNativePG objects. Pure — rendering only; nothing here talks to a cluster, and this
 * installation does not apply them (the api refuses cluster tenants under this driver).
 *
 * Two objects: the `kubernetes.io/basic-auth` Secret holding the generated credentials of
 * the `tenant` owner (base64 in `data`, nowhere else), and the `postgresql.cnpg.io/v1`
 * Cluster bootstrapping database `tenant` owned by `tenant` from that Secret, with
 * `1 + replicas` instances and synchronous replication settings that match the local
 * driver's (`.spec.postgresql.synchronous`; CloudNativePG runs the failover there).
 */
export interface CnpgRenderOptions {
  namespace: string;
  /** Streaming standbys (TENANT_CLUSTER_REPLICAS, default 1): the Cluster runs 1 + replicas instances. */
  replicas?: number;
  /** Synchronous replication (TENANT_CLUSTER_SYNCHRONOUS, default true), as the local driver does it. */
  synchronous?: boolean;
  storageSize?: string;
  storageClass?: string | undefined;
  imageName?: string | undefined;
}

export interface CnpgSecret {
  apiVersion: 'v1';
  kind: 'Secret';
  type: 'kubernetes.io/basic-auth';
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  data: { username: string; password: string };
}

export interface CnpgCluster {
  apiVersion: 'postgresql.cnpg.io/v1';
  kind: 'Cluster';
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  spec: {
    instances: number;
    imageName?: string;
    postgresql?: { synchronous: { method: 'any' | 'first'; number: number; dataDurability: 'required' | 'preferred' } };
    storage: { size: string; storageClass?: string };
    bootstrap: { initdb: { database: string; owner: string; secret: { name: string } } };
  };
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function isDns1123Label(name: string): boolean {
  return name.length <= 63 && DNS1123_LABEL.test(name);
}

/** `tc-<32 hex>`: the Cluster's name for a tenant id (a DNS-1123 label). */
export function cnpgClusterName(tenantId: string): string {
  const name = `tc-${tenantId.replaceAll('-', '').toLowerCase()}`;
  if (!/^tc-[0-9a-f]{32}$/.test(name)) throw new Error(`not a tenant id: ${JSON.stringify(tenantId)}`);
  return name;
}

export function renderCnpgCluster(tenantId: string, credentials: { password: string }, options: CnpgRenderOptions): { secret: CnpgSecret; cluster: CnpgCluster } {
  if (!isDns1123Label(options.namespace)) throw new Error(`namespace ${JSON.stringify(options.namespace)} is not a DNS-1123 label`);
  const name = cnpgClusterName(tenantId);
  const labels = { 'app.kubernetes.io/managed-by': 'tenantry', 'tenantry.io/tenant-id': tenantId };
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  const secret: CnpgSecret = {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/basic-auth',
    metadata: { name: `${name}-app`, namespace: options.namespace, labels },
    data: { username: b64('tenant'), password: b64(credentials.password) },
  };
  const storage: CnpgCluster['spec']['storage'] = { size: options.storageSize ?? '10Gi' };
  if (options.storageClass) storage.storageClass = options.storageClass;
  const replicas = options.replicas ?? 1;
  if (!Number.isInteger(replicas) || replicas < 0 || replicas > 5) throw new Error(`replicas must be an integer from 0 to 5: ${replicas}`);
  // The local driver's replication, in CloudNativePG's terms: one standby acknowledges each
  // commit (`first`, number 1); `preferred` lets the primary commit alone while no standby
  // is available, as the local driver degrades after TENANT_CLUSTER_SYNC_DEGRADE_AFTER_MS.
  const synchronous = (options.synchronous ?? true) && replicas > 0;
  const cluster: CnpgCluster = {
    apiVersion: 'postgresql.cnpg.io/v1',
    kind: 'Cluster',
    metadata: { name, namespace: options.namespace, labels },
    spec: {
      instances: 1 + replicas,
      ...(options.imageName ? { imageName: options.imageName } : {}),
      ...(synchronous ? { postgresql: { synchronous: { method: 'first' as const, number: 1, dataDurability: 'preferred' as const } } } : {}),
      storage,
      bootstrap: { initdb: { database: 'tenant', owner: 'tenant', secret: { name: secret.metadata.name } } },
    },
  };
  return { secret, cluster };
}

const KUBERNETES_REFUSAL = 'cluster isolation is not supported on this installation (TENANT_CLUSTER_DRIVER=kubernetes does not provision)';

/**
 * The kubernetes variant as a cluster runtime: it can say what a tenant's instance would
 * be (`render`), and refuses to provision or drop one, since applying the manifests is not
 * built. The api refuses cluster tenants under it (`unavailable`).
 */
export class KubernetesClusters implements ClusterRuntime {
  constructor(private readonly options: CnpgRenderOptions) {}

  unavailable(): string {
    return KUBERNETES_REFUSAL;
  }

  render(tenantId: string, credentials: { password: string }): { secret: CnpgSecret; cluster: CnpgCluster } {
    return renderCnpgCluster(tenantId, credentials, this.options);
  }

  provision(): Promise<never> {
    return Promise.reject(new Error(KUBERNETES_REFUSAL));
  }

  drop(): Promise<never> {
    return Promise.reject(new Error(`${KUBERNETES_REFUSAL}: a cluster tenant cannot be removed by this worker`));
  }

  placeMove(): Promise<never> {
    return Promise.reject(new Error(KUBERNETES_REFUSAL));
  }

  provisionAt(): Promise<never> {
    return Promise.reject(new Error(KUBERNETES_REFUSAL));
  }
}
