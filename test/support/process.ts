import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildApps, bundleOf } from '../../scripts/build-apps.mjs';
import { PLATFORM_KEY, TENANT_SECRET_KEY } from './apps.js';
import { TEST_REDIS_URL } from './env.js';
import { freePort } from './ports.js';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Set by the test run's global setup once it has built the apps (so each test file does not again). */
export const APPS_BUILT_ENV = 'TENANTRY_TEST_APPS_BUILT';
let building: Promise<void> | undefined;

/**
 * Build the apps as production runs them (scripts/build-apps.mjs), once per process —
 * or not at all when this run's global setup already did. Before spawnApp.
 */
export function ensureAppsBuilt(): Promise<void> {
  if (process.env[APPS_BUILT_ENV] === '1') return Promise.resolve();
  building ??= buildApps();
  return building;
}

/**
 * Start an app as production runs it (apps/<app>/dist/main.mjs, from ensureAppsBuilt) as
 * its own process. With `processGroup`, it leads a process group of its own, so that a test
 * can kill it together with every child it started (initdb, pg_ctl) — as a container
 * runtime or systemd does.
 */
export function spawnApp(app: 'api' | 'worker', env: Record<string, string>, options: { processGroup?: boolean; nodeArgs?: string[] } = {}): ChildProcess & { output: () => string } {
  const bundle = bundleOf(app);
  if (!existsSync(bundle)) throw new Error(`${bundle} is missing: build the apps first (ensureAppsBuilt, or node scripts/build-apps.mjs)`);
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), '--enable-source-maps', bundle], {
    cwd: REPO_ROOT,
    // Only what the test gives, plus PATH: the app must not depend on the developer's env.
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.processGroup ?? false,
  });
  let output = '';
  child.stdout?.on('data', (chunk) => (output += chunk));
  child.stderr?.on('data', (chunk) => (output += chunk));
  return Object.assign(child, { output: () => output });
}

/** Run an app to its exit; resolves with the exit code and everything it printed. */
export async function runToExit(app: 'api' | 'worker', env: Record<string, string>, timeoutMs = 20_000): Promise<{ code: number | null; output: string }> {
  await ensureAppsBuilt();
  const child = spawnApp(app, env);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${app} did not exit within ${timeoutMs} ms:\n${child.output()}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output: child.output() });
    });
  });
}

/**
 * A real api process on a free port, configured like the in-process test apis (same
 * platform key and secret key), ready when this resolves. For tests whose client must not
 * share an event loop with the server, and for signals. `timeoutMs` bounds the start (a
 * benchmark restarting an api on a saturated machine needs longer than a test).
 */
export async function startApiProcess(
  env: Record<string, string>,
  options: { nodeArgs?: string[]; timeoutMs?: number } = {},
): Promise<{ child: ChildProcess & { output: () => string }; baseUrl: string }> {
  await ensureAppsBuilt();
  const port = await freePort();
  const child = spawnApp('api', {
    REDIS_URL: TEST_REDIS_URL,
    HOSTED_MODE: 'true',
    MULTI_TENANT_ENABLED: 'true',
    PLATFORM_API_KEY: PLATFORM_KEY,
    TENANT_SECRET_KEY,
    PORT: String(port),
    API_METRICS_PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    SHUTDOWN_DRAIN_DELAY_MS: '200',
    ...env,
  }, options);
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the api exited with ${child.exitCode}:\n${child.output()}`);
    if ((await fetch(`${baseUrl}/healthz`).catch(() => undefined))?.status === 200) return { child, baseUrl };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`the api did not start:\n${child.output()}`);
}

/**
 * A real worker process, configured like the in-process test workers (same secret key),
 * ready once it has logged that it started (so its LOG_LEVEL must let info through, as
 * the default here does). `timeoutMs` bounds the start.
 */
export async function startWorkerProcess(env: Record<string, string>, options: { nodeArgs?: string[]; timeoutMs?: number } = {}): Promise<ChildProcess & { output: () => string }> {
  await ensureAppsBuilt();
  const child = spawnApp('worker', {
    REDIS_URL: TEST_REDIS_URL,
    TENANT_SECRET_KEY,
    LOG_LEVEL: 'info',
    WORKER_METRICS_PORT: '0',
    WORKER_METRICS_HOST: '127.0.0.1',
    ...env,
  }, options);
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  while (!child.output().includes('worker started')) {
    if (child.exitCode !== null) throw new Error(`the worker exited with ${child.exitCode}:\n${child.output()}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the worker did not start:\n${child.output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return child;
}

/** Signal a child and wait for it to exit (SIGKILL after `timeoutMs`); its exit code or signal. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals, timeoutMs = 30_000): Promise<string> {
  if (child.exitCode !== null || child.signalCode !== null) return `already gone (${child.exitCode ?? child.signalCode})`;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
  return child.exitCode !== null ? `exit ${child.exitCode}` : `${child.signalCode}`;
}
