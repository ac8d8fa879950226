import { describe, expect, it } from 'vitest';
import { realtimeKeys } from '@tenantry/jobs';
import { request } from '../support/http.js';
import { PrivateRedisCluster } from '../support/redis-cluster.js';
import { openSse } from '../support/sse.js';
import { useStack } from '../support/stack.js';

/**
 * A Redis Cluster master lost mid-traffic (SIGKILL), its replica taking over: three masters
 * with a replica each, a node timeout of 1 s. Redis replicates asynchronously, so the last
 * writes of a lost master may be gone: a realtime subscriber that may have missed events must
 * be told so with a reset, and live events must flow again once the replica has taken over.
 * (The queues' master failing over is not covered: see docs/ops/scaling.md, "Redis Cluster".)
 */
const REALTIME = { REALTIME_HEARTBEAT_MS: '300', REALTIME_SLOT_TTL_MS: '1500', REALTIME_RECHECK_MS: '60000' };

/** A cluster of its own for each scenario (a master promoted from a replica has none left), with its apps. */
function useFailoverStack() {
  const cluster = {} as { current: PrivateRedisCluster };
  const stack = useStack({
    service: async () => {
      cluster.current = await PrivateRedisCluster.start(3, { replicas: 1, nodeTimeoutMs: 1_000 });
      return { env: cluster.current.env(), stop: () => cluster.current.stop() };
    },
    api: REALTIME,
    workerEnv: { USAGE_SAMPLE_INTERVAL_MS: '3600000' },
  });
  return { stack, cluster };
}

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
