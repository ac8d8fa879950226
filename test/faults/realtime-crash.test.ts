import { describe, expect, it } from 'vitest';
import { waitFor } from '../support/http.js';
import { startApiProcess } from '../support/process.js';
import { openSse } from '../support/sse.js';
import { useStack } from '../support/stack.js';

/**
 * Realtime connection slots live in Redis, counted across api instances; an instance that
 * dies without a word (SIGKILL: no close, no ZREM) must not hold its tenant's slots for
 * ever. Slots carry an expiry, renewed every third of REALTIME_SLOT_TTL_MS by the instance
 * that holds them: here 3 s instead of the default 30 s. (The slot set as a whole also
 * expires, 2 TTLs after its last renewal; the bound below is tighter than that, so it is
 * each slot's own expiry that the test sees.)
 */
const TTL_MS = 3_000;
const REALTIME = { REALTIME_SLOT_TTL_MS: String(TTL_MS), REALTIME_RECHECK_MS: '60000' };
const stack = useStack({ api: REALTIME });

describe('realtime: an api instance SIGKILLed with a stream open', () => {
  it('holds the slot while it lives (renewed past its TTL), and frees it within REALTIME_SLOT_TTL_MS of its death', async () => {
    const tenant = await stack.signUpTenant();
    const limited = await stack.admin('PUT', `/v1/tenants/${tenant.tenantId}/billing-state`, { body: { plan: 'pro', subscriptionState: 'active', limits: { realtimeConnections: 1 } } });
    expect(limited.status).toBe(200);
    // Instance B: a process of its own, so that it can die as a process dies.
    const b = await startApiProcess({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix, ...REALTIME });
    let killedAt: number;
    try {
      const held = await openSse(b.baseUrl, '/v1/realtime', { token: tenant.token });
      expect(held.status).toBe(200);
      // Well past one TTL: only renewals keep the slot taken, and B's stream counts on A.
      await new Promise((resolve) => setTimeout(resolve, 2.5 * TTL_MS));
      const refused = await openSse(stack.api.baseUrl, '/v1/realtime', { token: tenant.token });
      expect([refused.status, refused.error]).toEqual([429, expect.objectContaining({ code: 'quota_exceeded', resource: 'realtimeConnections' })]);
      expect(held.ended).toBe(false);

      const exited = new Promise((resolve) => b.child.once('exit', resolve));
      // Its last renewal was before this instant: its slot expires at most one TTL from here.
      killedAt = performance.now();
      b.child.kill('SIGKILL');
      await exited;
      await held.closed;
    } finally {
      if (b.child.exitCode === null && b.child.signalCode === null) b.child.kill('SIGKILL');
    }

    // At first the dead instance's slot still counts: nothing told Redis it is gone...
    const first = await openSse(stack.api.baseUrl, '/v1/realtime', { token: tenant.token });
    expect([first.status, first.error?.code]).toEqual([429, 'quota_exceeded']);
    // ...then it expires, at most one TTL after B's last renewal, and A lets a new stream in.
    const opened = await waitFor(
      async () => {
        const attempt = await openSse(stack.api.baseUrl, '/v1/realtime', { token: tenant.token });
        return attempt.status === 200 ? attempt : undefined;
      },
      TTL_MS + 2_000,
      50,
    );
    const freedAfter = performance.now() - killedAt!;
    console.log(`slot of the SIGKILLed instance freed ${freedAfter.toFixed(0)} ms after its death (REALTIME_SLOT_TTL_MS ${TTL_MS})`);
    // The margin: one poll and one request on a shared, busy machine.
    expect(freedAfter).toBeLessThan(TTL_MS + 1_000);
    // The stream that took the freed slot is a working one, and the only one: the next is refused again.
    const again = await openSse(stack.api.baseUrl, '/v1/realtime', { token: tenant.token });
    expect(again.status).toBe(429);
    opened.close();
  }, 90_000);
});
