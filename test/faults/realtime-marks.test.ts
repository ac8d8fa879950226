import { randomUUID } from 'node:crypto';
import { realtimeKeys } from '@tenantry/jobs';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiMetrics } from '../../apps/api/src/metrics.js';
import { RealtimeHub } from '../../apps/api/src/realtime/hub.js';
import { waitFor } from '../support/http.js';
import { PrivateRedis } from '../support/redis-server.js';

/**
 * Realtime's pending marks (apps/api/src/realtime/hub.ts): one mark per tenant and api
 * instance covers that instance's writes for most of the publish deadline, so the hub
 * remembers which tenants it has marked. A Redis restart loses the marks (this private
 * server keeps no data). Had the hub trusted its memory, an api dying between a later
 * write's commit and its publish would leave no mark behind, and its tenant's
 * subscribers a silent gap instead of a reset.
 */
let redis: PrivateRedis;
beforeAll(async () => {
  redis = await PrivateRedis.start();
});
afterAll(async () => {
  await redis?.kill();
});

describe('realtime marks across a Redis restart', () => {
  it('the first write of a tenant after Redis came back marks it again, though its lost mark had most of its deadline left', async () => {
    const prefix = 'marks';
    const hub = new RealtimeHub({
      redis: { url: redis.url, cluster: false, prefix },
      windowMs: 60_000,
      slotTtlMs: 1_500,
      maxBufferBytes: 1024 * 1024,
      recheckMs: 60_000,
      logger: pino({ level: 'silent' }),
      metrics: createApiMetrics(),
    });
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 100 });
    client.on('error', () => undefined);
    const tenantId = randomUUID();
    const marks = () => client.zrange(realtimeKeys(prefix).pending, '0', '-1');
    try {
      expect(await hub.ready(5_000)).toBe(true);
      // A write under way (begun, not yet published): its tenant is marked, for 30 s.
      expect(await hub.beginWrite(tenantId)).toBeDefined();
      expect(await marks()).toEqual([expect.stringMatching(new RegExp(`^${tenantId}\\|`))]);

      await redis.kill();
      await waitFor(async () => ((await hub.ready(0)) ? undefined : true), 5_000, 20);
      await redis.start();
      await waitFor(async () => ((await hub.ready(100)) ? true : undefined), 10_000, 50);
      expect(await marks()).toEqual([]);

      expect(await hub.beginWrite(tenantId)).toBeDefined();
      expect(await marks()).toEqual([expect.stringMatching(new RegExp(`^${tenantId}\\|`))]);
    } finally {
      client.disconnect();
      await hub.close();
    }
  }, 30_000);
});
