import { randomUUID } from 'node:crypto';
import { type CounterDelta, type Db, applyCounterFlush, createDb, retireUsageInstance } from '@tenantry/db';
import type { CounterMeter } from '@tenantry/domain';
import type { Logger } from 'pino';
import type { ApiMetrics } from '../metrics.js';
import { withTimeout } from '../timeout.js';

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;

/** The dimensions of a counter: for apiRequests the route template, method and status class. */
export interface CounterDimensions {
  route?: string;
  method?: string;
  statusClass?: string;
}

export interface UsageMeterOptions {
  databaseUrl: string;
  flushIntervalMs: number;
  /** A flush that has not answered by then is abandoned and retried, with the same sequence number. */
  flushTimeoutMs: number;
  logger: Logger;
  metrics: ApiMetrics;
}

/**
 * The api instance's counters (apiRequests, egressBytes), exact across restarts and retries:
 *
 * - Each call adds to an in-memory cell per (tenant, meter, dimensions, minute): no I/O on
 *   the request path.
 * - Every `flushIntervalMs` the cells are swapped out as one snapshot with the next
 *   sequence number, and written by `applyCounterFlush` in one transaction that also
 *   claims (instance id, sequence). Only one snapshot is in flight at a time: a failed or
 *   timed-out flush is retried as it was, same number, same counts, so a flush whose
 *   commit did happen (only the answer was lost) is not added twice; meanwhile new counts
 *   gather in fresh cells.
 * - On SIGTERM, `close` flushes what is left. A SIGKILL loses the counts not yet flushed:
 *   at most one flush interval of this instance's traffic, or, while Postgres is away,
 *   what gathered since it went.
 *
 * Flushes go over a connection of their own, so metering never waits for (or starves) the
 * request path's pool; a flush stuck on a dead connection is abandoned with that connection.
 */
export class UsageMeter {
  readonly instanceId = randomUUID();
  private cells = new Map<string, CounterDelta>();
  /** Oldest record in `cells` (for the unflushed-age gauge). */
  private oldestUnflushed: number | undefined;
  private pending: { seq: number; flushedUpTo: Date; deltas: CounterDelta[]; since: number } | undefined;
  private seq = 0;
  private db: Db | undefined;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: UsageMeterOptions) {
    options.metrics.usageUnflushedSeconds.set(0);
  }

  /** Count `amount` for the tenant (an api request: 1; egress: bytes). */
  record(tenantId: string, meter: CounterMeter, amount: number, dimensions: CounterDimensions = {}): void {
    if (amount <= 0) return;
    const now = Date.now();
    const minute = Math.floor(now / MINUTE_MS) * MINUTE_MS;
    const route = dimensions.route ?? '';
    const method = dimensions.method ?? '';
    const statusClass = dimensions.statusClass ?? '';
    const key = `${tenantId}\u0000${meter}\u0000${route}\u0000${method}\u0000${statusClass}\u0000${minute}`;
    const cell = this.cells.get(key);
    if (cell) cell.amount += amount;
    else this.cells.set(key, { tenantId, meter, hour: new Date(minute), route, method, statusClass, amount });
    this.oldestUnflushed ??= now;
  }

  start(): void {
    const tick = () => {
      this.timer = setTimeout(() => {
        void this.flush().finally(() => {
          if (!this.stopped) tick();
        });
      }, this.options.flushIntervalMs);
      this.timer.unref();
    };
    tick();
  }

  /** One flush: the pending snapshot if a retry is due, else a new one. Never throws. */
  flush(): Promise<void> {
    this.flushing ??= this.flushOnce().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  /** Stop the timer and flush until nothing is left, or `deadlineMs` passes. */
  async close(deadlineMs: number): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const deadline = Date.now() + deadlineMs;
    while ((this.pending || this.cells.size > 0) && Date.now() < deadline) {
      await this.flush();
      if (this.pending) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (this.pending || this.cells.size > 0) {
      this.options.logger.error({ cells: this.cells.size + (this.pending?.deltas.length ?? 0) }, 'usage counts could not be flushed before shutdown');
    } else if (this.db) {
      // Everything is in: this instance no longer holds the others' asOf back.
      await retireUsageInstance(this.db, this.instanceId).catch(() => undefined);
    }
    await this.db?.destroy().catch(() => undefined);
  }

  private async flushOnce(): Promise<void> {
    const { metrics, logger } = this.options;
    if (!this.pending) {
      const flushedUpTo = new Date();
      this.pending = { seq: ++this.seq, flushedUpTo, deltas: this.snapshot(), since: this.oldestUnflushed ?? flushedUpTo.getTime() };
      this.oldestUnflushed = undefined;
    }
    const pending = this.pending;
    const started = performance.now();
    try {
      const db = (this.db ??= createDb(this.options.databaseUrl, {
        maxConnections: 1,
        applicationName: 'tenantry-api-usage',
        onError: (message) => logger.warn(message),
      }));
      await withTimeout(applyCounterFlush(db, { instanceId: this.instanceId, seq: pending.seq, flushedUpTo: pending.flushedUpTo, deltas: pending.deltas }), this.options.flushTimeoutMs).catch(
        (err: unknown) => {
          // The connection may be stuck mid-flush: give it up (its transaction commits or
          // not on its own; the retry's claim of the same sequence tells which) and start afresh.
          if (this.db === db) this.db = undefined;
          void db.destroy().catch(() => undefined);
          throw err;
        },
      );
      this.pending = undefined;
      metrics.usageFlushDuration.observe((performance.now() - started) / 1000);
      metrics.usageFlushRows.observe(pending.deltas.length);
    } catch (err) {
      metrics.usageFlushFailures.inc();
      logger.warn({ err: (err as Error).message, seq: pending.seq, cells: pending.deltas.length }, 'usage flush failed; retrying with the same sequence');
    }
    const oldest = this.pending?.since ?? this.oldestUnflushed;
    metrics.usageUnflushedSeconds.set(oldest === undefined ? 0 : (Date.now() - oldest) / 1000);
  }

  /** The cells, summed per hour (what the rollups store), and a fresh map for new counts. */
  private snapshot(): CounterDelta[] {
    const byHour = new Map<string, CounterDelta>();
    for (const cell of this.cells.values()) {
      const hour = new Date(Math.floor(cell.hour.getTime() / HOUR_MS) * HOUR_MS);
      const key = `${cell.tenantId}\u0000${cell.meter}\u0000${cell.route}\u0000${cell.method}\u0000${cell.statusClass}\u0000${hour.getTime()}`;
      const sum = byHour.get(key);
      if (sum) sum.amount += cell.amount;
      else byHour.set(key, { ...cell, hour });
    }
    this.cells = new Map();
    return [...byHour.values()];
  }
}
