import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { STORAGE_SAMPLE_REUSE_MS } from '@tenantry/api';
import { createTenantClient } from '@tenantry/sdk';
import { beforeAll, describe, expect, it } from 'vitest';
import { type RunningApi, startApi } from './support/apps.js';
import { request, waitFor } from './support/http.js';
import { startApiProcess } from './support/process.js';
import { useStack } from './support/stack.js';

/**
 * Quotas: each tenant's request rate across api instances, and its storage, held to its
 * effective limits (the plan's, with the billing state's overrides on top).
 */
const stack = useStack({ api: { USAGE_FLUSH_INTERVAL_MS: '250' }, workerEnv: { USAGE_SAMPLE_INTERVAL_MS: '3600000' } });
let second: RunningApi;
let a: { tenantId: string; token: string };
let b: { tenantId: string; token: string };
let c: { tenantId: string; token: string };

beforeAll(async () => {
  second = await startApi({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix, USAGE_FLUSH_INTERVAL_MS: '250' });
  a = await stack.signUpTenant();
  b = await stack.signUpTenant();
  c = await stack.signUpTenant();
  return () => second.close();
});

const setLimits = (tenantId: string, limits: Record<string, number> | null) => stack.admin('PUT', `/v1/tenants/${tenantId}/billing-state`, { body: { limits } });

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length / 2;
  return Number.isInteger(mid) ? (sorted[mid - 1]! + sorted[mid]!) / 2 : sorted[Math.floor(mid)]!;
}

async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(stack.api.metricsUrl)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return Number(line?.split(' ').at(-1) ?? 0);
}

describe('request rate per tenant', () => {
  it('the call past the limit is 429 with Retry-After and RateLimit-* on any instance; the neighbour is unaffected; refusals are counted', async () => {
    await setLimits(a.tenantId, { apiRequestsPerMinute: 20 });
    const refusedBefore = await metric('tenantry_quota_exceeded_total', 'resource="apiRequestsPerMinute"');
    const statuses: number[] = [];
    let last: Awaited<ReturnType<typeof request>> | undefined;
    for (let i = 0; i < 20; i++) {
      last = await request(i % 2 ? second.baseUrl : stack.api.baseUrl, 'GET', '/v1/me', { token: a.token });
      statuses.push(last.status);
    }
    expect(statuses).toEqual(Array(20).fill(200));
    expect(last!.headers.get('ratelimit-limit')).toBe('20');
    expect(last!.headers.get('ratelimit-remaining')).toBe('0');
    expect(Number(last!.headers.get('ratelimit-reset'))).toBeGreaterThan(0);

    for (const api of [stack.api, second]) {
      const refused = await request(api.baseUrl, 'GET', '/v1/me', { token: a.token });
      expect(refused.status).toBe(429);
      expect(refused.body.code).toBe('rate_limited');
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(60);
      expect(refused.headers.get('ratelimit-remaining')).toBe('0');
      // A refused call refused again (from the instance's memory) answers the same.
      const again = await request(api.baseUrl, 'GET', '/v1/me', { token: a.token });
      expect(again.status).toBe(429);
      expect(again.headers.get('ratelimit-limit')).toBe('20');
    }
    // Every call of a tRPC batch counts.
    const batch = await fetch(`${stack.api.baseUrl}/trpc/auth.me,auth.me?batch=1`, { headers: { authorization: `Bearer ${a.token}` } });
    const calls = (await batch.json()) as Array<{ error?: { data: { code: string } } }>;
    expect(calls.map((c) => c.error?.data.code)).toEqual(['rate_limited', 'rate_limited']);

    const neighbour = await request(second.baseUrl, 'GET', '/v1/me', { token: b.token });
    expect(neighbour.status).toBe(200);
    expect(await metric('tenantry_quota_exceeded_total', 'resource="apiRequestsPerMinute"')).toBeGreaterThan(refusedBefore);

    // Refused calls are metered too, as 4xx (the tRPC calls under the same route as REST's).
    const usage = await waitFor(async () => {
      const res = await stack.admin('GET', `/v1/tenants/${a.tenantId}/usage`);
      const count = (statusClass: string) =>
        res.body.meters.apiRequests.breakdown.find((x: { route: string; statusClass: string }) => x.route === '/v1/me' && x.statusClass === statusClass)?.count;
      return count('4xx') === 6 && count('2xx') === 20 ? res.body : undefined;
    }, 5_000, 100);
    expect(usage.meters.apiRequests.total).toBe(26);
  });

  it('raising the limit lets the tenant through at once, on every instance', async () => {
    await setLimits(a.tenantId, { apiRequestsPerMinute: 10_000 });
    await waitFor(async () => {
      const [one, two] = await Promise.all([stack.api, second].map((api) => request(api.baseUrl, 'GET', '/v1/me', { token: a.token })));
      return one!.status === 200 && two!.status === 200 ? true : undefined;
    }, 1_000, 50);
  });

  // Instances take 1% of a limit from Redis at a time (RATE_LIMIT_LEASE_SHARE's default):
  // at 500 a minute, leases of 5 calls.
  it('with leases, two instances together admit no more than the limit, and at most one lease short of it', { timeout: 60_000 }, async () => {
    const d = await stack.signUpTenant();
    await setLimits(d.tenantId, { apiRequestsPerMinute: 500 });
    const statuses: number[] = [];
    for (let i = 0; i < 520; i++) statuses.push((await request(i % 2 ? second.baseUrl : stack.api.baseUrl, 'GET', '/v1/me', { token: d.token })).status);
    const admitted = statuses.filter((s) => s === 200).length;
    expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
    expect(admitted).toBeLessThanOrEqual(500);
    // The other instance can be left holding at most 4 leased calls unused.
    expect(admitted).toBeGreaterThanOrEqual(496);
  });

  it("one instance's concurrent calls share its leases: RateLimit-Remaining counts down one by one", async () => {
    const d = await stack.signUpTenant();
    await setLimits(d.tenantId, { apiRequestsPerMinute: 400 });
    const answers = await Promise.all(Array.from({ length: 40 }, () => request(stack.api.baseUrl, 'GET', '/v1/me', { token: d.token })));
    expect(answers.map((r) => r.status)).toEqual(Array(40).fill(200));
    // Leases of 4, never two taken for the same calls: exactly 399 down to 360, each once.
    const remaining = answers.map((r) => Number(r.headers.get('ratelimit-remaining'))).sort((x, y) => y - x);
    expect(remaining).toEqual(Array.from({ length: 40 }, (_, i) => 399 - i));
  });

  it("a tenant sending 200× its limit does not raise its neighbour's p95 by more than 20%", { timeout: 180_000 }, async () => {
    await setLimits(a.tenantId, { apiRequestsPerMinute: 60 });
    await setLimits(b.tenantId, { apiRequestsPerMinute: 100_000 });
    // The api in a process of its own: the clients below must not share its event loop.
    const api = await startApiProcess({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix });
    // The same flood aimed at a trivial server that refuses everything, in a process of its
    // own too: what the load generator alone costs this shared 2-core machine, measured in
    // the same run. The api is judged on what it adds beyond that.
    const dummy = fork('-e', [DUMMY_SERVER], { execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const dummyUrl = await new Promise<string>((resolve) => dummy.once('message', (port) => resolve(`http://127.0.0.1:${port}/v1/me`)));
    try {
      const measure = async (n: number) => {
        const times: number[] = [];
        for (let i = 0; i < n; i++) {
          const started = performance.now();
          const res = await fetch(`${api.baseUrl}/v1/me`, { headers: { authorization: `Bearer ${b.token}` } });
          await res.text();
          expect(res.status).toBe(200);
          times.push(performance.now() - started);
        }
        return times;
      };
      const flood = (url: string) => {
        const child = fork('-e', [FLOOD, url, a.token], { execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
        return {
          stop: () =>
            new Promise<{ sent: number; other: number }>((resolve) => {
              child.once('message', (m) => resolve(m as { sent: number; other: number }));
              child.send('stop');
            }),
        };
      };
      await measure(100); // warm up
      const rounds: { control: number; flooded: number }[] = [];
      let floodCalls = 0;
      let floodSeconds = 0;
      let notRefused = 0;
      // Interleaved rounds, so the machine's own noise falls on both sides alike: each round
      // measures the neighbour's p95 with the flood on the trivial server, then on the api.
      for (let round = 0; round < 8; round++) {
        const p95 = { control: 0, flooded: 0 };
        for (const side of ['control', 'flooded'] as const) {
          const floodStarted = performance.now();
          const f = flood(side === 'control' ? dummyUrl : `${api.baseUrl}/v1/me`);
          await new Promise((resolve) => setTimeout(resolve, 300));
          p95[side] = percentile(await measure(150), 95);
          const { sent, other } = await f.stop();
          if (side === 'flooded') {
            floodCalls += sent;
            floodSeconds += (performance.now() - floodStarted) / 1000;
            notRefused += other;
          }
        }
        rounds.push(p95);
      }
      // Judged on the median round: the suite runs files side by side on a shared machine,
      // and a round in which another file's burst took the cores says nothing about the api.
      // Pooling all samples into one p95 let one such round decide (+36% once, in a run whose
      // other rounds were within the bound).
      const excess = median(rounds.map((r) => r.flooded - r.control * 1.2));
      console.info(
        `neighbour p95 by round (flood on a trivial server → on the api, ms): ${rounds.map((r) => `${r.control.toFixed(1)}→${r.flooded.toFixed(1)}`).join(', ')}; ` +
          `median ratio ${median(rounds.map((r) => r.flooded / r.control)).toFixed(2)} (${floodCalls} flood calls in ${floodSeconds.toFixed(1)} s; limit 60/min)`,
      );
      // A flood, or the comparison means nothing: the flooder aims at 200 calls a second, and
      // a busy machine's timers deliver fewer (the suite runs files side by side); at least
      // 50 a second, 50× the limit, must have gone out.
      expect(floodCalls / floodSeconds).toBeGreaterThan(50);
      // All refused but the first 60 of the minute (and none failed).
      expect(notRefused).toBeLessThanOrEqual(60);
      // 20%, and half a millisecond of timer granularity at these small latencies.
      expect(excess).toBeLessThanOrEqual(0.5);
    } finally {
      api.child.kill('SIGTERM');
      dummy.kill();
    }
  });
});

/**
 * The flooding client: 200 calls a second, open loop, whatever the answers (12,000 a minute
 * against a limit of 60). Told to stop, it reports how many it sent and how many were not 429.
 */
const FLOOD = `
  const [url, token] = process.argv.slice(1);
  let sent = 0, other = 0;
  const inFlight = new Set();
  const timer = setInterval(() => {
    const call = fetch(url, { headers: { authorization: 'Bearer ' + token } })
      .then(async (res) => { await res.text(); if (res.status !== 429) other++; }, () => other++)
      .finally(() => inFlight.delete(call));
    inFlight.add(call);
    sent++;
  }, 5);
  process.on('message', async () => {
    clearInterval(timer);
    await Promise.all(inFlight);
    process.send({ sent, other }, () => process.exit(0));
  });`;

/** A server that answers every request 429 with a small JSON body, as the api would. */
const DUMMY_SERVER = `
  const server = require('node:http').createServer((req, res) => {
    req.resume();
    const body = JSON.stringify({ code: 'rate_limited', message: 'Too many requests' });
    res.writeHead(429, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'retry-after': '60' });
    res.end(body);
  });
  server.listen(0, '127.0.0.1', () => process.send(server.address().port));`;

describe('storage quota', () => {
  it('a lowered limit makes writes 402 after the next sample, while reads and deletes work; deleting data or raising the limit restores writes', { timeout: 60_000 }, async () => {
    await setLimits(b.tenantId, { apiRequestsPerMinute: 100_000 });
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      // Random text: Postgres compresses repetitive values to next to nothing.
      const res = await request(stack.api.baseUrl, 'POST', '/v1/collections/big/documents', { token: b.token, body: { data: { i, blob: randomBytes(15_000).toString('base64') } } });
      expect(res.status).toBe(201);
      ids.push(res.body.id);
    }
    await stack.worker!.sampleUsage();
    // Each instance reads a tenant's sample again after STORAGE_SAMPLE_REUSE_MS: then it has this one.
    await new Promise((resolve) => setTimeout(resolve, STORAGE_SAMPLE_REUSE_MS));
    const used = (await stack.admin('GET', `/v1/tenants/${b.tenantId}/usage`)).body.meters.storageBytes.current;
    expect(used).toBeGreaterThan(40 * 20_000 * 0.5);

    // The operator lowers the limit below what is used: the next write is refused.
    await setLimits(b.tenantId, { apiRequestsPerMinute: 100_000, storageBytes: used - 1 });
    const refused = await request(second.baseUrl, 'POST', '/v1/collections/big/documents', { token: b.token, body: { data: { more: true } } });
    expect(refused.status).toBe(402);
    expect(refused.body).toMatchObject({ code: 'quota_exceeded', resource: 'storageBytes' });
    const replace = await request(stack.api.baseUrl, 'PUT', `/v1/collections/big/documents/${ids[0]}`, { token: b.token, body: { data: { i: 0 } } });
    expect(replace.status).toBe(402);
    // The SDK says which limit.
    const sdk = createTenantClient({ baseUrl: stack.api.baseUrl, token: b.token });
    await expect(sdk.documents.create.mutate({ collection: 'big', data: { more: true } })).rejects.toMatchObject({ code: 'quota_exceeded', status: 402, resource: 'storageBytes' });
    expect((await sdk.usage.own.query()).limits.storageBytes).toBe(used - 1);
    expect((await request(stack.api.baseUrl, 'GET', `/v1/collections/big/documents/${ids[0]}`, { token: b.token })).status).toBe(200);
    expect((await request(stack.api.baseUrl, 'GET', '/v1/collections/big/documents?limit=5', { token: b.token })).status).toBe(200);

    // Raising the limit restores writes at once.
    await setLimits(b.tenantId, { apiRequestsPerMinute: 100_000, storageBytes: used * 10 });
    expect((await request(stack.api.baseUrl, 'POST', '/v1/collections/big/documents', { token: b.token, body: { data: { ok: 1 } } })).status).toBe(201);

    // Over again; then the tenant deletes its data: the next sample sees the space freed.
    await setLimits(b.tenantId, { apiRequestsPerMinute: 100_000, storageBytes: used - 1 });
    expect((await request(stack.api.baseUrl, 'POST', '/v1/collections/big/documents', { token: b.token, body: { data: { more: true } } })).status).toBe(402);
    for (const id of ids) expect((await request(stack.api.baseUrl, 'DELETE', `/v1/collections/big/documents/${id}`, { token: b.token })).status).toBe(200);
    // The second instance is refused, and holds the over-limit sample from now on…
    expect((await request(second.baseUrl, 'POST', '/v1/collections/big/documents', { token: b.token, body: { data: { more: true } } })).status).toBe(402);
    const held = Date.now();
    await stack.worker!.sampleUsage();
    const after = (await stack.admin('GET', `/v1/tenants/${b.tenantId}/usage`)).body.meters.storageBytes;
    expect(after.current).toBeLessThan(used - 1);
    expect(after.peak).toBeGreaterThanOrEqual(used);
    // …until the worker announces that the new sample crossed back under the limit: writes
    // come back at the sample, not when the instance would have read it again by itself.
    await waitFor(async () => ((await request(second.baseUrl, 'POST', '/v1/collections/big/documents', { token: b.token, body: { data: { back: true } } })).status === 201 ? true : undefined), 1_000, 25);
    expect(Date.now() - held).toBeLessThan(STORAGE_SAMPLE_REUSE_MS);
  });

  it('a sample that crosses the limit is enforced at once on every instance, though each holds the previous one', { timeout: 60_000 }, async () => {
    await setLimits(c.tenantId, { apiRequestsPerMinute: 100_000 });
    await stack.worker!.sampleUsage();
    const base = (await stack.admin('GET', `/v1/tenants/${c.tenantId}/usage`)).body.meters.storageBytes.current as number;
    // A limit just above what the tenant uses now: the next sample, after these writes, crosses it.
    await setLimits(c.tenantId, { apiRequestsPerMinute: 100_000, storageBytes: base + 200_000 });
    for (let i = 0; i < 40; i++) {
      const res = await request(stack.api.baseUrl, 'POST', '/v1/collections/big/documents', { token: c.token, body: { data: { i, blob: randomBytes(15_000).toString('base64') } } });
      expect(res.status).toBe(201);
    }
    // Both instances hold an under-limit sample now…
    for (const api of [stack.api, second]) expect((await request(api.baseUrl, 'POST', '/v1/collections/big/documents', { token: c.token, body: { data: { x: 1 } } })).status).toBe(201);
    const held = Date.now();
    await stack.worker!.sampleUsage();
    expect((await stack.admin('GET', `/v1/tenants/${c.tenantId}/usage`)).body.meters.storageBytes.current).toBeGreaterThanOrEqual(base + 200_000);
    // …and both refuse writes at the sample that crossed.
    for (const api of [stack.api, second]) {
      await waitFor(async () => ((await request(api.baseUrl, 'POST', '/v1/collections/big/documents', { token: c.token, body: { data: { y: 1 } } })).status === 402 ? true : undefined), 1_000, 25);
    }
    expect(Date.now() - held).toBeLessThan(STORAGE_SAMPLE_REUSE_MS);
  });
});
