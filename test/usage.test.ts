import { monthOf } from '@tenantry/domain';
import { beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_KEY, type RunningApi, startApi } from './support/apps.js';
import { request, waitFor } from './support/http.js';
import { useStack } from './support/stack.js';

/**
 * Usage metering through two api instances sharing one Postgres and Redis: every
 * authenticated tenant call is counted exactly, by route template, method and status
 * class, and the response bytes too; the usage API reads them back within seconds.
 */
const FLUSH_MS = '250';
const stack = useStack({ api: { USAGE_FLUSH_INTERVAL_MS: FLUSH_MS }, workerEnv: { USAGE_SAMPLE_INTERVAL_MS: '3600000' } });
let second: RunningApi;
const tenants: Array<{ tenantId: string; token: string }> = [];

beforeAll(async () => {
  second = await startApi({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix, USAGE_FLUSH_INTERVAL_MS: FLUSH_MS });
  for (let i = 0; i < 3; i++) {
    const tenant = await stack.signUpTenant();
    // Well above the traffic below: the rate limit has tests of its own.
    await stack.admin('PUT', `/v1/tenants/${tenant.tenantId}/billing-state`, { body: { limits: { apiRequestsPerMinute: 100_000 } } });
    tenants.push(tenant);
  }
  return () => second.close();
});

type Cell = `${string} ${string} ${string}`;

/** What the client saw, per tenant: calls by route, method and status class; body bytes. */
class Expected {
  readonly calls = new Map<string, Map<Cell, number>>();
  readonly bytes = new Map<string, number>();
  add(tenantId: string, route: string, method: string, status: number, body: string) {
    const cells = this.calls.get(tenantId) ?? new Map<Cell, number>();
    const cell: Cell = `${route} ${method} ${Math.floor(status / 100)}xx`;
    cells.set(cell, (cells.get(cell) ?? 0) + 1);
    this.calls.set(tenantId, cells);
    this.bytes.set(tenantId, (this.bytes.get(tenantId) ?? 0) + Buffer.byteLength(body));
  }
}

/** One tenant call, recorded in `expected` as the usage breakdown names it. */
async function call(expected: Expected, api: RunningApi, tenant: { tenantId: string; token: string }, method: string, path: string, route: string, body?: unknown) {
  const res = await fetch(api.baseUrl + path, {
    method,
    headers: { authorization: `Bearer ${tenant.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  expected.add(tenant.tenantId, route, method, res.status, text);
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const DOCS = '/v1/collections/{collection}/documents';
const DOC = '/v1/collections/{collection}/documents/{id}';

async function usageOf(tenantId: string, month?: string) {
  const res = await stack.admin('GET', `/v1/tenants/${tenantId}/usage${month ? `/${month}` : ''}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

/** The usage report's breakdown as cells. */
function cellsOf(report: { meters: { apiRequests: { breakdown: Array<{ route: string; method: string; statusClass: string; count: number }> } } }) {
  return new Map(report.meters.apiRequests.breakdown.map((b) => [`${b.route} ${b.method} ${b.statusClass}` as Cell, b.count]));
}

describe('exact counts through two api instances', () => {
  it('1,000 calls of 3 tenants, 2xx and 4xx alike, are counted exactly by route, method and status class, with their bytes', { timeout: 120_000 }, async () => {
    const expected = new Expected();
    const ids: string[][] = tenants.map(() => []);
    const started = Date.now();
    const work: Array<() => Promise<unknown>> = [];
    for (let i = 0; i < 1_000; i++) {
      const t = i % 3;
      const tenant = tenants[t]!;
      const api = i % 2 === 0 ? stack.api : second;
      switch (i % 5) {
        case 0:
          work.push(async () => {
            const res = await call(expected, api, tenant, 'POST', '/v1/collections/notes/documents', DOCS, { data: { i, text: 'x'.repeat(i % 97) } });
            if (res.status === 201) ids[t]!.push(res.body.id);
          });
          break;
        case 1:
          work.push(() => call(expected, api, tenant, 'GET', '/v1/collections/notes/documents?limit=5', DOCS));
          break;
        case 2:
          // 404: a document id that does not exist.
          work.push(() => call(expected, api, tenant, 'GET', '/v1/collections/notes/documents/00000000-0000-4000-8000-000000000000', DOC));
          break;
        case 3:
          // 400 after authentication: an invalid collection name.
          work.push(() => call(expected, api, tenant, 'POST', '/v1/collections/Not%20Valid/documents', DOCS, { data: {} }));
          break;
        default:
          work.push(() => call(expected, api, tenant, 'GET', '/v1/me', '/v1/me'));
      }
    }
    // 16 at a time, like a busy client pool.
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < work.length) await work[next++]!();
    }));
    const finished = Date.now();

    for (const tenant of tenants) {
      // Visible within 5 s: asOf passes the last answer, and the counts are all there.
      const report = await waitFor(async () => {
        const r = await usageOf(tenant.tenantId);
        return Date.parse(r.asOf) >= finished ? r : undefined;
      }, 5_000, 100);
      const want = expected.calls.get(tenant.tenantId)!;
      expect(cellsOf(report)).toEqual(want);
      expect(report.meters.apiRequests.total).toBe([...want.values()].reduce((a, b) => a + b, 0));
      expect(report.meters.egressBytes.total).toBe(expected.bytes.get(tenant.tenantId));
      expect(report.month).toBe(monthOf(new Date()));
      expect(report.final).toBe(false);
      expect(Date.parse(report.asOf)).toBeGreaterThanOrEqual(started);
    }
    // Both statuses classes really happened.
    const all = [...expected.calls.values()].flatMap((m) => [...m.keys()]);
    expect(all.some((c) => c.endsWith('4xx'))).toBe(true);
    expect(all.some((c) => c.endsWith('2xx'))).toBe(true);
  });

  it('the same call over tRPC counts under the same route; a tenant reads its own usage, and only its own', async () => {
    const [a, b] = tenants as [(typeof tenants)[0], (typeof tenants)[0]];
    const before = await usageOf(a.tenantId);
    const trpc = await request(stack.api.baseUrl, 'GET', '/trpc/auth.me', { token: a.token });
    expect(trpc.status).toBe(200);
    const own = await waitFor(async () => {
      const res = await request(second.baseUrl, 'GET', '/v1/usage', { token: a.token });
      const me = res.body.meters.apiRequests.breakdown.find((x: { route: string; statusClass: string }) => x.route === '/v1/me' && x.statusClass === '2xx');
      const was = before.meters.apiRequests.breakdown.find((x: { route: string; statusClass: string }) => x.route === '/v1/me' && x.statusClass === '2xx');
      return me.count === was.count + 1 ? res.body : undefined;
    }, 5_000, 100);
    expect(own.tenantId).toBe(a.tenantId);
    const theirs = await usageOf(b.tenantId);
    expect(own.meters.apiRequests.total).not.toBe(theirs.meters.apiRequests.total);
  });
});

describe('the usage API', () => {
  it('a month before the tenant existed is all zeros; a past month is final once its grace has passed', async () => {
    const old = await usageOf(tenants[0]!.tenantId, '2020-01');
    expect(old).toMatchObject({ month: '2020-01', from: '2020-01-01T00:00:00.000Z', to: '2020-02-01T00:00:00.000Z', final: true, asOf: '2020-02-01T00:00:00.000Z' });
    expect(old.meters).toEqual({
      apiRequests: { total: 0, breakdown: [] },
      egressBytes: { total: 0 },
      storageBytes: { current: 0, peak: 0, average: 0, sampledAt: null },
      fileStorageBytes: { current: 0, peak: 0, average: 0, sampledAt: null },
      realtimeConnections: { current: 0, peak: 0, average: 0, sampledAt: null },
      availability: { probes: 0, up: 0, ratio: null },
    });
    expect(old.limits.apiRequestsPerMinute).toBe(100_000);
  });

  it.each([
    ['/usage/2026-13', 'month'],
    ['/usage/2026-1', 'month'],
    ['/usage/26-01', 'month'],
    ['/usage/2099-01', 'month'],
    ['/usage?month=next', 'month'],
  ])('GET /v1/tenants/{id}%s → 400 on %s', async (suffix, field) => {
    const res = await stack.admin('GET', `/v1/tenants/${tenants[0]!.tenantId}${suffix}`);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    expect(res.body.fields.map((f: { field: string }) => f.field)).toContain(field);
  });

  it('bad meters, intervals and ranges of the series → 400 naming the field', async () => {
    const base = `/v1/tenants/${tenants[0]!.tenantId}/usage/series`;
    const from = '2026-12-01T00:00:00Z';
    const to = '2026-12-02T00:00:00Z';
    for (const [query, field] of [
      [`?meter=cpu&from=${from}&to=${to}`, 'meter'],
      [`?meter=apiRequests&from=${from}&to=${to}&interval=week`, 'interval'],
      [`?meter=apiRequests&from=${to}&to=${from}`, 'to'],
      [`?meter=apiRequests&from=yesterday&to=${to}`, 'from'],
      [`?meter=apiRequests&from=2020-01-01T00:00:00Z&to=${to}&interval=hour`, 'from'],
    ] as const) {
      const res = await stack.admin('GET', base + query);
      expect(res.status, query).toBe(400);
      expect(res.body.fields.map((f: { field: string }) => f.field), query).toContain(field);
    }
  });

  it('the series sums the counts per hour and per day, with every bucket present', async () => {
    const now = new Date();
    const hour = new Date(Math.floor(now.getTime() / 3_600_000) * 3_600_000);
    const from = new Date(hour.getTime() - 2 * 3_600_000).toISOString();
    const to = new Date(hour.getTime() + 3_600_000).toISOString();
    const report = await usageOf(tenants[0]!.tenantId);
    const hourly = await stack.admin('GET', `/v1/tenants/${tenants[0]!.tenantId}/usage/series?meter=apiRequests&from=${from}&to=${to}&interval=hour`);
    expect(hourly.status).toBe(200);
    expect(hourly.body.points).toHaveLength(3);
    expect(hourly.body.points.map((p: { at: string }) => p.at)).toEqual([0, 1, 2].map((i) => new Date(hour.getTime() - (2 - i) * 3_600_000).toISOString()));
    // This month's counts so far all fall in these three hours only if the month began within them; compare the sum of the last bucket with the month instead when it holds all traffic.
    const total = hourly.body.points.reduce((sum: number, p: { value: number }) => sum + p.value, 0);
    expect(total).toBeGreaterThan(0);
    expect(total).toBeLessThanOrEqual(report.meters.apiRequests.total);
    const day = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
    const daily = await stack.admin(
      'GET',
      `/v1/tenants/${tenants[0]!.tenantId}/usage/series?meter=egressBytes&from=${day.toISOString()}&to=${new Date(day.getTime() + 86_400_000).toISOString()}&interval=day`,
    );
    expect(daily.body.points).toHaveLength(1);
    expect(daily.body.points[0].value).toBeGreaterThan(0);
  });

  it('platform routes refuse tenant credentials; tenant routes refuse the platform key', async () => {
    const [a, b] = tenants as [(typeof tenants)[0], (typeof tenants)[0]];
    const asTenant = await request(stack.api.baseUrl, 'GET', `/v1/tenants/${b.tenantId}/usage`, { token: a.token });
    expect(asTenant.status).toBe(403);
    expect(asTenant.body.code).toBe('platform_key_required');
    const series = await request(stack.api.baseUrl, 'GET', `/v1/tenants/${b.tenantId}/usage/series?meter=apiRequests&from=2026-12-01T00:00:00Z&to=2026-12-02T00:00:00Z`, { token: a.token });
    expect(series.status).toBe(403);
    const asPlatform = await request(stack.api.baseUrl, 'GET', '/v1/usage', { token: PLATFORM_KEY });
    expect(asPlatform.status).toBe(401);
    // A tenant cannot name another tenant at all: the own-usage routes take no tenant id.
    const smuggled = await request(stack.api.baseUrl, 'GET', `/v1/usage?id=${b.tenantId}`, { token: a.token });
    expect(smuggled.status).toBe(400);
    const unknown = await stack.admin('GET', `/v1/tenants/ten_${'0'.repeat(32)}/usage`);
    expect(unknown.status).toBe(404);
  });
});
