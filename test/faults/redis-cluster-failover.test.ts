import { describe, expect, it } from 'vitest';
import { realtimeKeys } from '@tenantry/jobs';
import { type RunningApi, startApi } from '../support/apps.js';
import { request, validSignup, waitForSignup } from '../support/http.js';
import { PrivateRedisCluster } from '../support/redis-cluster.js';
import { openSse } from '../support/sse.js';
import { useStack } from '../support/stack.js';

/**
 * A Redis Cluster master lost mid-traffic (SIGKILL), its replica taking over: three masters
 * with a replica each, a node timeout of 1 s. Redis replicates asynchronously, so the last
 * writes of a lost master may be gone: what must hold is that nothing Tenantry owns is lost
 * with them (Postgres is the source of truth for signups, and a realtime subscriber that
 * may have missed events is told so with a reset) and that everything works again once the
 * replica has taken over.
 */
const REALTIME = { REALTIME_HEARTBEAT_MS: '300', REALTIME_SLOT_TTL_MS: '1500', REALTIME_RECHECK_MS: '60000' };

/**
 * A cluster of its own for each scenario (each kills a master, and a master promoted from a
 * replica has none left), with its apps.
 */
function useFailoverStack() {
  const cluster = {} as { current: PrivateRedisCluster };
  const stack = useStack({
    service: async () => {
      cluster.current = await PrivateRedisCluster.start(3, { replicas: 1, nodeTimeoutMs: 1_000 });
      return { env: cluster.current.env(), stop: () => cluster.current.stop() };
    },
    api: REALTIME,
    // What a lost master forgot (it replicates asynchronously) comes back two ways, made quick
    // for the test: a job it had not yet passed on is re-enqueued from Postgres by the
    // reconciler; a job whose completion it cannot record is redelivered once its lock expires.
    workerEnv: { USAGE_SAMPLE_INTERVAL_MS: '3600000', RECONCILE_INTERVAL_MS: '1000', RECONCILE_STALE_AFTER_MS: '2000', WORKER_LOCK_DURATION_MS: '3000' },
  });
  return { stack, cluster };
}

/** GET /v1/me for `token` every 50 ms, alternating instances, until stopped: the statuses seen. */
function callContinuously(apis: RunningApi[], token: string) {
  const statuses: number[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      // 0: no answer at all (a dropped connection), which must not happen either.
      statuses.push(await request(apis[i % apis.length]!.baseUrl, 'GET', '/v1/me', { token }).then((r) => r.status, () => 0));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return statuses;
    },
  };
}

describe('the master of the queues fails over', () => {
  const { stack, cluster: c } = useFailoverStack();
  it('signups accepted around the failover all end ready, and tenant calls keep answering', async () => {
    const other = await startApi({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix, ...c.current.env(), ...REALTIME });
    let calls: ReturnType<typeof callContinuously> | undefined;
    try {
      const a = await stack.signUpTenant();
      calls = callContinuously([stack.api, other], a.token);
      await c.current.kill(await c.current.masterOf(`{${stack.prefix}}:provisioning`));
      // Signups during the failover: each is accepted (202) or refused at once (503); none hangs.
      const accepted: string[] = [];
      const during: number[] = [];
      const deadline = Date.now() + 4_000;
      while (Date.now() < deadline) {
        const res = await request(stack.api.baseUrl, 'POST', '/v1/signup', { body: validSignup() });
        during.push(res.status);
        if (res.status === 202) accepted.push(res.body.signupId);
        expect(res.ms).toBeLessThan(5_000);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      await c.current.waitUntilHealthy();
      const after = await request(stack.api.baseUrl, 'POST', '/v1/signup', { body: validSignup() });
      expect(after.status).toBe(202);
      accepted.push(after.body.signupId);
      for (const id of accepted) expect((await waitForSignup(stack.api.baseUrl, id, 20_000)).status).toBe('ready');
      expect(during.every((s) => s === 202 || s === 503)).toBe(true);

      const statuses = await calls.stop();
      calls = undefined;
      // The request budget falls back to each instance's memory while Redis cannot answer.
      expect(statuses.length).toBeGreaterThan(20);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
    } finally {
      await calls?.stop();
      await other.close();
    }
  }, 60_000);
});

describe('the master of the realtime streams fails over', () => {
  const { stack, cluster: c } = useFailoverStack();
  it('a subscriber hears every event or a reset, then live events again', async () => {
    const t = await stack.signUpTenant();
    expect((await stack.admin('PUT', `/v1/tenants/${t.tenantId}/billing-state`, { body: { plan: 'pro', subscriptionState: 'active' } })).status).toBe(200);
    const stream = await openSse(stack.api.baseUrl, '/v1/realtime', { token: t.token });
    try {
      expect(stream.status).toBe(200);
      const write = (n: number) => request(stack.api.baseUrl, 'POST', '/v1/collections/notes/documents', { token: t.token, body: { data: { n } } });
      const first = await write(0);
      expect((await stream.next()).data.id).toBe(first.body.id);

      await c.current.kill(await c.current.masterOf(realtimeKeys(stack.prefix).pending));
      // Writes during the failover are stored (Postgres), published or not.
      const during: Array<{ status: number; id: string }> = [];
      const deadline = Date.now() + 4_000;
      for (let n = 1; Date.now() < deadline; n++) {
        const res = await write(n);
        during.push({ status: res.status, id: res.body.id });
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(during.map((w) => w.status).every((s) => s === 201)).toBe(true);
      await c.current.waitUntilHealthy();

      // Live again: a write now reaches the subscriber...
      const late = await write(1000);
      await stream.next((e) => e.data?.id === late.body.id, 20_000);
      // ...and every write of the failover either reached it, or a reset told it to reload.
      const delivered = new Set(stream.events.map((e) => e.data?.id));
      const reset = stream.events.some((e) => e.event === 'reset');
      expect(reset || during.every((w) => delivered.has(w.id))).toBe(true);
    } finally {
      stream.close();
    }
  }, 60_000);
});
