/**
 * A fleet of real tenants for the benchmarks that need many (data-plane, scale): provisioned
 * through the real saga, each with a session token for its owner, and a seeded sequence to
 * draw them from.
 */
import type { Db } from '@tenantry/db';
import { type Isolation, fromPublicId } from '@tenantry/domain';
import { sql } from 'kysely';
import { newSessionToken } from '../../apps/api/src/services/sessions.js';
import { PLATFORM_KEY } from '../support/apps.js';
import { request } from '../support/http.js';
import { pool, sleep } from './support.js';

export interface FleetTenant {
  /** Raw uuid. */
  id: string;
  /** `ten_…`, as the api shows it. */
  publicId: string;
  isolation: Isolation;
}

const POLL_MS = 10;

/**
 * `counts` tenants of each isolation model, made through POST /v1/tenants with the platform
 * key (no ownerPassword: no argon2 hash in the way) and each waited for until `active`,
 * `concurrency` at a time. Models are spread evenly through the sequence, not bunched at one
 * end. Plan pro, enterprise for cluster tenants (the only plan that allows them).
 */
export async function provisionFleet(
  baseUrl: string,
  runId: string,
  counts: Partial<Record<Isolation, number>>,
  options: { concurrency: number; timeoutMs?: number; label?: string },
): Promise<FleetTenant[]> {
  const models = (['schema', 'database', 'cluster'] as const).filter((m) => (counts[m] ?? 0) > 0);
  const total = models.reduce((a, m) => a + counts[m]!, 0);
  // Bresenham-style interleave: model m's k-th tenant lands at about k × total / counts[m].
  const sequence: Isolation[] = [];
  const placed = Object.fromEntries(models.map((m) => [m, 0])) as Record<Isolation, number>;
  for (let i = 0; i < total; i++) {
    let next: Isolation = models[0]!;
    let nextDue = Infinity;
    for (const m of models) {
      const due = (placed[m] + 0.5) / counts[m]!;
      if (placed[m] < counts[m]! && due < nextDue) [next, nextDue] = [m, due];
    }
    placed[next] += 1;
    sequence.push(next);
  }
  const timeoutMs = options.timeoutMs ?? 180_000;
  const label = options.label ?? 'fleet';
  let done = 0;
  const progress = setInterval(() => console.log(`  … ${done}/${total} tenants active`), 15_000);
  try {
    return await pool(total, options.concurrency, async (i) => {
      const isolation = sequence[i]!;
      const accepted = await request(baseUrl, 'POST', '/v1/tenants', {
        token: PLATFORM_KEY,
        body: { name: `Bench ${runId} ${label} ${i}`, ownerEmail: `${label}-${runId}-${i}@example.com`, plan: isolation === 'cluster' ? 'enterprise' : 'pro', isolation },
      });
      if (accepted.status !== 202) throw new Error(`POST /v1/tenants → ${accepted.status} ${JSON.stringify(accepted.body)}`);
      const publicId: string = accepted.body.tenantId;
      const started = performance.now();
      for (;;) {
        const res = await request(baseUrl, 'GET', `/v1/tenants/${publicId}`, { token: PLATFORM_KEY });
        if (res.status === 200 && res.body.status === 'active') break;
        if (res.status !== 200 || res.body.status !== 'provisioning') throw new Error(`tenant ${publicId}: GET → ${res.status} ${JSON.stringify(res.body)}`);
        if (performance.now() - started > timeoutMs) throw new Error(`tenant ${publicId} not active after ${timeoutMs} ms`);
        await sleep(isolation === 'cluster' ? 200 : POLL_MS);
      }
      done += 1;
      return { id: fromPublicId('ten', publicId)!, publicId, isolation };
    });
  } finally {
    clearInterval(progress);
  }
}

/**
 * A session per tenant for its owner, written straight into the sessions table with the
 * api's token format and hash — what POST /v1/auth/login would store, minus the argon2
 * verification (fixture setup, not what is measured; the owners have no password anyway).
 */
export async function mintSessions<T extends { id: string }>(db: Db, tenants: readonly T[]): Promise<Array<T & { token: string }>> {
  const owners = await db
    .selectFrom('memberships')
    .select(['tenant_id', 'user_id'])
    .where('role', '=', 'owner')
    .where(
      'tenant_id',
      'in',
      tenants.map((t) => t.id),
    )
    .execute();
  const ownerOf = new Map(owners.map((o) => [o.tenant_id, o.user_id]));
  const out: Array<T & { token: string }> = [];
  const rows = tenants.map((t) => {
    const userId = ownerOf.get(t.id);
    if (!userId) throw new Error(`tenant ${t.id} has no owner`);
    const { token, tokenHash } = newSessionToken();
    out.push({ ...t, token });
    return { token_hash: tokenHash, user_id: userId, tenant_id: t.id, expires_at: sql<Date>`now() + interval '1 day'` };
  });
  for (let i = 0; i < rows.length; i += 500) await db.insertInto('sessions').values(rows.slice(i, i + 500)).execute();
  return out;
}

/** mulberry32: a seeded sequence, so runs draw the same tenants and documents in the same order. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
