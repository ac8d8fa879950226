import { parseApiConfig } from '@tenantry/api';
import { parseWorkerConfig } from '@tenantry/worker';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Deployment, type IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IContainer } from 'kubernetes-models/v1/Container';
import { Service } from 'kubernetes-models/v1/Service';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from './support/process.js';

/**
 * deploy/kubernetes: rendered by the real CLI for an image tag, then every document is
 * checked against the Kubernetes JSON schemas (kubernetes-models: the API's OpenAPI
 * definitions compiled to ajv validators) and for what matters when it runs: probes on the
 * apps' real health routes and ports, a grace period longer than the drain, no literal
 * secret, the tag everywhere, resources set, and a configuration the apps accept at boot.
 */
const run = promisify(execFile);
const TAG = '2026.12.1-rc.3';
const IMAGE = 'registry.example.com/acme/tenantry';

// Kubernetes' schema of each kind the render may produce; any other kind fails the test.
const SCHEMAS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};

type Doc = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [key: string]: unknown };

let dir: string;
let text: string;
let docs: Doc[];

const render = (args: string[]) => run(process.execPath, ['--import', 'tsx', 'deploy/kubernetes/render.ts', ...args], { cwd: REPO_ROOT });

function schemaErrors(doc: Doc): string | undefined {
  const Model = SCHEMAS[`${doc.apiVersion}/${doc.kind}`];
  if (!Model) return `no schema for ${doc.apiVersion}/${doc.kind}`;
  try {
    new Model(structuredClone(doc) as never).validate();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

const find = <T = Doc>(kind: string, name: string) => {
  const doc = docs.find((d) => d.kind === kind && d.metadata.name === name);
  expect(doc, `${kind}/${name}`).toBeDefined();
  return doc as T;
};
const deployment = (name: string) => find<IDeployment & Doc>('Deployment', name);
const containerOf = (name: string): IContainer => deployment(name).spec!.template.spec!.containers[0]!;
const configData = () => find<{ data: Record<string, string> } & Doc>('ConfigMap', 'tenantry-config').data;
/** A container's env as the process would see it: the ConfigMap, then its own literal values. */
function literalEnv(name: string): Record<string, string> {
  const own = Object.fromEntries((containerOf(name).env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
  return { ...configData(), ...own };
}
/** The container port a probe's named port means. */
function portNumber(container: IContainer, port: number | string): number {
  if (typeof port === 'number') return port;
  const match = container.ports?.find((p) => p.name === port);
  expect(match, `port ${port}`).toBeDefined();
  return match!.containerPort;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'tenantry-k8s-'));
  const { stdout } = await render(['--tag', TAG, '--image', IMAGE, '--namespace', 'prod-tenantry', '--out', dir]);
  expect(stdout).toContain('tenantry.yaml');
  text = readFileSync(path.join(dir, 'tenantry.yaml'), 'utf8');
  const parsed = parseAllDocuments(text);
  for (const d of parsed) expect(d.errors).toEqual([]);
  docs = parsed.map((d) => d.toJS() as Doc);
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('rendered Kubernetes manifests', () => {
  it('every document passes the Kubernetes JSON schema of its kind', () => {
    expect(docs.map((d) => `${d.kind}/${d.metadata.name}`).sort()).toEqual(
      [
        'ConfigMap/tenantry-config',
        'Deployment/tenantry-api',
        'Deployment/tenantry-worker',
        'HorizontalPodAutoscaler/tenantry-api',
        'PodDisruptionBudget/tenantry-api',
        'PodDisruptionBudget/tenantry-worker',
        'Service/tenantry-api',
      ].sort(),
    );
    for (const doc of docs) expect(schemaErrors(doc), `${doc.kind}/${doc.metadata.name}`).toBeUndefined();
    for (const doc of docs) expect(doc.metadata.namespace).toBe('prod-tenantry');
  });

  it('the schema check refuses what an API server would refuse', () => {
    const broken = structuredClone(deployment('tenantry-api'));
    (broken.spec!.template.spec!.containers[0] as { ports: unknown[] }).ports[0] = { name: 'http', containerPort: 'three thousand' };
    expect(schemaErrors(broken)).toMatch(/containerPort must be integer/);
    const noContainers = structuredClone(deployment('tenantry-worker'));
    delete (noContainers.spec!.template.spec as { containers?: unknown }).containers;
    expect(schemaErrors(noContainers)).toMatch(/containers/);
  });

  it('runs the given image tag in every container, nothing else', () => {
    for (const name of ['tenantry-api', 'tenantry-worker']) {
      for (const c of deployment(name).spec!.template.spec!.containers) expect(c.image).toBe(`${IMAGE}:${TAG}`);
      expect(deployment(name).spec!.template.metadata!.labels!['app.kubernetes.io/version']).toBe(TAG);
    }
    expect(text).not.toMatch(/:latest\b|\{\{|\$\{/);
  });

  it('probes the api on /readyz and /healthz of its HTTP port, the worker on /healthz of its metrics port', () => {
    const api = containerOf('tenantry-api');
    const apiEnv = parseApiConfig(literalEnv('tenantry-api'));
    expect(api.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(api.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(portNumber(api, api.readinessProbe!.httpGet!.port)).toBe(apiEnv.PORT);
    expect(portNumber(api, api.livenessProbe!.httpGet!.port)).toBe(apiEnv.PORT);

    const worker = containerOf('tenantry-worker');
    const workerEnv = parseWorkerConfig(literalEnv('tenantry-worker'));
    expect(worker.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(worker.readinessProbe?.httpGet?.path).toBe('/healthz');
    expect(portNumber(worker, worker.livenessProbe!.httpGet!.port)).toBe(workerEnv.WORKER_METRICS_PORT);

    // The Service sends traffic to the api's HTTP port, and selects the api's pods only.
    const service = find<{ spec: { selector: Record<string, string>; ports: Array<{ name: string; targetPort: string }> } } & Doc>('Service', 'tenantry-api');
    expect(portNumber(api, service.spec.ports.find((p) => p.name === 'http')!.targetPort)).toBe(apiEnv.PORT);
    expect(deployment('tenantry-api').spec!.template.metadata!.labels).toMatchObject(service.spec.selector);
    expect(deployment('tenantry-worker').spec!.template.metadata!.labels).not.toMatchObject(service.spec.selector);
  });

  it('gives each pod a termination grace period longer than its longest drain', () => {
    // The drains as the apps' close() bounds them (apps/api/src/app.ts, apps/worker/src/app.ts):
    // api: drain delay, listener (≤ SHUTDOWN_TIMEOUT_MS), queues (≤ 2 s), final usage flush (≤ SHUTDOWN_TIMEOUT_MS).
    const api = parseApiConfig(literalEnv('tenantry-api'));
    const apiDrainMs = api.SHUTDOWN_DRAIN_DELAY_MS + 2 * api.SHUTDOWN_TIMEOUT_MS + 2_000;
    // worker: active jobs (≤ SHUTDOWN_TIMEOUT_MS), hand-back and close (2 × 2 s), a watch pass (≤ SHUTDOWN_TIMEOUT_MS).
    const worker = parseWorkerConfig(literalEnv('tenantry-worker'));
    const workerDrainMs = 2 * worker.SHUTDOWN_TIMEOUT_MS + 4_000;
    expect(deployment('tenantry-api').spec!.template.spec!.terminationGracePeriodSeconds! * 1000).toBeGreaterThan(apiDrainMs);
    expect(deployment('tenantry-worker').spec!.template.spec!.terminationGracePeriodSeconds! * 1000).toBeGreaterThan(workerDrainMs);
    // And the drain delay outlasts a readiness failure's propagation: at least one probe period.
    expect(api.SHUTDOWN_DRAIN_DELAY_MS).toBeGreaterThanOrEqual(containerOf('tenantry-api').readinessProbe!.periodSeconds! * 1000);
  });

  it('holds no secret value: secrets come from a Secret by reference, and no Secret is rendered', () => {
    expect(docs.some((d) => d.kind === 'Secret')).toBe(false);
    const secretish = /SECRET|PASSWORD|TOKEN|_KEY$|KEY_ID$|^DATABASE_URL$|^REDIS_URL$|^TENANT_DB_SERVERS$|^PLATFORM_API_KEY$|^LICENSE$/;
    expect(Object.keys(configData()).filter((k) => secretish.test(k))).toEqual([]);
    for (const name of ['tenantry-api', 'tenantry-worker']) {
      const env = containerOf(name).env ?? [];
      for (const e of env.filter((e) => secretish.test(e.name))) {
        expect(e.value, `${name} ${e.name}`).toBeUndefined();
        expect(e.valueFrom?.secretKeyRef?.name, `${name} ${e.name}`).toBe('tenantry-secrets');
      }
      // The settings without which a pod cannot run, or would run wrong, are required references.
      const required = env.filter((e) => e.valueFrom?.secretKeyRef && !e.valueFrom.secretKeyRef.optional).map((e) => e.name);
      expect(required).toEqual(expect.arrayContaining(['DATABASE_URL', 'REDIS_URL', 'TENANT_SECRET_KEY']));
    }
    expect(containerOf('tenantry-api').env!.find((e) => e.name === 'PLATFORM_API_KEY')?.valueFrom?.secretKeyRef?.optional).toBeFalsy();
  });

  it('the apps accept the configuration at boot, with the secrets filled in', () => {
    const secrets = { DATABASE_URL: 'postgres://tenantry@pg:5432/tenantry', REDIS_URL: 'redis://redis:6379', TENANT_SECRET_KEY: Buffer.alloc(32, 7).toString('base64'), PLATFORM_API_KEY: 'a-platform-key-of-enough-length-000000' };
    const api = parseApiConfig({ ...literalEnv('tenantry-api'), ...secrets });
    expect(api).toMatchObject({ HOSTED_MODE: true, MULTI_TENANT_ENABLED: true, FILE_STORAGE_DRIVER: 's3', TENANT_CLUSTER_DRIVER: 'kubernetes' });
    expect(parseWorkerConfig({ ...literalEnv('tenantry-worker'), ...secrets })).toMatchObject({ FILE_STORAGE_DRIVER: 's3' });
  });

  it('sets resources, an HPA for the api and disruption budgets for both', () => {
    for (const name of ['tenantry-api', 'tenantry-worker']) {
      const { resources } = containerOf(name);
      expect(resources?.requests?.cpu, name).toBeDefined();
      expect(resources?.requests?.memory, name).toBeDefined();
      expect(resources?.limits?.memory, name).toBeDefined();
      const pdb = find<{ spec: { selector: { matchLabels: Record<string, string> } } } & Doc>('PodDisruptionBudget', name);
      expect(deployment(name).spec!.template.metadata!.labels).toMatchObject(pdb.spec.selector.matchLabels);
    }
    const hpa = find<{ spec: { scaleTargetRef: { kind: string; name: string }; minReplicas: number; maxReplicas: number } } & Doc>('HorizontalPodAutoscaler', 'tenantry-api');
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: 'tenantry-api' });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    // The HPA owns the api's replica count: a Deployment that named one would reset it on every apply.
    expect(deployment('tenantry-api').spec!.replicas).toBeUndefined();
    // A budget that lets the minimum set of api pods be disrupted to zero would be none.
    expect(find<{ spec: { minAvailable: number } } & Doc>('PodDisruptionBudget', 'tenantry-api').spec.minAvailable).toBeGreaterThanOrEqual(1);
  });

  it('refuses to render without a valid tag', async () => {
    for (const args of [[], ['--tag', 'bad tag;rm'], ['--tag', '']]) {
      const failure = await render([...args, '--out', '-']).then(
        () => undefined,
        (err: { code: number; stderr: string }) => err,
      );
      expect(failure?.code, args.join(' ')).toBe(1);
      expect(failure?.stderr).toMatch(/k8s:render: .*tag/);
    }
  });
});
