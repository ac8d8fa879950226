import type { WorkerInstance } from '@tenantry/worker';
import { afterAll, beforeAll } from 'vitest';
import type { ApiOptions } from '@tenantry/api';
import { PLATFORM_KEY, type RunningApi, startApi, startWorker } from './apps.js';
import { type TestDatabase, createTestDatabase } from './database.js';
import { request, validSignup, waitForSignup } from './http.js';
import { deleteRedisKeys, redisPrefix } from './redis.js';

export interface Stack {
  database: TestDatabase;
  api: RunningApi;
  worker: WorkerInstance | undefined;
  prefix: string;
  /** Call the api's REST routes (`/v1/...`), with the platform key unless `token` says otherwise. */
  admin<T = any>(method: string, path: string, options?: { body?: unknown; token?: string }): ReturnType<typeof request<T>>;
  /** Sign a tenant up through the public endpoint, wait for it, log its owner in. */
  signUpTenant(overrides?: Record<string, unknown>): Promise<{ tenantId: string; token: string; email: string; password: string }>;
}

export interface StackOptions {
  /** Extra env of the api only. */
  api?: Record<string, string>;
  /** Options of the api (e.g. a logger to inspect). */
  apiOptions?: ApiOptions;
  worker?: boolean;
  /** Extra env of the worker only. */
  workerEnv?: Record<string, string>;
  /**
   * A service both apps use that must be started first (e.g. a private PowerDNS): its env
   * goes to the api and the worker; it is stopped after them.
   */
  service?: () => Promise<{ env: Record<string, string>; stop(): Promise<void> }>;
}

/**
 * The usual fixture of a test file: its own database and Redis prefix, a real api and
 * (unless `worker: false`) a real worker, torn down after the file.
 */
export function useStack(options: StackOptions = {}): Stack {
  const stack = { prefix: redisPrefix() } as Stack;
  let service: { env: Record<string, string>; stop(): Promise<void> } | undefined;
  beforeAll(async () => {
    service = await options.service?.();
    stack.database = await createTestDatabase();
    const env = { DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix, ...service?.env };
    stack.api = await startApi({ ...env, SIGNUP_RATE_LIMIT_PER_HOUR: '10000', ...options.api }, options.apiOptions);
    stack.worker = options.worker === false ? undefined : await startWorker({ ...env, ...options.workerEnv });
  });
  afterAll(async () => {
    await stack.worker?.close();
    await stack.api?.close();
    await stack.database?.drop();
    await deleteRedisKeys(stack.prefix);
    await service?.stop();
  });
  stack.admin = (method, path, opts = {}) => request(stack.api.baseUrl, method, path, { body: opts.body, token: opts.token ?? PLATFORM_KEY });
  stack.signUpTenant = async (overrides = {}) => {
    const body = validSignup(overrides);
    const accepted = await request(stack.api.baseUrl, 'POST', '/v1/signup', { body });
    const final = await waitForSignup(stack.api.baseUrl, accepted.body.signupId);
    if (final.status !== 'ready') throw new Error(`signup ended ${final.status}`);
    const login = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email: body.email, password: body.password } });
    return { tenantId: final.tenantId, token: login.body.token, email: body.email as string, password: body.password as string };
  };
  return stack;
}
