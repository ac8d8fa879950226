import { Kysely, type Transaction } from 'kysely';
import { LazyBeginPostgresDialect } from '../../dialect.js';
import { createGuardedPool } from '../../pg-faults.js';
import type { Database } from '../../schema.js';
import { tenantContextStatement } from '../../tenant-context.js';
import type { AttachedStore, IsolationLog, TenantPoolOptions } from '../driver.js';

interface PoolEntry {
  db: Kysely<Database>;
  /** The tenant row's placement_generation the pool was opened for. */
  generation: number;
  /** Runs using the pool right now: it is closed only when none is. */
  active: number;
  evicted: boolean;
  closed: boolean;
}

const codeOf = (err: unknown) => (err as { code?: string }).code;

/** Errors after which a tenant's pool is not worth keeping (its database or role changed or went away). */
function isConnectionProblem(err: unknown): boolean {
  const code = codeOf(err);
  // ECONNREFUSED: a tenant instance that is down, or came back on another port; 57P03: one
  // starting (a fenced old primary); 25006: one read-only (no longer the primary).
  return (
    typeof code === 'string' &&
    (code.startsWith('08') || code.startsWith('28') || code === '3D000' || code === '57P01' || code === '57P03' || code === '25006' || code === 'ECONNREFUSED')
  );
}

/**
 * Errors only a connection's start-up gives (refused, not accepting connections yet,
 * refused by pg_hba, no such database): nothing of the transaction reached the server, so
 * running it again elsewhere cannot apply it twice. After a cluster failover the tenant's
 * row names the new primary while a pool may still point at the fenced old one.
 */
function isStartupRefusal(err: unknown): boolean {
  const code = codeOf(err);
  return code === 'ECONNREFUSED' || code === '57P03' || code === '28000' || code === '28P01' || code === '3D000';
}

/**
 * Per-tenant connection pools for tenants reached through their own login role (database
 * and cluster isolation): `run` gives `fn` a transaction on the tenant's own database with
 * app.tenant_id set for the RLS policy as well. Bounded: at most `maxPools` pools of
 * `connectionsPerPool` connections (LRU), so the connections one process holds stay at or
 * below maxPools × connectionsPerPool however many tenants use it.
 *
 * `connectionOf` says where and as whom a tenant connects (it reads and decrypts the
 * placement) and for which placement generation; it is called once per pool opened. A
 * request whose tenant ref is of a newer generation than the pool (the tenant moved since
 * the pool was opened) gets a fresh pool, so no pool outlives the placement it was made for.
 */
export class TenantPools {
  private readonly pools = new Map<string, Promise<PoolEntry>>();

  constructor(
    private readonly connectionOf: (tenantId: string) => Promise<{ url: string; generation: number }>,
    private readonly options: TenantPoolOptions,
    private readonly warn: IsolationLog,
  ) {}

  /** Open tenant pools (for tests and metrics). */
  get poolCount(): number {
    return this.pools.size;
  }

  /**
   * A pool whose server refused a new connection is dropped, and the transaction tried
   * once more on a pool opened from the tenant's row as it is now: after a failover's
   * routing switch every process follows on its next request, with no restart and no
   * error, whichever process it is. Errors past start-up are not retried (the
   * transaction may have committed).
   */
  async run<T>(tenant: { id: string; placementGeneration: number }, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    try {
      return await this.runOnce(tenant, fn);
    } catch (err) {
      if (!isStartupRefusal(err)) throw err;
      return this.runOnce(tenant, fn);
    }
  }

  private async runOnce<T>(tenant: { id: string; placementGeneration: number }, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    const tenantId = tenant.id;
    const entry = await this.acquire(tenantId, tenant.placementGeneration);
    try {
      return await runAsTenant(entry.db, tenantId, fn);
    } catch (err) {
      if (isConnectionProblem(err)) this.evict(tenantId);
      throw err;
    } finally {
      entry.active -= 1;
      if (entry.evicted && entry.active === 0) this.closeEntry(entry);
    }
  }

  /** Close every pool (shutdown). */
  async close(): Promise<void> {
    const entries = await Promise.allSettled([...this.pools.values()]);
    this.pools.clear();
    await Promise.all(entries.map((e) => (e.status === 'fulfilled' ? e.value.db.destroy().catch(() => undefined) : undefined)));
  }

  private async acquire(tenantId: string, generation: number): Promise<PoolEntry> {
    let pending = this.pools.get(tenantId);
    if (pending) {
      // Most recently used goes to the end of the map's order.
      this.pools.delete(tenantId);
      this.pools.set(tenantId, pending);
    } else {
      const opening = this.open(tenantId);
      pending = opening;
      this.pools.set(tenantId, opening);
      opening.catch(() => {
        if (this.pools.get(tenantId) === opening) this.pools.delete(tenantId);
      });
      while (this.pools.size > this.options.maxPools) {
        const oldest = this.pools.keys().next().value as string;
        this.evict(oldest);
      }
    }
    const entry = await pending;
    // Evicted and closed while we waited for it: open a fresh one.
    if (entry.closed) return this.acquire(tenantId, generation);
    // Opened for a placement the tenant has since moved away from.
    if (entry.generation < generation) {
      if (this.pools.get(tenantId) === pending) this.evict(tenantId);
      // Whatever the fresh pool reads is the newest placement: take it, never loop.
      return this.acquire(tenantId, Number.NEGATIVE_INFINITY);
    }
    entry.active += 1;
    return entry;
  }

  private evict(tenantId: string): void {
    const pending = this.pools.get(tenantId);
    if (!pending) return;
    this.pools.delete(tenantId);
    pending.then(
      (entry) => {
        entry.evicted = true;
        if (entry.active === 0) this.closeEntry(entry);
      },
      () => undefined,
    );
  }

  private closeEntry(entry: PoolEntry): void {
    if (entry.closed) return;
    entry.closed = true;
    entry.db.destroy().catch((err: Error) => this.warn(`closing a tenant pool failed: ${err.message}`));
  }

  private async open(tenantId: string): Promise<PoolEntry> {
    const { url, generation } = await this.connectionOf(tenantId);
    const pool = createGuardedPool(
      {
        connectionString: url,
        max: this.options.connectionsPerPool,
        idleTimeoutMillis: this.options.idleTimeoutMillis ?? 10_000,
        connectionTimeoutMillis: 5_000,
        application_name: this.options.applicationName,
      },
      'tenant store',
      (message) => this.warn(message),
    );
    return { db: new Kysely<Database>({ dialect: new LazyBeginPostgresDialect(pool) }), generation, active: 0, evicted: false, closed: false };
  }
}

/** A transaction on a tenant's own database with app.tenant_id set (the RLS policy's key). */
export function runAsTenant<T>(db: Kysely<Database>, tenantId: string, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    await tenantContextStatement(tenantId, { asDataRole: false }).execute(trx);
    return fn(trx);
  });
}

/**
 * A tenant's own database at `url` (its role and password in it) as an AttachedStore: a
 * small pool of its own, outside the LRU, for the length of a move step.
 */
export function attachTenantDatabase(url: string, tenantId: string, options: { applicationName: string; warn: IsolationLog }): AttachedStore {
  const pool = createGuardedPool(
    { connectionString: url, max: 2, idleTimeoutMillis: 10_000, connectionTimeoutMillis: 5_000, application_name: options.applicationName },
    'tenant store (move)',
    (message) => options.warn(message),
  );
  const db = new Kysely<Database>({ dialect: new LazyBeginPostgresDialect(pool) });
  return {
    run: (fn) => runAsTenant(db, tenantId, fn),
    close: () => db.destroy(),
  };
}
