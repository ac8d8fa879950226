/**
 * Tenantry itself on Kubernetes: the api and the worker as Deployments, a Service and an
 * HPA for the api, a PodDisruptionBudget for each, and the installation's non-secret
 * settings in a ConfigMap. Pure: objects in, YAML out; nothing here talks to a cluster.
 * `pnpm k8s:render --tag <image tag>` (render.ts) writes them; they are never applied here.
 *
 * The objects are kubernetes-models classes: the type checker refuses a misspelt field
 * (object literals get excess-property checks against the Kubernetes API types) and
 * `validate()` checks each against the Kubernetes JSON schemas (compiled by ajv), so a
 * render that would not be accepted by an API server fails before it is written.
 *
 * Secrets are only ever referenced (secretKeyRef into one Secret the operator creates,
 * `tenantry-secrets` by default); no Secret object is rendered.
 */
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import { Service } from 'kubernetes-models/v1/Service';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { stringify } from 'yaml';

export interface RenderOptions {
  /** The image tag to run (required: a manifest never says `latest`). */
  tag: string;
  /** The image repository, without the tag. */
  image?: string;
  namespace?: string;
  /** The Secret (created by the operator, never rendered) that every secret setting is read from. */
  secretName?: string;
}

export const DEFAULT_IMAGE = 'ghcr.io/tenantry/tenantry';
export const DEFAULT_NAMESPACE = 'tenantry';
export const DEFAULT_SECRET = 'tenantry-secrets';

// An OCI tag that is also a valid label value (it is the pods' app.kubernetes.io/version).
const TAG = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;
const IMAGE = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const DNS1123_LABEL = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;

export class RenderError extends Error {}

const API_PORT = 3000;
const API_METRICS_PORT = 9091;
const WORKER_METRICS_PORT = 9092;

/**
 * The drain settings, per app. The api keeps serving (with /readyz at 503) for the drain
 * delay after SIGTERM, so the endpoints controller and every kube-proxy or ingress drop the
 * pod before its listener closes; 5 s rather than the default 2 s, for that propagation.
 */
export const API_SHUTDOWN = { SHUTDOWN_DRAIN_DELAY_MS: 5_000, SHUTDOWN_TIMEOUT_MS: 10_000 } as const;
export const WORKER_SHUTDOWN = { SHUTDOWN_TIMEOUT_MS: 20_000 } as const;

/** Fixed waits inside the apps' close(): the api's bounded queue close, the worker's hand-back grace (apps/*\/src/app.ts). */
const API_QUEUE_CLOSE_MS = 2_000;
const WORKER_HAND_BACK_GRACE_MS = 2_000;
/** Kept beyond the longest drain: the last flushes, closing pools, the process exit. */
const GRACE_MARGIN_S = 15;

/**
 * The longest an api takes from SIGTERM to exit (apps/api/src/app.ts, close()): the drain
 * delay; then the listener and its connections, bounded by SHUTDOWN_TIMEOUT_MS; the queues'
 * close, bounded by 2 s; then the final usage flush, bounded by SHUTDOWN_TIMEOUT_MS again.
 */
export function apiDrainBoundMs(s: { SHUTDOWN_DRAIN_DELAY_MS: number; SHUTDOWN_TIMEOUT_MS: number }): number {
  return s.SHUTDOWN_DRAIN_DELAY_MS + 2 * s.SHUTDOWN_TIMEOUT_MS + API_QUEUE_CLOSE_MS;
}

/**
 * The longest a worker takes (apps/worker/src/app.ts, close()): active jobs get
 * SHUTDOWN_TIMEOUT_MS, then are handed back (2 s), the workers and queues close (2 s), and a
 * cluster watch pass in flight gets SHUTDOWN_TIMEOUT_MS to finish its step.
 */
export function workerDrainBoundMs(s: { SHUTDOWN_TIMEOUT_MS: number }): number {
  return 2 * s.SHUTDOWN_TIMEOUT_MS + 2 * WORKER_HAND_BACK_GRACE_MS;
}

const graceSeconds = (drainMs: number) => Math.ceil(drainMs / 1000) + GRACE_MARGIN_S;

/**
 * Settings that are not secret, shared by the api and the worker (docs/configuration.md).
 * Files go to S3 (the local driver is a directory on one machine; api pods are many), and
 * cluster tenants are rendered as CloudNativePG manifests rather than run in the worker's pod.
 */
export const SHARED_SETTINGS: Record<string, string> = {
  HOSTED_MODE: 'true',
  MULTI_TENANT_ENABLED: 'true',
  LOG_FORMAT: 'json',
  LOG_LEVEL: 'info',
  REDIS_PREFIX: 'tenantry',
  HOST: '0.0.0.0',
  PORT: String(API_PORT),
  API_METRICS_PORT: String(API_METRICS_PORT),
  WORKER_METRICS_PORT: String(WORKER_METRICS_PORT),
  WORKER_METRICS_HOST: '0.0.0.0',
  // One load balancer or ingress in front of the api appends the client's address.
  TRUST_PROXY: '1',
  FILE_STORAGE_DRIVER: 's3',
  S3_BUCKET: 'tenantry-files',
  S3_REGION: 'us-east-1',
  TENANT_CLUSTER_DRIVER: 'kubernetes',
  TENANT_CLUSTER_NAMESPACE: 'tenantry-clusters',
  // Generated files (none when TENANT_SECRET_KEY is set, as it is here) go to an emptyDir.
  TENANTRY_DATA_DIR: '/var/lib/tenantry',
};

/** Every secret setting, read from the Secret by reference; `optional` ones may be absent from it. */
const SECRET_SETTINGS: Record<'api' | 'worker', Array<{ name: string; optional?: boolean }>> = {
  api: [
    { name: 'DATABASE_URL' },
    { name: 'REDIS_URL' },
    // Set, not generated: a generated key is printed once by whichever pod starts first.
    { name: 'PLATFORM_API_KEY' },
    // Set, not generated: pods that each generated their own key could not read each other's tenants.
    { name: 'TENANT_SECRET_KEY' },
    { name: 'TENANT_DB_SERVERS', optional: true },
    { name: 'STRIPE_WEBHOOK_SECRET', optional: true },
    { name: 'S3_ACCESS_KEY_ID', optional: true },
    { name: 'S3_SECRET_ACCESS_KEY', optional: true },
  ],
  worker: [
    { name: 'DATABASE_URL' },
    { name: 'REDIS_URL' },
    { name: 'TENANT_SECRET_KEY' },
    { name: 'TENANT_DB_SERVERS', optional: true },
    { name: 'S3_ACCESS_KEY_ID', optional: true },
    { name: 'S3_SECRET_ACCESS_KEY', optional: true },
    { name: 'PDNS_API_KEY', optional: true },
  ],
};

const secretEnv = (secretName: string, app: 'api' | 'worker'): IEnvVar[] =>
  SECRET_SETTINGS[app].map(({ name, optional }) => ({ name, valueFrom: { secretKeyRef: { name: secretName, key: name, ...(optional ? { optional: true } : {}) } } }));

const literalEnv = (values: Record<string, number | string>): IEnvVar[] => Object.entries(values).map(([name, value]) => ({ name, value: String(value) }));

/** The pod-level parts both apps share: non-root, read-only root filesystem, writable /tmp and data dir. */
function podSpec(component: string, containers: IContainer[], terminationGracePeriodSeconds: number): IPodSpec {
  return {
    terminationGracePeriodSeconds,
    automountServiceAccountToken: false,
    securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
    // Spread over nodes, so one node's loss takes one replica, not all.
    topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: selectorOf(component) } }],
    containers: containers.map((c) => ({
      ...c,
      securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } },
      volumeMounts: [
        { name: 'tmp', mountPath: '/tmp' },
        { name: 'data', mountPath: SHARED_SETTINGS.TENANTRY_DATA_DIR! },
      ],
    })),
    volumes: [
      { name: 'tmp', emptyDir: {} },
      { name: 'data', emptyDir: {} },
    ],
  };
}

const selectorOf = (component: string) => ({ 'app.kubernetes.io/name': 'tenantry', 'app.kubernetes.io/component': component });

/** The manifests, as validated kubernetes-models objects. Throws RenderError on a bad option. */
export function renderManifests(options: RenderOptions) {
  const image = options.image ?? DEFAULT_IMAGE;
  const namespace = options.namespace ?? DEFAULT_NAMESPACE;
  const secretName = options.secretName ?? DEFAULT_SECRET;
  if (!TAG.test(options.tag)) throw new RenderError(`--tag ${JSON.stringify(options.tag)} is not an image tag (letters, digits, '.', '_', '-'; at most 63; no 'latest' implied)`);
  if (!IMAGE.test(image)) throw new RenderError(`--image ${JSON.stringify(image)} is not an image repository (without a tag)`);
  if (!DNS1123_LABEL.test(namespace)) throw new RenderError(`--namespace ${JSON.stringify(namespace)} is not a DNS-1123 label`);
  if (!DNS1123_LABEL.test(secretName)) throw new RenderError(`--secret ${JSON.stringify(secretName)} is not a DNS-1123 label`);

  const imageRef = `${image}:${options.tag}`;
  const labels = (component: string) => ({ ...selectorOf(component), 'app.kubernetes.io/version': options.tag, 'app.kubernetes.io/part-of': 'tenantry' });
  const meta = (name: string, component?: string) => ({ name, namespace, labels: component ? labels(component) : { 'app.kubernetes.io/name': 'tenantry', 'app.kubernetes.io/part-of': 'tenantry' } });
  const envFrom = [{ configMapRef: { name: 'tenantry-config' } }];

  const config = new ConfigMap({ metadata: meta('tenantry-config'), data: SHARED_SETTINGS });

  const api = new Deployment({
    metadata: meta('tenantry-api', 'api'),
    spec: {
      // No `replicas`: the HPA owns the count (an apply would otherwise reset it).
      selector: { matchLabels: selectorOf('api') },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: labels('api'), annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(API_METRICS_PORT), 'prometheus.io/path': '/metrics' } },
        spec: podSpec(
          'api',
          [
            {
              name: 'api',
              image: imageRef,
              imagePullPolicy: 'IfNotPresent',
              command: ['node', '--enable-source-maps', 'apps/api/dist/main.mjs'],
              ports: [
                { name: 'http', containerPort: API_PORT, protocol: 'TCP' },
                { name: 'metrics', containerPort: API_METRICS_PORT, protocol: 'TCP' },
              ],
              envFrom,
              env: [...literalEnv(API_SHUTDOWN), ...secretEnv(secretName, 'api')],
              // Boot migrates the control plane under Postgres's migration lock: give it time.
              startupProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 90 },
              // Postgres and Redis reachable; 503 from SIGTERM on, while the pod drains.
              readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 2, successThreshold: 1 },
              // The process answers at all; never depends on Postgres or Redis (an outage must not restart every pod).
              livenessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 },
              // No CPU limit: CFS throttling adds latency to a Node server under bursts; the HPA scales on the request.
              resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { memory: '1Gi' } },
            },
          ],
          graceSeconds(apiDrainBoundMs(API_SHUTDOWN)),
        ),
      },
    },
  });

  const worker = new Deployment({
    metadata: meta('tenantry-worker', 'worker'),
    spec: {
      replicas: 2,
      selector: { matchLabels: selectorOf('worker') },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 1 } },
      template: {
        metadata: { labels: labels('worker'), annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(WORKER_METRICS_PORT), 'prometheus.io/path': '/metrics' } },
        spec: podSpec(
          'worker',
          [
            {
              name: 'worker',
              image: imageRef,
              imagePullPolicy: 'IfNotPresent',
              command: ['node', '--enable-source-maps', 'apps/worker/dist/main.mjs'],
              ports: [{ name: 'metrics', containerPort: WORKER_METRICS_PORT, protocol: 'TCP' }],
              envFrom,
              env: [...literalEnv(WORKER_SHUTDOWN), ...secretEnv(secretName, 'worker')],
              // The worker's only HTTP server is its metrics port; /healthz there runs no
              // collector (/metrics queries Postgres and Redis, and would fail in an outage).
              // It takes no traffic, so readiness only paces the rollout: the process is up.
              startupProbe: { httpGet: { path: '/healthz', port: 'metrics' }, periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 90 },
              readinessProbe: { httpGet: { path: '/healthz', port: 'metrics' }, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 2 },
              livenessProbe: { httpGet: { path: '/healthz', port: 'metrics' }, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 },
              resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { memory: '1Gi' } },
            },
          ],
          graceSeconds(workerDrainBoundMs(WORKER_SHUTDOWN)),
        ),
      },
    },
  });

  const service = new Service({
    metadata: meta('tenantry-api', 'api'),
    spec: {
      type: 'ClusterIP',
      selector: selectorOf('api'),
      ports: [
        { name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' },
        { name: 'metrics', port: API_METRICS_PORT, targetPort: 'metrics', protocol: 'TCP' },
      ],
    },
  });

  const hpa = new HorizontalPodAutoscaler({
    metadata: meta('tenantry-api', 'api'),
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'tenantry-api' },
      minReplicas: 2,
      maxReplicas: 10,
      metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }],
      // Up at once; down one pod a minute after five calm minutes (each removal drains).
      behavior: {
        scaleUp: { stabilizationWindowSeconds: 0, policies: [{ type: 'Percent', value: 100, periodSeconds: 30 }] },
        scaleDown: { stabilizationWindowSeconds: 300, policies: [{ type: 'Pods', value: 1, periodSeconds: 60 }] },
      },
    },
  });

  const apiPdb = new PodDisruptionBudget({ metadata: meta('tenantry-api', 'api'), spec: { minAvailable: 1, selector: { matchLabels: selectorOf('api') } } });
  const workerPdb = new PodDisruptionBudget({ metadata: meta('tenantry-worker', 'worker'), spec: { maxUnavailable: 1, selector: { matchLabels: selectorOf('worker') } } });

  const objects = [config, service, api, hpa, apiPdb, worker, workerPdb];
  for (const object of objects) object.validate();
  return objects;
}

/** One multi-document YAML file, headed by how it was made. */
export function toYaml(objects: ReturnType<typeof renderManifests>, command: string): string {
  const header = `# Generated by \`${command}\` (deploy/kubernetes/manifests.ts). Do not edit: render again.\n`;
  return header + objects.map((o) => `---\n${stringify(o.toJSON(), { lineWidth: 0 })}`).join('');
}
