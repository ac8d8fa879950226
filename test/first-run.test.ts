import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestDatabase, createTestDatabase } from './support/database.js';
import { TEST_REDIS_URL } from './support/env.js';
import { request, waitFor } from './support/http.js';
import { freePort } from './support/ports.js';
import { REPO_ROOT } from './support/process.js';
import { deleteRedisKeys, redisPrefix } from './support/redis.js';
import { destroyClusterRoot, makeClusterRoot } from './support/tenant-clusters.js';

/**
 * The README's run command, as a newcomer meets it: `node scripts/start.mjs` (what `pnpm
 * start` runs) on a machine where nothing is configured but where Postgres and Redis are —
 * no platform key, no TENANT_SECRET_KEY. It must print where everything is, generate what
 * it needs, serve tenants of every isolation model, and stop cleanly on Ctrl-C.
 */
let database: TestDatabase;
let launcher: ChildProcess;
let output = '';
let baseUrl: string;
let platformKey: string;
const prefix = redisPrefix();
const dataDir = mkdtempSync(path.join(tmpdir(), 'tenantry-first-run-'));
const clusterRoot = makeClusterRoot();

beforeAll(async () => {
  database = await createTestDatabase();
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  launcher = spawn(process.execPath, ['scripts/start.mjs'], {
    cwd: REPO_ROOT,
    // A process group of its own, as a terminal gives a foreground job: Ctrl-C reaches all of it.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/root',
      DATABASE_URL: database.url,
      REDIS_URL: TEST_REDIS_URL,
      REDIS_PREFIX: prefix,
      HOST: '127.0.0.1',
      PORT: String(port),
      API_METRICS_PORT: String(await freePort()),
      WORKER_METRICS_PORT: String(await freePort()),
      HOSTED_MODE: 'true',
      MULTI_TENANT_ENABLED: 'true',
      TENANTRY_DATA_DIR: dataDir,
      TENANT_CLUSTER_DATA_DIR: clusterRoot,
      TENANT_CLUSTER_SETTINGS: 'shared_buffers=8MB max_connections=20',
    },
  });
  launcher.stdout!.on('data', (chunk) => (output += chunk));
  launcher.stderr!.on('data', (chunk) => (output += chunk));
  await waitFor(async () => (output.includes('Tenantry is up.') && output.includes('worker started') ? true : undefined), 60_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${output}`);
  });
  platformKey = /^api\s+\|\s+(tpk_\S+)$/m.exec(output)?.[1] ?? '';
}, 90_000);

afterAll(async () => {
  if (launcher && launcher.exitCode === null) process.kill(-launcher.pid!, 'SIGKILL');
  destroyClusterRoot(clusterRoot);
  await database?.drop();
  await deleteRedisKeys(prefix);
  rmSync(dataDir, { recursive: true, force: true });
});

describe('the first run', () => {
  it('says where everything is, and generates a platform key and the installation key, once', () => {
    expect(output).toMatch(/Tenantry is up\. API http:\/\/127\.0\.0\.1:\d+\/v1 · dashboard http:\/\/127\.0\.0\.1:\d+\/dashboard\/ · reference http:\/\/127\.0\.0\.1:\d+\/v1\/openapi\.json \(docs\/api\.md\) · metrics http:\/\/127\.0\.0\.1:\d+\/metrics · platform key: generated and printed above, once/);
    expect(platformKey).toMatch(/^tpk_/);
    expect(output.match(/generated the installation key/g)).toHaveLength(1);
    const keyFile = path.join(dataDir, 'secret.key');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    // Each line is labelled with the app it came from.
    expect(output).toMatch(/^worker\s*\| .*worker started/m);
  });

  it('serves the dashboard it built', async () => {
    const page = await fetch(`${baseUrl}/dashboard/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(await page.text()).toContain('<div id="root"');
  });

  it.each([
    ['database', 'pro'],
    ['cluster', 'enterprise'],
  ])('serves a %s tenant out of the box, with the generated key', { timeout: 90_000 }, async (isolation, plan) => {
    const owner = { email: `first-run-${isolation}@example.com`, password: 'violet-otter-stapler-42' };
    const created = await request(baseUrl, 'POST', '/v1/tenants', {
      token: platformKey,
      body: { name: `First ${isolation}`, ownerEmail: owner.email, ownerPassword: owner.password, plan, isolation },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    await waitFor(async () => {
      const tenant = await request(baseUrl, 'GET', `/v1/tenants/${created.body.tenantId}`, { token: platformKey });
      return tenant.body.status === 'active' ? true : undefined;
    }, 60_000, 200);
    const login = await request(baseUrl, 'POST', '/v1/auth/login', { body: owner });
    expect(login.status).toBe(200);
    const doc = await request(baseUrl, 'POST', '/v1/collections/notes/documents', { token: login.body.token, body: { data: { hello: isolation } } });
    expect(doc.status).toBe(201);
    const read = await request(baseUrl, 'GET', `/v1/collections/notes/documents/${doc.body.id}`, { token: login.body.token });
    expect(read.body.data).toEqual({ hello: isolation });
  });

  it('Ctrl-C stops both apps gracefully and exits 0', async () => {
    const exited = new Promise<number | null>((resolve) => launcher.on('exit', (code) => resolve(code)));
    process.kill(-launcher.pid!, 'SIGINT');
    expect(await exited).toBe(0);
    expect(output).toMatch(/^api\s+\| .*shutting down/m);
    expect(output).toMatch(/^worker\s*\| .*shutting down/m);
    expect(output).not.toMatch(/exited with/);
  });
});
