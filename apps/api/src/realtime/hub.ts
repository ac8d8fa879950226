import { randomBytes, randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { DependencyUnavailableError, type DocumentEvent, QuotaExceededError, type RealtimeEvent } from '@tenantry/domain';
import { type RedisClient, type RedisSettings, connectionFor, createFailFastRedis, createQueueingRedis, createSubscriberRedis, realtimeKeys } from '@tenantry/jobs';
import { type TrackedEnvelope, tracked } from '@trpc/server';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ApiMetrics } from '../metrics.js';

/**
 * Realtime: each tenant's document changes, fanned out across api instances through one
 * Redis stream per tenant.
 *
 * Why a Redis stream: it is at once the fan-out (every instance XREADs the streams of the
 * tenants it has subscribers for, one blocking read for all of them) and the resume window
 * (entries are kept for REALTIME_WINDOW_MS, so `Last-Event-ID` replays from Redis, on any
 * instance). Postgres NOTIFY would take a global lock at every notifying commit and stops
 * at 8,000 bytes; logical decoding would need a replication slot per tenant database and
 * cluster. Redis pub/sub alone has no replay.
 *
 * Exactly the committed writes, or a reset:
 * - an event is published only after its write committed (the documents service calls
 *   `publish` after the transaction), so a rolled-back write never shows;
 * - before a write starts, its tenant is marked in a pending set, for this instance, with a
 *   deadline (`beginWrite`). One mark covers every write the instance begins for that
 *   tenant while the mark has at least 90% of the deadline left, so a busy tenant costs
 *   one ZADD per instance every tenth of the deadline rather than one per write: a
 *   document write then costs one Redis command, its publish, instead of two. A mark is
 *   taken off (one ZREM for all of them, every second) once none of its tenant's writes
 *   is unfinished here. An api that died between a commit and its publish leaves its mark
 *   to pass its deadline, and whichever instance sees that first adds a `reset` to the
 *   tenant's stream;
 * - a publish Redis refused is retried; until it gets through, the tenant is owed a reset;
 * - a reader that lost Redis (a blip, a restart, a flush) tells every one of its
 *   subscribers `reset` once it reads again, and starts from where the streams now end;
 * - a resume from outside the window (entries trimmed after the client's id, or a stream
 *   that started afresh: another epoch) begins with `reset`.
 * So a client may see an event twice or a needless reset, never a silent gap.
 *
 * Connection quota: each open stream holds a slot of its tenant's `realtimeConnections` in
 * a Redis sorted set (score: its expiry), taken by a script that first drops expired slots;
 * slots are renewed every third of REALTIME_SLOT_TTL_MS, so those of a SIGKILLed instance
 * free themselves. The same script keeps each hour's exact peak for the usage meter.
 *
 * A slow consumer: each stream buffers at most REALTIME_MAX_BUFFER_BYTES (its queue plus
 * its socket's); past it the stream is closed. Fan-out never waits for a client.
 */

export interface RealtimeOptions {
  redis: RedisSettings;
  windowMs: number;
  slotTtlMs: number;
  maxBufferBytes: number;
  recheckMs: number;
  /** A write not published within this of its start is presumed lost: its tenant's stream gets a reset. */
  publishDeadlineMs?: number;
  logger: Logger;
  metrics: ApiMetrics;
}

/** What a stream's owner is checked against again (suspension, a revoked credential, a capability lost). */
export type StillAllowed = (tenantId: string, bearer: string | null) => Promise<boolean>;

interface Subscriber {
  id: string;
  tenantId: string;
  bearer: string | null;
  collections: ReadonlySet<string> | null;
  /** Events waiting to be pulled, with their size. */
  queue: Array<{ item: TrackedEnvelope<RealtimeEvent | null>; size: number }>;
  queuedBytes: number;
  /** The socket it is written to, whose own buffer counts toward its bound. */
  outgoing: ServerResponse | undefined;
  /** Ignore live entries at or before this (it is still replaying, or replayed past them). */
  cursor: string | undefined;
  /** While replaying from Last-Event-ID: live entries held until the replay is done. */
  held: Array<{ id: string; payload: string }> | undefined;
  wake: (() => void) | undefined;
  closed: boolean;
  error: Error | undefined;
}

interface TenantFeed {
  /** The last stream id read for this tenant. */
  position: string;
  subscribers: Set<Subscriber>;
  epoch: string;
}

/** Stream ids are `<ms>-<seq>`: compare as numbers. */
export function compareStreamIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  return am === bm ? Number(as) - Number(bs) : Number(am) - Number(bm);
}

/** The id a client sees: `<epoch>.<stream id>`. */
const eventId = (epoch: string, streamId: string) => `${epoch}.${streamId}`;

function parseEventId(id: string): { epoch: string; streamId: string } | undefined {
  const m = /^([0-9a-f]{16})\.(\d{1,20}-\d{1,20})$/.exec(id);
  return m ? { epoch: m[1]!, streamId: m[2]! } : undefined;
}

/**
 * A fresh epoch: 8 random bytes as hex. Every document write offers one (the PUBLISH script
 * keeps it only when the tenant has none), so they come from a pool filled 512 at a time:
 * one getrandom call per 512 writes rather than one per write.
 */
let epochPool = Buffer.alloc(0);
let epochOffset = 0;
function newEpoch(): string {
  if (epochOffset + 8 > epochPool.length) {
    epochPool = randomBytes(8 * 512);
    epochOffset = 0;
  }
  return epochPool.toString('hex', epochOffset, (epochOffset += 8));
}

/** XADD the event, refreshing epoch and expiry and trimming to the window. */
const PUBLISH = `
local epoch = redis.call('GET', KEYS[2])
if not epoch then epoch = ARGV[4] end
redis.call('SET', KEYS[2], epoch, 'PX', ARGV[3])
local id = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[2], '*', 'e', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {epoch, id}`;

/** A pending mark past its deadline: only the instance whose ZREM removes it adds the reset. */
const RESET_IF_PENDING = `
if redis.call('ZREM', KEYS[3], ARGV[5]) == 0 then return 0 end
local epoch = redis.call('GET', KEYS[2])
if not epoch then epoch = ARGV[4] end
redis.call('SET', KEYS[2], epoch, 'PX', ARGV[3])
redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[2], '*', 'e', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

/** Take a slot unless the tenant is at its limit (expired slots dropped first); keep the hour's peak. */
const ACQUIRE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[4]) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
n = n + 1
local peak = tonumber(redis.call('HGET', KEYS[2], ARGV[5]) or '0')
if n > peak then redis.call('HSET', KEYS[2], ARGV[5], n) end
redis.call('PEXPIRE', KEYS[2], 10800000)
return n`;

/** The epoch of a stream, made if there is none (a subscriber's position then has one to name). */
const EPOCH = `
local epoch = redis.call('GET', KEYS[1])
if not epoch then epoch = ARGV[1]; redis.call('SET', KEYS[1], epoch, 'PX', ARGV[2]) end
return epoch`;

const HOUR_MS = 3_600_000;

export class RealtimeHub {
  private readonly keys;
  /** Commands that must not wait on a Redis that is away (the write path, slots). */
  private readonly redis: RedisClient;
  /** The blocking XREAD of every followed stream. */
  private readonly reader: RedisClient;
  private readonly listener: RedisClient;
  /**
   * The connection the XREAD blocks on and its CLIENT ID, for CLIENT UNBLOCK. On a cluster it
   * is the reader's connection to the streams' master, which a failover or reshard changes.
   */
  private blockedOn: { connection: Redis; id: number } | undefined;
  private readonly feeds = new Map<string, TenantFeed>();
  private readonly subscribers = new Set<Subscriber>();
  /** Tenants whose publish Redis refused: they get a reset as soon as it answers. */
  private readonly owedResets = new Set<string>();
  /** This instance's name in its pending marks (`<tenant id>|<instance>`). */
  private readonly instance = randomUUID();
  /** Per tenant: this instance's writes begun and not yet published or abandoned. */
  private readonly unfinishedWrites = new Map<string, number>();
  /** Per tenant: until when this instance's pending mark holds, as last set in Redis. */
  private readonly markedUntil = new Map<string, number>();
  private readonly timers: NodeJS.Timeout[] = [];
  private running = false;
  private readerLoop: Promise<void> | undefined;
  private readerBroken = false;
  /** Wakes a reader that has no stream to follow (it sleeps rather than polls). */
  private wakeReader: (() => void) | undefined;
  private stillAllowed: StillAllowed = async () => true;

  constructor(private readonly options: RealtimeOptions) {
    this.keys = realtimeKeys(options.redis.prefix);
    this.redis = createFailFastRedis(options.redis, 'tenantry-api-realtime');
    this.reader = createQueueingRedis(options.redis, 'tenantry-api-realtime-reader');
    this.listener = createSubscriberRedis(options.redis, 'tenantry-api-realtime-recheck');
    // After a reconnect Redis may have lost the marks (a restart without persistence, a
    // failover before replication): the next write of each tenant marks it again. A mark
    // that did survive is then no longer taken off by us and costs a needless reset.
    this.redis.on('ready', () => this.markedUntil.clear());
  }

  /**
   * Whether the connection that writes marks and events is up, waiting up to `timeoutMs`
   * for it: a write begun before it is refused by Redis (fail-fast) and costs its tenant a
   * needless reset, so boot waits for it as for the api's own connection.
   */
  async ready(timeoutMs: number): Promise<boolean> {
    if (this.redis.status === 'ready') return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.redis.off('ready', onReady);
        resolve(false);
      }, timeoutMs);
      const onReady = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.redis.once('ready', onReady);
    });
  }

  private get publishDeadlineMs(): number {
    return this.options.publishDeadlineMs ?? 30_000;
  }

  /** Start reading, renewing slots, sweeping pending writes and listening for rechecks. */
  start(stillAllowed: StillAllowed): void {
    this.stillAllowed = stillAllowed;
    this.running = true;
    this.readerLoop = this.read();
    void this.listener.subscribe(this.keys.recheck).catch(() => undefined);
    this.listener.on('message', (_channel, tenantId: string) => void this.recheck(tenantId));
    const every = (ms: number, fn: () => Promise<unknown>) => {
      const timer = setInterval(() => void fn().catch(() => undefined), ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(Math.max(250, this.options.slotTtlMs / 3), () => this.renewSlots());
    every(1_000, () => this.sweepPending());
    every(1_000, () => this.releaseMarks());
    every(1_000, () => this.payOwedResets());
    every(this.options.recheckMs, () => this.recheckAll());
  }

  // ---- the write path -----------------------------------------------------------------

  /**
   * Before a document write: make sure the tenant is marked pending for this instance, so
   * the write's event cannot vanish silently. Returns the token to hand to `publish` or
   * `abandonWrite`; undefined when Redis is away (the tenant is then owed a reset).
   */
  async beginWrite(tenantId: string): Promise<string | undefined> {
    // Counted first: releaseMarks must not take off a mark this write is still waiting for.
    this.unfinishedWrites.set(tenantId, (this.unfinishedWrites.get(tenantId) ?? 0) + 1);
    const now = Date.now();
    const until = this.markedUntil.get(tenantId);
    if (until === undefined || until - now < this.publishDeadlineMs * 0.9) {
      const score = now + this.publishDeadlineMs;
      try {
        await this.redis.zadd(this.keys.pending, score, this.markOf(tenantId));
      } catch {
        this.finishWrite(tenantId);
        this.owedResets.add(tenantId);
        return undefined;
      }
      if (score > (this.markedUntil.get(tenantId) ?? 0)) this.markedUntil.set(tenantId, score);
    }
    return tenantId;
  }

  /** The write rolled back: nothing to publish. */
  abandonWrite(token: string | undefined): void {
    if (token) this.finishWrite(token);
  }

  /** After the write committed. Never throws: what Redis refuses becomes a reset for the tenant's streams. */
  async publish(tenantId: string, event: DocumentEvent, token: string | undefined): Promise<void> {
    try {
      await this.redis.eval(PUBLISH, 2, this.keys.stream(tenantId), this.keys.epoch(tenantId), JSON.stringify(event), this.minId(), this.options.windowMs, newEpoch());
      this.options.metrics.realtimeEvents.inc({ kind: 'published' });
    } catch (err) {
      this.owedResets.add(tenantId);
      this.options.logger.warn({ err: (err as Error).message, tenantId }, 'realtime: event not published; the tenant\'s streams get a reset');
    } finally {
      if (token) this.finishWrite(token);
    }
  }

  private markOf(tenantId: string): string {
    return `${tenantId}|${this.instance}`;
  }

  private finishWrite(tenantId: string): void {
    const left = (this.unfinishedWrites.get(tenantId) ?? 1) - 1;
    if (left > 0) this.unfinishedWrites.set(tenantId, left);
    else this.unfinishedWrites.delete(tenantId);
  }

  /**
   * Take off the marks of tenants with no unfinished write here, in one ZREM. A tenant owed
   * a reset keeps its mark: should this instance die before paying it, the mark pays it.
   * Forgotten before the ZREM is sent, so a write begun meanwhile marks again, after it on
   * the same connection.
   */
  private async releaseMarks(): Promise<void> {
    const released: string[] = [];
    for (const tenantId of this.markedUntil.keys()) {
      if (this.unfinishedWrites.has(tenantId) || this.owedResets.has(tenantId)) continue;
      this.markedUntil.delete(tenantId);
      released.push(this.markOf(tenantId));
    }
    // A mark that stays (Redis away) passes its deadline and costs its tenant a needless reset, never a gap.
    if (released.length > 0) await this.redis.zrem(this.keys.pending, ...released);
  }

  /** Tell every instance to check the tenant's open streams again now (suspended, a credential revoked, entitlements changed). */
  async requestRecheck(tenantId: string): Promise<void> {
    await this.recheck(tenantId);
    await this.redis.publish(this.keys.recheck, tenantId).catch(() => undefined);
  }

  private minId(): string {
    return `${Math.max(0, Date.now() - this.options.windowMs)}-0`;
  }

  private async addReset(tenantId: string, reason: string, pendingToken = ''): Promise<boolean> {
    const event: RealtimeEvent = { type: 'reset', reason, at: new Date().toISOString() };
    const done = await this.redis.eval(RESET_IF_PENDING, 3, this.keys.stream(tenantId), this.keys.epoch(tenantId), this.keys.pending, JSON.stringify(event), this.minId(), this.options.windowMs, newEpoch(), pendingToken);
    return done === 1;
  }

  private async sweepPending(): Promise<void> {
    const late = await this.redis.zrangebyscore(this.keys.pending, '-inf', Date.now(), 'LIMIT', 0, 100);
    for (const token of late) {
      const tenantId = token.split('|')[0]!;
      if (await this.addReset(tenantId, 'a write may have committed without its event', token)) {
        this.options.logger.warn({ tenantId }, 'realtime: a write was not published by its deadline; reset sent');
      }
    }
  }

  private async payOwedResets(): Promise<void> {
    for (const tenantId of [...this.owedResets]) {
      // Added unconditionally (PUBLISH, not RESET_IF_PENDING): it is owed whatever the pending marks say.
      await this.redis.eval(PUBLISH, 2, this.keys.stream(tenantId), this.keys.epoch(tenantId),
        JSON.stringify({ type: 'reset', reason: 'Redis was unavailable when a change was made', at: new Date().toISOString() } satisfies RealtimeEvent),
        this.minId(), this.options.windowMs, newEpoch());
      this.owedResets.delete(tenantId);
    }
  }

  // ---- subscriptions ------------------------------------------------------------------

  /**
   * Open a stream for the tenant: take a connection slot (429 quota_exceeded past
   * `limit`), replay from `lastEventId` if given (or reset when it is out of the window),
   * then deliver live. `positions`: emit bare ids (no data) so an EventSource can resume
   * from the right place even before its first event (REST only).
   */
  async subscribe(input: {
    tenantId: string;
    bearer: string | null;
    collections: readonly string[];
    lastEventId: string | null | undefined;
    limit: number;
    signal: AbortSignal | undefined;
    outgoing: ServerResponse | undefined;
    positions: boolean;
  }): Promise<AsyncIterable<TrackedEnvelope<RealtimeEvent | null>>> {
    const id = randomUUID();
    const now = Date.now();
    let taken: number;
    try {
      taken = Number(
        await this.redis.eval(ACQUIRE, 2, this.keys.slots(input.tenantId), this.keys.peaks(input.tenantId), now, now + this.options.slotTtlMs, id, input.limit, Math.floor(now / HOUR_MS) * HOUR_MS, this.options.slotTtlMs * 2),
      );
    } catch (err) {
      throw new DependencyUnavailableError('redis', { cause: err });
    }
    if (taken < 0) {
      this.options.metrics.quotaExceeded.inc({ resource: 'realtimeConnections' });
      throw new QuotaExceededError('realtimeConnections', 'rate_limited', `The tenant has ${input.limit} realtime connections open, its limit: close one or raise the limit`);
    }
    const sub: Subscriber = {
      id,
      tenantId: input.tenantId,
      bearer: input.bearer,
      collections: input.collections.length > 0 ? new Set(input.collections) : null,
      queue: [],
      queuedBytes: 0,
      outgoing: input.outgoing,
      cursor: undefined,
      held: input.lastEventId ? [] : undefined,
      wake: undefined,
      closed: false,
      error: undefined,
    };
    try {
      const feed = await this.follow(input.tenantId);
      this.subscribers.add(sub);
      feed.subscribers.add(sub);
      this.options.metrics.realtimeConnections.inc();
      if (input.lastEventId) await this.replay(sub, feed, input.lastEventId);
      else if (input.positions) this.enqueue(sub, tracked(eventId(feed.epoch, feed.position), null), 0);
    } catch (err) {
      this.drop(sub);
      throw err instanceof DependencyUnavailableError ? err : new DependencyUnavailableError('redis', { cause: err });
    }
    const onAbort = () => this.end(sub);
    input.signal?.addEventListener('abort', onAbort, { once: true });
    const hub = this;
    return (async function* stream() {
      try {
        for (;;) {
          const next = sub.queue.shift();
          if (next) {
            sub.queuedBytes -= next.size;
            yield next.item;
            continue;
          }
          if (sub.closed) {
            if (sub.error) throw sub.error;
            return;
          }
          await new Promise<void>((resolve) => {
            sub.wake = resolve;
          });
          sub.wake = undefined;
        }
      } finally {
        input.signal?.removeEventListener('abort', onAbort);
        hub.drop(sub);
      }
    })();
  }

  /** Start reading a tenant's stream from its current end, if no subscriber here does yet. */
  private async follow(tenantId: string): Promise<TenantFeed> {
    const existing = this.feeds.get(tenantId);
    if (existing) return existing;
    const [epoch, last] = await Promise.all([
      this.redis.eval(EPOCH, 1, this.keys.epoch(tenantId), newEpoch(), this.options.windowMs) as Promise<string>,
      this.redis.xrevrange(this.keys.stream(tenantId), '+', '-', 'COUNT', 1),
    ]);
    const again = this.feeds.get(tenantId);
    if (again) return again;
    const feed: TenantFeed = { position: last[0]?.[0] ?? '0-0', subscribers: new Set(), epoch };
    this.feeds.set(tenantId, feed);
    this.interruptReader();
    return feed;
  }

  /** Deliver what the client missed since `lastEventId`, or a reset when that is outside the window. */
  private async replay(sub: Subscriber, feed: TenantFeed, lastEventId: string): Promise<void> {
    const key = this.keys.stream(sub.tenantId);
    const from = parseEventId(lastEventId);
    let resetReason: string | undefined;
    if (!from) resetReason = 'the Last-Event-ID is not one this stream issued';
    else if (from.epoch !== feed.epoch) resetReason = 'the stream started afresh since that event (outside the window, or Redis lost it)';
    else {
      const info = (await this.redis.call('XINFO', 'STREAM', key).catch(() => null)) as unknown[] | null;
      const deleted = info ? String(info[info.indexOf('max-deleted-entry-id') + 1] ?? '0-0') : undefined;
      if (deleted === undefined) {
        if (from.streamId !== '0-0') resetReason = 'that event is outside the window';
      } else if (compareStreamIds(deleted, from.streamId) > 0) resetReason = 'that event is outside the window';
    }
    if (resetReason) {
      sub.cursor = feed.position;
      this.enqueue(sub, tracked(eventId(feed.epoch, feed.position), { type: 'reset', reason: resetReason, at: new Date().toISOString() } satisfies RealtimeEvent), 0);
    } else {
      let after = from!.streamId;
      for (;;) {
        const entries = await this.redis.xrange(key, `(${after}`, '+', 'COUNT', 500);
        for (const [id, fields] of entries) this.emit(sub, feed.epoch, id, fields[1] ?? '{}');
        if (entries.length < 500) break;
        after = entries.at(-1)![0];
      }
    }
    // What the live reader got meanwhile follows, without repeats.
    const held = sub.held ?? [];
    sub.held = undefined;
    for (const entry of held) this.emit(sub, feed.epoch, entry.id, entry.payload);
  }

  /** A live entry: held while the subscriber replays, else emitted. */
  private deliver(sub: Subscriber, epoch: string, streamId: string, payload: string): void {
    if (sub.held) {
      sub.held.push({ id: streamId, payload });
      return;
    }
    this.emit(sub, epoch, streamId, payload);
  }

  private emit(sub: Subscriber, epoch: string, streamId: string, payload: string): void {
    if (sub.closed) return;
    if (sub.cursor !== undefined && compareStreamIds(streamId, sub.cursor) <= 0) return;
    sub.cursor = streamId;
    let event: RealtimeEvent;
    try {
      event = JSON.parse(payload) as RealtimeEvent;
    } catch {
      return;
    }
    if (event.type !== 'reset' && sub.collections && !sub.collections.has(event.collection)) return;
    this.enqueue(sub, tracked(eventId(epoch, streamId), event), payload.length);
  }

  private enqueue(sub: Subscriber, item: TrackedEnvelope<RealtimeEvent | null>, size: number): void {
    // What is already waiting, not counting this event: one event larger than the bound still goes to a client that keeps up.
    const backlog = sub.queuedBytes + (sub.outgoing?.writableLength ?? 0);
    sub.queue.push({ item, size });
    sub.queuedBytes += size;
    if (backlog > this.options.maxBufferBytes) {
      this.options.metrics.realtimeEvents.inc({ kind: 'slow_consumer' });
      sub.queue.length = 0;
      sub.queuedBytes = 0;
      this.end(sub, new Error('the client reads too slowly: its buffer is full'));
      // Its writer may be waiting for a drain that never comes: cut the connection itself.
      sub.outgoing?.destroy();
      return;
    }
    this.options.metrics.realtimeEvents.inc({ kind: 'delivered' });
    sub.wake?.();
  }

  /** End a stream (the client left, its credential or tenant no longer allows it, it is too slow). */
  private end(sub: Subscriber, error?: Error): void {
    if (sub.closed) return;
    sub.closed = true;
    sub.error = error;
    sub.wake?.();
    // A stream nobody pulls from any more (its socket is gone) still gives its slot back now.
    this.drop(sub);
  }

  private drop(sub: Subscriber): void {
    if (!this.subscribers.delete(sub)) return;
    this.options.metrics.realtimeConnections.dec();
    const feed = this.feeds.get(sub.tenantId);
    feed?.subscribers.delete(sub);
    if (feed && feed.subscribers.size === 0) {
      this.feeds.delete(sub.tenantId);
      this.interruptReader();
    }
    void this.redis.zrem(this.keys.slots(sub.tenantId), sub.id).catch(() => undefined);
  }

  private async renewSlots(): Promise<void> {
    if (this.subscribers.size === 0) return;
    const expiry = Date.now() + this.options.slotTtlMs;
    const pipeline = this.redis.pipeline();
    for (const sub of this.subscribers) {
      pipeline.zadd(this.keys.slots(sub.tenantId), 'XX', expiry, sub.id);
      pipeline.pexpire(this.keys.slots(sub.tenantId), this.options.slotTtlMs * 2);
    }
    await pipeline.exec();
  }

  // ---- lifecycle checks ---------------------------------------------------------------

  /** Check this instance's open streams of the tenant again now (its credentials or status changed). */
  async recheck(tenantId: string): Promise<void> {
    const subs = [...(this.feeds.get(tenantId)?.subscribers ?? [])];
    for (const sub of subs) {
      const allowed = await this.stillAllowed(sub.tenantId, sub.bearer).catch(() => true);
      if (!allowed) this.end(sub);
    }
  }

  private async recheckAll(): Promise<void> {
    for (const tenantId of [...this.feeds.keys()]) await this.recheck(tenantId);
  }

  // ---- the reader ---------------------------------------------------------------------

  private interruptReader(): void {
    this.wakeReader?.();
    const blocked = this.blockedOn;
    if (!blocked) return;
    // CLIENT UNBLOCK names a connection, so it must reach the server that runs the read: on a
    // cluster, the master of the streams' slot. If that fails, the read ends by its own timeout.
    void connectionFor(this.redis, this.keys.pending)
      .then((connection) => connection.call('CLIENT', 'UNBLOCK', blocked.id))
      .catch(() => undefined);
  }

  private async read(): Promise<void> {
    let wait = 100;
    while (this.running) {
      try {
        if (this.readerBroken) await this.recover();
        const feeds = [...this.feeds.entries()];
        if (feeds.length === 0) {
          await new Promise<void>((resolve) => {
            this.wakeReader = resolve;
            setTimeout(resolve, 1_000).unref();
          });
          this.wakeReader = undefined;
          continue;
        }
        const connection = await connectionFor(this.reader, this.keys.pending);
        if (this.blockedOn?.connection !== connection) this.blockedOn = { connection, id: Number(await connection.call('CLIENT', 'ID')) };
        const result = (await this.reader.xread('COUNT', 1000, 'BLOCK', 5_000, 'STREAMS', ...feeds.map(([t]) => this.keys.stream(t)), ...feeds.map(([, f]) => f.position))) as
          | Array<[string, Array<[string, string[]]>]>
          | null;
        wait = 100;
        for (const [key, entries] of result ?? []) {
          const tenantId = key.slice(key.lastIndexOf(':') + 1);
          const feed = this.feeds.get(tenantId);
          if (!feed) continue;
          for (const [id, fields] of entries) {
            feed.position = id;
            for (const sub of feed.subscribers) this.deliver(sub, feed.epoch, id, fields[1] ?? '{}');
          }
        }
        // The epoch may have changed (the stream expired and started afresh): new ids carry the new one.
        if (result) await this.refreshEpochs(result.map(([key]) => key.slice(key.lastIndexOf(':') + 1)));
      } catch (err) {
        if (!this.running) return;
        // Redis away: whatever was written meanwhile may be lost to us. Reset everyone once it is back.
        if (!this.readerBroken) this.options.logger.warn({ err: (err as Error).message }, 'realtime: reading the streams failed; subscribers get a reset when Redis is back');
        this.readerBroken = true;
        this.blockedOn = undefined;
        await new Promise((resolve) => setTimeout(resolve, wait));
        wait = Math.min(wait * 2, 1_000);
      }
    }
  }

  private async refreshEpochs(tenantIds: string[]): Promise<void> {
    const epochs = await this.redis.mget(...tenantIds.map((t) => this.keys.epoch(t)));
    tenantIds.forEach((tenantId, i) => {
      const feed = this.feeds.get(tenantId);
      if (feed && epochs[i]) feed.epoch = epochs[i]!;
    });
  }

  /** After a Redis failure: every feed restarts from its stream's current end, and every subscriber hears `reset`. */
  private async recover(): Promise<void> {
    for (const [tenantId, feed] of this.feeds) {
      const [epoch, last] = await Promise.all([
        this.redis.eval(EPOCH, 1, this.keys.epoch(tenantId), newEpoch(), this.options.windowMs) as Promise<string>,
        this.redis.xrevrange(this.keys.stream(tenantId), '+', '-', 'COUNT', 1),
      ]);
      feed.epoch = epoch;
      feed.position = last[0]?.[0] ?? '0-0';
      for (const sub of feed.subscribers) {
        sub.cursor = feed.position;
        this.enqueue(sub, tracked(eventId(epoch, feed.position), { type: 'reset', reason: 'the realtime service lost its connection to Redis', at: new Date().toISOString() } satisfies RealtimeEvent), 0);
      }
    }
    this.readerBroken = false;
  }

  /** This instance's open streams. */
  get openStreams(): number {
    return this.subscribers.size;
  }

  /** End every stream and give their slots back. */
  async close(): Promise<void> {
    this.running = false;
    this.wakeReader?.();
    for (const timer of this.timers) clearInterval(timer);
    for (const sub of [...this.subscribers]) this.end(sub);
    // A graceful stop leaves no mark behind for the idle tenants: each would cost a needless
    // reset at its deadline. Those with a write still unfinished keep theirs. Bounded, as below.
    await Promise.race([this.releaseMarks().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 500).unref())]);
    this.reader.disconnect();
    this.redis.disconnect();
    this.listener.disconnect();
    // Bounded: with Redis away a command of the loop may never settle.
    await Promise.race([this.readerLoop?.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 500).unref())]);
  }
}
