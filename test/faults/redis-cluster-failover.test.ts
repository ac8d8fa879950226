import type { Cluster } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createWorkerRedis, realtimeKeys, redisSettingsOf } from '@tenantry/jobs';
import { type RunningApi, startApi } from '../support/apps.js';
import { request, validSignup, waitFor, waitForSignup } from '../support/http.js';
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
 *
 * The queues' scenario also covers a client-library fault found with it: a worker whose
 * blocking connection was re-armed during the failover stopped fetching for good (the
 * maintenance schedules, the signup reconciler among them, never ran again), because
 * ioredis's Cluster.connect() left its promise unsettled. The last scenario shows the fix
 * (packages/jobs redis.ts, settlingConnect) on its own, deterministically.
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

describe('a cluster client told to connect while the cluster is down', () => {
  it('connect() settles once the cluster is whole again, though its first ready check failed', { timeout: 60_000 }, async () => {
    // No replicas: with a master gone the cluster is down (cluster_state:fail) until it is back.
    const cluster = await PrivateRedisCluster.start(3, { nodeTimeoutMs: 1_000 });
    const client = createWorkerRedis(redisSettingsOf({ REDIS_URL: cluster.url, REDIS_CLUSTER: true, REDIS_PREFIX: 'settle' }), 'settle-test') as Cluster;
    try {
      await waitFor(async () => (client.status === 'ready' ? true : undefined), 10_000);
      const lost = cluster.ports[0]!;
      await cluster.kill(lost);
      await waitFor(async () => {
        const info = String(await cluster.nodeCall(cluster.ports[1]!, 'CLUSTER', 'INFO'));
        return info.includes('cluster_state:fail') ? true : undefined;
      }, 10_000);
      // What BullMQ does when its watchdog re-arms a blocking connection: close it, connect again.
      await new Promise((resolve) => {
        client.once('end', resolve);
        client.disconnect();
      });
      let settled: 'resolved' | 'rejected' | undefined;
      const connecting = client.connect().then(
        () => (settled = 'resolved'),
        () => (settled = 'rejected'),
      );
      // The slot map is read from the live masters, but the ready check fails while the
      // cluster is down: the client reconnects on its own, and must not give up.
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      expect(settled).toBeUndefined();

      await cluster.restart(lost);
      await cluster.waitUntilHealthy();
      // Plain ioredis never settles this promise (its reconnection made a new one).
      await Promise.race([connecting, new Promise((resolve) => setTimeout(resolve, 15_000))]);
      expect(settled).toBe('resolved');
      expect(client.status).toBe('ready');
      expect(await client.set('settle:key', 'value')).toBe('OK');
    } finally {
      client.disconnect();
      await cluster.stop();
    }
  });
});
