import { Writable } from 'node:stream';
import { createApi, parseApiConfig } from '@tenantry/api';
import { fromPublicId } from '@tenantry/domain';
import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_KEY } from './support/apps.js';
import { TEST_REDIS_URL } from './support/env.js';
import { request, validSignup, waitFor, waitForSignup } from './support/http.js';
import { spawnApp } from './support/process.js';
import { runPromtool } from './support/promtool.js';
import { useStack } from './support/stack.js';

const stack = useStack();

async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return res.text();
}

/** The tenantry_* series of a scrape: `name{labels}` lines, values dropped. */
function tenantrySeries(text: string): string[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('tenantry_'))
    .map((line) => line.slice(0, line.lastIndexOf(' ')));
}

const workerMetricsUrl = () => `http://127.0.0.1:${stack.worker!.metricsPort}/metrics`;

describe('metrics', () => {
  const tenantIds: string[] = [];

  beforeAll(async () => {
    // 100 tenants, made by the platform API (no password to hash: quick).
    const created = await Promise.all(
      Array.from({ length: 100 }, (_, i) => stack.admin('POST', '/v1/tenants', { body: { name: `Metered ${i}`, ownerEmail: `metered-${i}@example.com` } })),
    );
    tenantIds.push(...created.map((r) => r.body.tenantId as string));
    await waitFor(async () => {
      const page = await stack.admin('GET', '/v1/tenants?search=metered&status=active&limit=100');
      return page.body.items.length === 100 ? true : undefined;
    }, 60_000, 200);
  }, 90_000);

  it('the api serves its metrics on their own port, with process metrics', async () => {
    const text = await scrape(stack.api.metricsUrl);
    for (const name of ['tenantry_http_request_duration_seconds_bucket', 'tenantry_entitlement_staleness_seconds', 'process_cpu_seconds_total', 'nodejs_heap_size_used_bytes']) {
      expect(text).toContain(name);
    }
    expect((await request(stack.api.baseUrl, 'GET', '/metrics')).status).toBe(404);
  });

  it('both endpoints pass `promtool check metrics` (names, types, help, after traffic)', async () => {
    await stack.admin('GET', '/v1/tenants?limit=5');
    for (const url of [stack.api.metricsUrl, workerMetricsUrl()]) {
      const text = await scrape(url);
      await expect(runPromtool(['check', 'metrics'], text), url).resolves.toBeDefined();
    }
  });

  it('the number of series does not grow with the number of tenants, and no label carries a tenant', async () => {
    const traffic = async (ids: string[]) => {
      for (const id of ids) {
        await stack.admin('GET', `/v1/tenants/${id}`);
        await stack.admin('GET', `/v1/tenants/${id}/billing-state`);
        await stack.admin('GET', `/v1/tenants/${id}/health`);
        await stack.admin('GET', `/v1/audit?tenantId=${id}&limit=1`);
      }
    };
    await traffic(tenantIds.slice(0, 10));
    const after10 = [...tenantrySeries(await scrape(stack.api.metricsUrl)), ...tenantrySeries(await scrape(workerMetricsUrl()))];
    await traffic(tenantIds.slice(10));
    const after100 = [...tenantrySeries(await scrape(stack.api.metricsUrl)), ...tenantrySeries(await scrape(workerMetricsUrl()))];
    expect(after100.length).toBe(after10.length);
    expect(new Set(after100)).toEqual(new Set(after10));
    for (const series of after100) {
      expect(series).not.toMatch(/ten_|[0-9a-f]{8}-[0-9a-f]{4}|@/);
    }
  });

  it('counts signups by result, rate-limit refusals, and lifecycle transitions', async () => {
    await request(stack.api.baseUrl, 'POST', '/v1/signup', { body: validSignup() });
    await request(stack.api.baseUrl, 'POST', '/v1/signup', { body: { email: 'bad' } });
    await stack.admin('POST', `/v1/tenants/${tenantIds[0]}/suspend`, { body: { reason: 'metrics test' } });
    const text = await scrape(stack.api.metricsUrl);
    expect(text).toMatch(/tenantry_signups_total\{result="accepted"\} [1-9]/);
    expect(text).toMatch(/tenantry_signups_total\{result="invalid"\} [1-9]/);
    expect(text).toMatch(/tenantry_lifecycle_transitions_total\{from="active",to="suspended"\} 1/);
    expect(text).toMatch(/tenantry_http_request_duration_seconds_count\{route="\/v1\/tenants\/\{id\}",method="GET",status_class="2xx"\} \d+/);
  });

  it('the worker reports provisions, tenants by status and queue depth', async () => {
    const text = await scrape(workerMetricsUrl());
    expect(text).toMatch(/tenantry_provisions_total\{status="succeeded",isolation="schema"\} \d+/);
    expect(text).toMatch(/tenantry_provision_duration_seconds_count\{isolation="schema"\} \d+/);
    expect(text).toMatch(/tenantry_active_tenants\{status="active"\} \d+/);
    expect(text).toMatch(/tenantry_queue_jobs\{queue="provisioning",state="waiting"\} \d+/);
  });

  it('the worker answers its liveness probe (GET /healthz) on the metrics port', async () => {
    // The Kubernetes manifests (deploy/kubernetes) probe the worker here: it has no other HTTP server.
    const res = await fetch(`http://127.0.0.1:${stack.worker!.metricsPort}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });
});

describe('per-tenant health', () => {
  it('a healthy tenant: its store answers a real query', async () => {
    const { tenantId } = await stack.signUpTenant({ orgName: 'Healthy Co' });
    const res = await stack.admin('GET', `/v1/tenants/${tenantId}/health`);
    expect(res.body).toMatchObject({
      healthy: true,
      lifecycle: 'active',
      provisioning: { status: 'ready', stepsDone: ['tenant_row', 'storage', 'owner_user', 'trial_billing', 'dns_record', 'activate'] },
      store: { ok: true, error: null },
      dns: { status: 'not_configured', name: null },
    });
  });

  it('a tenant whose store broke: the endpoint says so, the worker probe records it, the gauge counts it', async () => {
    const { tenantId } = await stack.signUpTenant({ orgName: 'Broken Store' });
    const uuid = fromPublicId('ten', tenantId)!;
    const { schema_name } = await stack.database.db.selectFrom('tenants').select('schema_name').where('id', '=', uuid).executeTakeFirstOrThrow();
    await sql`drop schema ${sql.id(schema_name!)} cascade`.execute(stack.database.db);

    const res = await stack.admin('GET', `/v1/tenants/${tenantId}/health`);
    expect(res.body).toMatchObject({ healthy: false, lifecycle: 'active', store: { ok: false } });
    expect(res.body.store.error).toMatch(/documents/);

    const { failed } = await stack.worker!.probeTenants();
    expect(failed).toBeGreaterThanOrEqual(1);
    const probe = await stack.admin('GET', `/v1/tenants/${tenantId}/health`);
    expect(probe.body.lastProbe).toMatchObject({ ok: false, consecutiveFailures: 1 });
    const text = await scrape(workerMetricsUrl());
    expect(Number(text.match(/^tenantry_tenants_unhealthy (\d+)/m)?.[1])).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/tenantry_tenant_probe_failures_total [1-9]/);
  });
});

describe('logs', () => {
  it('carry request id, route and tenant; no password, token, key or hash ever appears', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const config = parseApiConfig({
      DATABASE_URL: stack.database.url,
      REDIS_URL: TEST_REDIS_URL,
      REDIS_PREFIX: stack.prefix,
      HOSTED_MODE: 'true',
      MULTI_TENANT_ENABLED: 'true',
      PORT: '0',
      API_METRICS_PORT: '0',
      HOST: '127.0.0.1',
      PLATFORM_API_KEY: PLATFORM_KEY,
      LOG_LEVEL: 'debug',
    });
    const api = await createApi(config, { logger: pino({ level: 'debug' }, sink) });
    const { port } = await api.listen();
    const base = `http://127.0.0.1:${port}`;
    try {
      const body = validSignup({ password: 'the-secret-passphrase-42' });
      const accepted = await request(base, 'POST', '/v1/signup', { body, headers: { 'x-request-id': 'req-observability-1' } });
      await waitForSignup(base, accepted.body.signupId);
      const login = await request(base, 'POST', '/v1/auth/login', { body: { email: body.email, password: body.password } });
      await request(base, 'GET', '/v1/me', { token: login.body.token });
      await request(base, 'POST', '/v1/auth/login', { body: { email: body.email, password: 'a-wrong-password-guess' } });
      await stack.admin('PUT', `/v1/tenants/${login.body.tenantId}/billing-state`, { body: { plan: 'pro' } });
      const key = await request(base, 'POST', '/v1/api-keys', { token: login.body.token, body: { name: 'log-test', scope: 'read' } });
      await request(base, 'GET', '/v1/api-keys', { token: key.body.key });
      await request(base, 'GET', '/v1/tenants', { token: PLATFORM_KEY });

      const log = lines.join('');
      const hash = (await stack.database.db.selectFrom('users').select('password_hash').where('email', '=', body.email.toLowerCase()).executeTakeFirstOrThrow()).password_hash!;
      for (const secret of ['the-secret-passphrase-42', 'a-wrong-password-guess', login.body.token, key.body.key, PLATFORM_KEY, hash]) {
        expect(log).not.toContain(secret);
      }
      const entries = lines.map((l) => JSON.parse(l));
      const signupLine = entries.find((e) => e.msg === 'request' && e.requestId === 'req-observability-1');
      expect(signupLine).toMatchObject({ route: '/v1/signup', method: 'POST', status: 202 });
      const meLine = entries.find((e) => e.msg === 'request' && e.route === '/v1/me');
      expect(meLine.tenantId).toBe(fromPublicId('ten', login.body.tenantId));
    } finally {
      await api.close();
    }
  });
});

describe('api shutdown', () => {
  it('SIGTERM: in-flight requests finish, new connections are refused, the process exits 0', async () => {
    const child = spawnApp('api', {
      DATABASE_URL: stack.database.url,
      REDIS_URL: TEST_REDIS_URL,
      REDIS_PREFIX: stack.prefix,
      HOSTED_MODE: 'true',
      MULTI_TENANT_ENABLED: 'true',
      PORT: '0',
      API_METRICS_PORT: '0',
      HOST: '127.0.0.1',
      PLATFORM_API_KEY: PLATFORM_KEY,
      SIGNUP_RATE_LIMIT_PER_HOUR: '1000',
      SHUTDOWN_TIMEOUT_MS: '5000',
      SHUTDOWN_DRAIN_DELAY_MS: '1500',
    });
    const port = await waitFor(async () => {
      const match = child.output().match(/"msg":"api listening"/) && child.output().match(/"port":(\d+)/);
      return match ? Number(match[1]) : undefined;
    }, 20_000);
    const base = `http://127.0.0.1:${port}`;
    // Signups hash a password (tens of ms each): several are in flight when the signal lands.
    const inFlight = Array.from({ length: 8 }, () => request(base, 'POST', '/v1/signup', { body: validSignup() }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const signalled = Date.now();
    child.kill('SIGTERM');
    // While draining the api still answers, but tells the load balancer it is not ready.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const readyz = await request(base, 'GET', '/readyz');
    expect([readyz.status, readyz.body.status]).toEqual([503, 'draining']);
    const results = await Promise.all(inFlight);
    expect(results.map((r) => r.status)).toEqual(Array(8).fill(202));
    const code = await new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', resolve)));
    expect(code).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(1_500 + 5_000 + 3_000);
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });
});
