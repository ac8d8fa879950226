import { type ApiInstance, type ApiOptions, createApi, parseApiConfig } from '@tenantry/api';
import { type WorkerInstance, createWorker, parseWorkerConfig } from '@tenantry/worker';
import { TEST_REDIS_URL } from './env.js';

export interface RunningApi {
  api: ApiInstance;
  baseUrl: string;
  metricsUrl: string;
  close(): Promise<void>;
}

/** The platform key test apis accept unless a test configures its own. */
export const PLATFORM_KEY = 'tpk_test-platform-key-for-the-suite';

/** The tenant-secret key (database isolation) of test apis and workers: 32 bytes, base64. */
export const TENANT_SECRET_KEY = Buffer.from('tenantry-test-key-32-bytes-long!').toString('base64');

/** A real api on a free port, configured like production except where `env` says. */
export async function startApi(env: Record<string, string>, options: ApiOptions = {}): Promise<RunningApi> {
  const config = parseApiConfig({
    REDIS_URL: TEST_REDIS_URL,
    HOSTED_MODE: 'true',
    MULTI_TENANT_ENABLED: 'true',
    PORT: '0',
    API_METRICS_PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    SHUTDOWN_TIMEOUT_MS: '2000',
    // In-process test apis are closed by the test, not by a load balancer.
    SHUTDOWN_DRAIN_DELAY_MS: '0',
    // The producer decides a job's attempts and backoff: keep failure paths quick.
    PROVISION_ATTEMPTS: '3',
    PROVISION_BACKOFF_MS: '50',
    PLATFORM_API_KEY: PLATFORM_KEY,
    TENANT_SECRET_KEY,
    ...env,
  });
  const api = await createApi(config, options);
  const { port, metricsPort } = await api.listen();
  return { api, baseUrl: `http://127.0.0.1:${port}`, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, close: () => api.close() };
}

/** A real worker, with short retry and lock timings so failure paths finish quickly. */
export async function startWorker(env: Record<string, string>, options: Parameters<typeof createWorker>[1] = {}): Promise<WorkerInstance> {
  const config = parseWorkerConfig({
    REDIS_URL: TEST_REDIS_URL,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    PROVISION_ATTEMPTS: '3',
    PROVISION_BACKOFF_MS: '50',
    SHUTDOWN_TIMEOUT_MS: '5000',
    WORKER_METRICS_PORT: '0',
    WORKER_METRICS_HOST: '127.0.0.1',
    TENANT_SECRET_KEY,
    ...env,
  });
  return createWorker(config, options);
}
