import { fromPublicId } from '@tenantry/domain';
import { realtimeKeys } from '@tenantry/jobs';
import { createTenantClient } from '@tenantry/sdk';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiMetrics } from '../apps/api/src/metrics.js';
import { RealtimeHub } from '../apps/api/src/realtime/hub.js';
import { type RunningApi, startApi } from './support/apps.js';
import { TEST_REDIS_URL } from './support/env.js';
import { request, waitFor } from './support/http.js';
import { openSse } from './support/sse.js';
import { useStack } from './support/stack.js';

const REALTIME = { REALTIME_HEARTBEAT_MS: '300', REALTIME_SLOT_TTL_MS: '1500', REALTIME_RECHECK_MS: '60000', REALTIME_MAX_BUFFER_BYTES: '1048576' };
// The usage sampler runs when a test says (at instants it chooses), not on its schedule.
const stack = useStack({ api: REALTIME, workerEnv: { USAGE_SAMPLE_INTERVAL_MS: '3600000' } });

/** A second api instance on the same database and Redis: fan-out goes across instances. */
let other: RunningApi;
let a: { tenantId: string; token: string };
let b: { tenantId: string; token: string };

beforeAll(async () => {
  other = await startApi({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix, ...REALTIME });
  [a, b] = await Promise.all([stack.signUpTenant(), stack.signUpTenant()]);
  // Realtime is a paid capability.
  for (const t of [a, b]) expect((await stack.admin('PUT', `/v1/tenants/${t.tenantId}/billing-state`, { body: { plan: 'pro', subscriptionState: 'active' } })).status).toBe(200);
});
afterAll(async () => {
  await other?.close();
});

const write = (baseUrl: string, token: string, collection: string, data: Record<string, unknown>) =>
  request(baseUrl, 'POST', `/v1/collections/${collection}/documents`, { token, body: { data } });

describe('realtime over REST (Server-Sent Events)', () => {
  it('streams created, updated and deleted events with ids, headers flushed at once, and heartbeats', async () => {
    const stream = await openSse(stack.api.baseUrl, '/v1/realtime?collections=notes', { token: a.token });
    try {
      expect(stream.status).toBe(200);
      expect(stream.headers['content-type']).toBe('text/event-stream; charset=utf-8');
      expect(stream.headers['x-accel-buffering']).toBe('no');
      expect(stream.headers['cache-control']).toContain('no-cache');
      const created = await write(stack.api.baseUrl, a.token, 'notes', { title: 'one' });
      const id = created.body.id;
      const first = await stream.next();
      expect(first).toMatchObject({ event: 'document.created', data: { type: 'document.created', collection: 'notes', id, data: { title: 'one' } } });
      expect(first.id).toMatch(/^[0-9a-f]{16}\.\d+-\d+$/);
      expect(Date.parse(first.data.at)).not.toBeNaN();
      await request(stack.api.baseUrl, 'PUT', `/v1/collections/notes/documents/${id}`, { token: a.token, body: { data: { title: 'two' } } });
      expect(await stream.next()).toMatchObject({ event: 'document.updated', data: { id, data: { title: 'two' } } });
      await request(stack.api.baseUrl, 'DELETE', `/v1/collections/notes/documents/${id}`, { token: a.token });
      const deleted = await stream.next();
      expect(deleted).toMatchObject({ event: 'document.deleted', data: { id, collection: 'notes' } });
      expect(deleted.data.data).toBeUndefined();
      // Another collection is not followed.
      await write(stack.api.baseUrl, a.token, 'other', { x: 1 });
      await write(stack.api.baseUrl, a.token, 'notes', { title: 'three' });
      expect((await stream.next()).data.collection).toBe('notes');
      await waitFor(async () => (stream.comments >= 2 ? true : undefined), 5_000);
    } finally {
      stream.close();
    }
  });

  it('a write on instance A reaches a subscriber on instance B and the other way round; p95 under 100 ms', async () => {
    const onOther = await openSse(other.baseUrl, '/v1/realtime', { token: a.token });
    const onThis = await openSse(stack.api.baseUrl, '/v1/realtime', { token: a.token });
    try {
      const latencies: number[] = [];
      for (let i = 0; i < 40; i++) {
        const [writer, reader] = i % 2 === 0 ? [stack.api.baseUrl, onOther] : [other.baseUrl, onThis];
        const started = performance.now();
        const res = await write(writer, a.token, 'fanout', { i });
        const event = await reader.next((e) => e.data.id === res.body.id);
        latencies.push(event.at - started);
      }
      latencies.sort((x, y) => x - y);
      const p95 = latencies[Math.floor(latencies.length * 0.95) - 1]!;
      console.log(`cross-instance event latency (write sent → event received): p50 ${latencies[latencies.length / 2]!.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms`);
      expect(p95).toBeLessThan(100);
    } finally {
      onOther.close();
      onThis.close();
    }
  });

  it('resumes with Last-Event-ID: the missed events, then live; a reset when the id is outside the window', async () => {
    const stream = await openSse(stack.api.baseUrl, '/v1/realtime?collections=resume', { token: a.token });
    await write(stack.api.baseUrl, a.token, 'resume', { n: 1 });
    const seen = await stream.next();
    stream.close();
    const missed: string[] = [];
    for (let n = 2; n <= 4; n++) missed.push((await write(other.baseUrl, a.token, 'resume', { n })).body.id);
    const resumed = await openSse(other.baseUrl, '/v1/realtime?collections=resume', { token: a.token, lastEventId: seen.id });
    try {
      for (const id of missed) expect((await resumed.next()).data.id).toBe(id);
      const live = await write(stack.api.baseUrl, a.token, 'resume', { n: 5 });
      expect((await resumed.next()).data.id).toBe(live.body.id);
    } finally {
      resumed.close();
    }
    // An id from a stream that started afresh (or was never issued) is outside the window.
    const stale = await openSse(stack.api.baseUrl, '/v1/realtime', { token: a.token, lastEventId: '0123456789abcdef.1-0' });
    try {
      const reset = await stale.next();
      expect(reset).toMatchObject({ event: 'reset', data: { type: 'reset' } });
      expect(reset.id).toBeDefined();
    } finally {
      stale.close();
    }
  });

  it('a stream before its first event carries an id, so a reconnect resumes from where it started', async () => {
    const stream = await openSse(stack.api.baseUrl, '/v1/realtime?collections=quiet', { token: a.token });
    await waitFor(async () => (stream.ids.length > 0 ? true : undefined), 5_000);
    const start = stream.ids[0]!;
    stream.close();
    const id = (await write(stack.api.baseUrl, a.token, 'quiet', { x: 1 })).body.id;
    const again = await openSse(other.baseUrl, '/v1/realtime?collections=quiet', { token: a.token, lastEventId: start });
    try {
      expect((await again.next()).data.id).toBe(id);
    } finally {
      again.close();
    }
  });

  it('a tenant only ever receives its own events', async () => {
    const streamA = await openSse(stack.api.baseUrl, '/v1/realtime', { token: a.token });
    const streamB = await openSse(other.baseUrl, '/v1/realtime', { token: b.token });
    try {
      const idsB: string[] = [];
      for (let i = 0; i < 10; i++) {
        await write(stack.api.baseUrl, a.token, 'mixed', { owner: 'A', i });
        idsB.push((await write(other.baseUrl, b.token, 'mixed', { owner: 'B', i })).body.id);
      }
      await streamB.next((e) => e.data.id === idsB.at(-1));
      await streamA.next((e) => e.data.data?.i === 9 && e.data.data.owner === 'A');
      expect(streamA.events.every((e) => e.event === 'reset' || e.data.data?.owner !== 'B')).toBe(true);
      expect(streamB.events.filter((e) => e.data.collection === 'mixed').every((e) => e.data.data.owner === 'B')).toBe(true);
    } finally {
      streamA.close();
      streamB.close();
    }
  });

  it('no event for a write that failed (rolled back)', async () => {
    const stream = await openSse(stack.api.baseUrl, '/v1/realtime?collections=rollback', { token: a.token });
    try {
      // Too large: refused inside the write, nothing committed.
      const refused = await request(stack.api.baseUrl, 'PUT', '/v1/collections/rollback/documents/00000000-0000-4000-8000-000000000000', { token: a.token, body: { data: { x: 1 } } });
      expect(refused.status).toBe(404);
      const ok = await write(stack.api.baseUrl, a.token, 'rollback', { x: 2 });
      const event = await stream.next();
      expect(event.data.id).toBe(ok.body.id);
      expect(stream.events).toHaveLength(1);
    } finally {
      stream.close();
    }
  });
});

/**
 * A hub of its own on the stack's Redis, as a second api instance would run it, with a
 * publish deadline short enough to wait out. `start` it to run its timers (sweeping and
 * releasing marks); left unstarted, it is an instance that died after beginning a write.
 */
function hubOnStack(publishDeadlineMs: number): RealtimeHub {
  return new RealtimeHub({
    redis: { url: TEST_REDIS_URL, cluster: false, prefix: stack.prefix },
    windowMs: 60_000,
    slotTtlMs: 1_500,
    maxBufferBytes: 1024 * 1024,
    recheckMs: 60_000,
    publishDeadlineMs,
    logger: pino({ level: 'silent' }),
    metrics: createApiMetrics(),
  });
}

describe('realtime: a write whose event could be lost', () => {
  const DEADLINE_MS = 1_500;
  const tenantA = () => fromPublicId('ten', a.tenantId)!;
  const tenantB = () => fromPublicId('ten', b.tenantId)!;
  /** The pending marks of a tenant (by its internal id, as the hub keys them). */
  const marksOf = async (redis: Redis, tenantId: string) =>
    (await redis.zrange(realtimeKeys(stack.prefix).pending, '0', '-1', 'WITHSCORES')).flatMap((member, i, all) =>
      i % 2 === 0 && member.startsWith(`${tenantId}|`) ? [{ member, score: Number(all[i + 1]) }] : [],
    );

  it('an api that dies between a write and its publish: the tenant\'s streams get a reset once its mark passes the deadline', async () => {
    const stream = await openSse(stack.api.baseUrl, '/v1/realtime', { token: a.token });
    const dying = hubOnStack(DEADLINE_MS);
    const redis = new Redis(TEST_REDIS_URL);
    try {
      expect(await dying.ready(5_000)).toBe(true);
      // The instances' marks of the tests before are off within a second of their last write.
      await waitFor(async () => ((await marksOf(redis, tenantA())).length === 0 ? true : undefined), 3_000, 50);
      const began = performance.now();
      expect(await dying.beginWrite(tenantA())).toBeDefined();
      expect(await marksOf(redis, tenantA())).toHaveLength(1);
      // It dies here: no publish, no timers, nothing taken off.
      const reset = await stream.next((e) => e.event === 'reset', DEADLINE_MS + 5_000);
      expect(reset.data.reason).toBe('a write may have committed without its event');
      expect(reset.id).toMatch(/^[0-9a-f]{16}\.\d+-\d+$/);
      // Not before the deadline (a live write gets its time), and soon after it: the stack api sweeps every second.
      expect(reset.at - began).toBeGreaterThanOrEqual(DEADLINE_MS - 50);
      expect(reset.at - began).toBeLessThan(DEADLINE_MS + 3_000);
      // One reset, by whichever instance took the mark off.
      expect(await marksOf(redis, tenantA())).toEqual([]);
      expect(stream.events.filter((e) => e.event === 'reset')).toHaveLength(1);
    } finally {
      stream.close();
      redis.disconnect();
      await dying.close();
    }
  });

  it('a burst of writes marks its tenant once; the mark comes off once they are out (and on a graceful close): no needless reset', async () => {
    const stream = await openSse(stack.api.baseUrl, '/v1/realtime?collections=burst', { token: b.token });
    const live = hubOnStack(DEADLINE_MS);
    expect(await live.ready(5_000)).toBe(true);
    live.start(async () => true);
    const redis = new Redis(TEST_REDIS_URL);
    const event = (i: number) => ({ type: 'document.created' as const, collection: 'burst', id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, data: { i }, at: new Date().toISOString() });
    try {
      await waitFor(async () => ((await marksOf(redis, tenantB())).length === 0 ? true : undefined), 3_000, 50);
      const seen = new Set<string>();
      for (let i = 0; i < 10; i++) {
        const token = await live.beginWrite(tenantB());
        const marks = await marksOf(redis, tenantB());
        expect(marks).toHaveLength(1);
        seen.add(`${marks[0]!.member} ${marks[0]!.score}`);
        await live.publish(tenantB(), event(i), token);
      }
      // The same mark, set once, covered all ten.
      expect(seen.size).toBe(1);
      for (let i = 0; i < 10; i++) expect((await stream.next((e) => e.data.id === event(i).id)).data.data).toEqual({ i });
      // Taken off within a second of the last publish, well before its deadline.
      await waitFor(async () => ((await marksOf(redis, tenantB())).length === 0 ? true : undefined), 2_000, 50);
      // Past the deadline: had the mark stayed, the stack api would have reset the stream by now.
      await new Promise((resolve) => setTimeout(resolve, DEADLINE_MS + 1_500));
      expect(stream.events.filter((e) => e.event === 'reset')).toEqual([]);

      // A graceful close takes off the mark of a tenant whose writes are out, at once.
      await live.publish(tenantB(), event(10), await live.beginWrite(tenantB()));
      expect(await marksOf(redis, tenantB())).toHaveLength(1);
      await live.close();
      expect(await marksOf(redis, tenantB())).toEqual([]);
    } finally {
      stream.close();
      redis.disconnect();
      await live.close();
    }
  });
});

describe('realtime: connection quota, lifecycle, entitlements', () => {
  it('the connection past realtimeConnections (counted across instances) gets 429 before the stream starts; a closed one frees its slot', async () => {
    const c = await stack.signUpTenant();
    expect((await stack.admin('PUT', `/v1/tenants/${c.tenantId}/billing-state`, { body: { plan: 'pro', subscriptionState: 'active', limits: { realtimeConnections: 2 } } })).status).toBe(200);
    const one = await openSse(stack.api.baseUrl, '/v1/realtime', { token: c.token });
    const two = await openSse(other.baseUrl, '/v1/realtime', { token: c.token });
    const three = await openSse(stack.api.baseUrl, '/v1/realtime', { token: c.token });
    expect([one.status, two.status, three.status]).toEqual([200, 200, 429]);
    expect(three.error).toMatchObject({ code: 'quota_exceeded', resource: 'realtimeConnections' });
    two.close();
    await waitFor(async () => {
      const again = await openSse(other.baseUrl, '/v1/realtime', { token: c.token });
      if (again.status === 200) {
        again.close();
        return true;
      }
      return undefined;
    }, 5_000);
    one.close();
  });

  it('peak and time-weighted average connections feed the realtimeConnections meter: GET /v1/usage and the series', async () => {
    const g = await stack.signUpTenant();
    const id = fromPublicId('ten', g.tenantId)!;
    expect((await stack.admin('PUT', `/v1/tenants/${g.tenantId}/billing-state`, { body: { plan: 'pro', subscriptionState: 'active', limits: { realtimeConnections: 5 } } })).status).toBe(200);
    const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
    const slots = realtimeKeys(stack.prefix).slots(id);
    const openSlots = () => redis.zcount(slots, `(${Date.now()}`, '+inf');
    const streams: Awaited<ReturnType<typeof openSse>>[] = [];
    try {
      // Every sample of this test in one UTC hour, so one hourly bucket holds them all.
      const toNextHour = 3_600_000 - (Date.now() % 3_600_000);
      if (toNextHour < 30_000) await new Promise((resolve) => setTimeout(resolve, toNextHour + 100));
      expect((await request(stack.api.baseUrl, 'GET', '/v1/usage', { token: g.token })).body.meters.realtimeConnections.sampledAt).toBeNull();

      // The worker's sampler, at instants the test notes: t0 with no stream open.
      const t0 = new Date();
      await stack.worker!.sampleUsage(t0);
      // Three streams across both instances, held...
      for (const baseUrl of [stack.api.baseUrl, other.baseUrl, stack.api.baseUrl]) streams.push(await openSse(baseUrl, '/v1/realtime', { token: g.token }));
      // ...and a burst of two more, closed before any sample sees them.
      const burst = [await openSse(other.baseUrl, '/v1/realtime', { token: g.token }), await openSse(stack.api.baseUrl, '/v1/realtime', { token: g.token })];
      expect([...streams, ...burst].map((s) => s.status)).toEqual([200, 200, 200, 200, 200]);
      for (const s of burst) s.close();
      await waitFor(async () => ((await openSlots()) === 3 ? true : undefined), 5_000);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const t1 = new Date();
      await stack.worker!.sampleUsage(t1);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const t2 = new Date();
      await stack.worker!.sampleUsage(t2);
      for (const s of streams) s.close();
      await waitFor(async () => ((await openSlots()) === 0 ? true : undefined), 5_000);
      const t3 = new Date();
      await stack.worker!.sampleUsage(t3);

      // A gauge is a step function of its samples (0 from t0, 3 from t1, 3 from t2, 0 from
      // t3): its average over the sampled time is ∫ value dt / (t3 − t0). The peak is the
      // exact one the api recorded as streams opened (5), though no sample ever saw more than 3.
      const ms = (a: Date, b: Date) => b.getTime() - a.getTime();
      const average = (0 * ms(t0, t1) + 3 * ms(t1, t2) + 3 * ms(t2, t3)) / ms(t0, t3);
      expect(average).toBeGreaterThan(0.5);
      expect(average).toBeLessThan(2.5);
      const usage = await request(stack.api.baseUrl, 'GET', '/v1/usage', { token: g.token });
      expect(usage.status).toBe(200);
      const meter = usage.body.meters.realtimeConnections;
      expect({ ...meter, average: undefined }).toEqual({ current: 0, peak: 5, average: undefined, sampledAt: t3.toISOString() });
      expect(meter.average).toBeCloseTo(average, 6);

      const hour = new Date(Math.floor(t0.getTime() / 3_600_000) * 3_600_000);
      const series = await stack.admin(
        'GET',
        `/v1/tenants/${g.tenantId}/usage/series?meter=realtimeConnections&interval=hour&from=${hour.toISOString()}&to=${new Date(hour.getTime() + 3_600_000).toISOString()}`,
      );
      expect(series.status).toBe(200);
      expect(series.body.points).toHaveLength(1);
      expect(series.body.points[0]).toEqual({ at: hour.toISOString(), value: expect.closeTo(average, 6), peak: 5 });
    } finally {
      for (const s of streams) s.close();
      redis.disconnect();
    }
  });

  it('without the realtime capability: 403 capability_missing', async () => {
    const d = await stack.signUpTenant();
    const res = await openSse(stack.api.baseUrl, '/v1/realtime', { token: d.token });
    expect([res.status, res.error.code]).toEqual([403, 'capability_missing']);
  });

  it('suspending the tenant closes its open streams on every instance within 1 s', async () => {
    const e = await stack.signUpTenant();
    await stack.admin('PUT', `/v1/tenants/${e.tenantId}/billing-state`, { body: { plan: 'pro', subscriptionState: 'active' } });
    const here = await openSse(stack.api.baseUrl, '/v1/realtime', { token: e.token });
    const there = await openSse(other.baseUrl, '/v1/realtime', { token: e.token });
    const started = performance.now();
    expect((await stack.admin('POST', `/v1/tenants/${e.tenantId}/suspend`, { body: { reason: 'test' } })).status).toBe(200);
    await Promise.all([here.closed, there.closed]);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it("revoking an API key closes the streams opened with it within 1 s; the owner's stay open", async () => {
    const f = await stack.signUpTenant();
    await stack.admin('PUT', `/v1/tenants/${f.tenantId}/billing-state`, { body: { plan: 'pro', subscriptionState: 'active' } });
    const key = await request(stack.api.baseUrl, 'POST', '/v1/api-keys', { token: f.token, body: { name: 'rt', scope: 'read' } });
    expect(key.status).toBe(201);
    const withKey = await openSse(other.baseUrl, '/v1/realtime', { token: key.body.key });
    const withSession = await openSse(other.baseUrl, '/v1/realtime', { token: f.token });
    expect([withKey.status, withSession.status]).toEqual([200, 200]);
    const started = performance.now();
    expect((await request(stack.api.baseUrl, 'DELETE', `/v1/api-keys/${key.body.id}`, { token: f.token })).status).toBe(200);
    await withKey.closed;
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(withSession.ended).toBe(false);
    withSession.close();
  });

  it('a slow consumer is disconnected once its buffer is full; other subscribers and the writer go on', async () => {
    const slow = await openSse(stack.api.baseUrl, '/v1/realtime?collections=flood', { token: a.token });
    const fast = await openSse(stack.api.baseUrl, '/v1/realtime?collections=flood', { token: a.token });
    slow.pause();
    // Loopback sockets buffer tens of MB in the kernel before the api's own buffer grows.
    const big = 'x'.repeat(500_000);
    let last = '';
    const writes: number[] = [];
    for (let i = 0; i < 150; i++) {
      const res = await write(stack.api.baseUrl, a.token, 'flood', { i, big });
      writes.push(res.ms);
      expect(res.status).toBe(201);
      last = res.body.id;
    }
    await fast.next((e) => e.data.id === last);
    // Reading again, the slow client finds its stream was cut: it got only part of the flood.
    slow.resume();
    await slow.closed;
    expect(slow.events.length).toBeLessThan(100);
    fast.close();
    writes.sort((x, y) => x - y);
    expect(writes[Math.floor(writes.length / 2)]!).toBeLessThan(200);
  });
});

describe('realtime over tRPC (the SDK)', () => {
  it('the tenant client subscribes to the same stream (httpSubscriptionLink)', async () => {
    const client = createTenantClient({ baseUrl: other.baseUrl, token: a.token });
    const received: any[] = [];
    const sub = client.realtime.subscribe.subscribe({ collections: 'sdk' }, { onData: (event) => received.push(event) });
    try {
      // The subscription is open once its first (position) message could have arrived.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const res = await write(stack.api.baseUrl, a.token, 'sdk', { via: 'sdk' });
      await waitFor(async () => (received.some((e) => e.data?.id === res.body.id) ? true : undefined), 5_000);
      const event = received.find((e) => e.data?.id === res.body.id);
      expect(event.data).toMatchObject({ type: 'document.created', collection: 'sdk', data: { via: 'sdk' } });
      expect(event.id).toMatch(/^[0-9a-f]{16}\./);
    } finally {
      sub.unsubscribe();
    }
  });
});
