import { sql } from 'kysely';
import pg from 'pg';
import type { Db } from './client.js';

/** The channel the triggers of migration 2026-12-01T1800_tenant_changes notify on, with a tenant id. */
export const TENANT_CHANGES_CHANNEL = 'tenantry_tenant_changes';

/**
 * The channel the worker's storage sampling notifies on, with a tenant id, once a new
 * `storageBytes` sample of that tenant is committed on the other side of its limit than
 * the one before (announceStorageCrossings): each api instance drops the sample it holds,
 * so the crossing is enforced (or lifted) at the sample, not up to STORAGE_SAMPLE_REUSE_MS
 * later.
 */
export const TENANT_STORAGE_CHANNEL = 'tenantry_tenant_storage';

/**
 * The channel the trigger of migration 2026-12-02T1000_platform_key_changes notifies on
 * when a platform key is created, revoked or removed: each api instance reads the active
 * keys again.
 */
export const PLATFORM_KEYS_CHANNEL = 'tenantry_platform_keys';

/** Announce tenants whose new storage sample crossed their limit (after the samples committed). */
export async function announceStorageCrossings(db: Db, tenantIds: readonly string[]): Promise<void> {
  if (tenantIds.length === 0) return;
  await sql`select pg_notify(${TENANT_STORAGE_CHANNEL}, id) from unnest(${[...tenantIds]}::text[]) as id`.execute(db);
}

export interface TenantChangeFeedOptions {
  /** The control-plane database (LISTEN/NOTIFY need a direct or session-pooled connection). */
  connectionString: string;
  applicationName: string;
  /** A tenant whose credentials, status or routing changed (its transaction has committed). */
  onChange(tenantId: string): void;
  /** A tenant whose storage sample crossed its limit (TENANT_STORAGE_CHANNEL). */
  onStorageCrossed?(tenantId: string): void;
  /** A platform key was created, revoked or removed (PLATFORM_KEYS_CHANNEL). */
  onPlatformKeysChanged?(): void;
  /**
   * The feed stopped or started listening: changes may have been missed meanwhile, so
   * anything derived from tenant rows before now must be read again.
   */
  onReset(): void;
  onError(message: string): void;
  /** Longest wait between reconnection attempts (they start at 100 ms and double). */
  maxReconnectDelayMs?: number;
  /**
   * A connection that does not answer a `select 1` within this long is taken for lost
   * (default 500 ms): a silent network cut delivers no error, only silence, and a feed
   * that silently stopped must stop being trusted.
   */
  heartbeatMs?: number;
}

/**
 * Tenant changes as Postgres announces them, on one LISTEN connection of its own (outside
 * every pool: a pooled connection may not keep a LISTEN). `listening` is true only while
 * the connection is up and LISTEN is in place: a change committed then is delivered. When
 * the connection is lost, `listening` turns false and onReset fires at once, before the
 * loss could hide a change; the feed reconnects with backoff and fires onReset again once
 * listening, since changes made while it was away were never delivered. A heartbeat
 * finds a connection that went silent (a network cut) within two of its intervals.
 */
export class TenantChangeFeed {
  private client: pg.Client | undefined;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private reconnectDelayMs = 100;
  private ready = false;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(private readonly options: TenantChangeFeedOptions) {}

  get listening(): boolean {
    return this.ready;
  }

  /** Connect and listen, now and after every loss, until close(). Resolves once first listening or failed. */
  async start(): Promise<void> {
    await this.connect();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.heartbeat);
    this.ready = false;
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({
      connectionString: this.options.connectionString,
      application_name: this.options.applicationName,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      connectionTimeoutMillis: 5_000,
    });
    // Listeners first: a server that goes away emits 'error' (which must never go unheard)
    // and then 'end'; either means this connection is done.
    let lost = false;
    const onLost = (why: string) => {
      if (lost) return;
      lost = true;
      if (this.client === client) {
        this.client = undefined;
        clearInterval(this.heartbeat);
      }
      this.markLost();
      if (!this.closed) this.options.onError(`tenant change feed: ${why}; reconnecting`);
      client.end().catch(() => undefined);
      this.scheduleReconnect();
    };
    client.on('error', (err) => onLost(`connection lost: ${err.message}`));
    client.on('end', () => onLost('connection ended'));
    client.on('notification', (message) => {
      if (!message.payload) return;
      if (message.channel === TENANT_CHANGES_CHANNEL) this.options.onChange(message.payload);
      else if (message.channel === TENANT_STORAGE_CHANNEL) this.options.onStorageCrossed?.(message.payload);
      else if (message.channel === PLATFORM_KEYS_CHANNEL) this.options.onPlatformKeysChanged?.();
    });
    try {
      await client.connect();
      await client.query(`listen ${TENANT_CHANGES_CHANNEL}; listen ${TENANT_STORAGE_CHANNEL}; listen ${PLATFORM_KEYS_CHANNEL}`);
    } catch (err) {
      onLost(`could not listen: ${(err as Error).message}`);
      return;
    }
    if (lost || this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.reconnectDelayMs = 100;
    this.ready = true;
    this.options.onReset();
    let answered = true;
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => {
      if (!answered) return onLost(`no answer to a heartbeat within ${this.options.heartbeatMs ?? 500} ms`);
      answered = false;
      client.query('select 1').then(
        () => (answered = true),
        () => undefined, // the connection's own 'error' reports it
      );
    }, this.options.heartbeatMs ?? 500);
    this.heartbeat.unref();
  }

  private markLost(): void {
    const wasReady = this.ready;
    this.ready = false;
    if (wasReady) this.options.onReset();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer) return;
    const delay = this.reconnectDelayMs;
    this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, this.options.maxReconnectDelayMs ?? 5_000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.connect();
    }, delay);
    this.retryTimer.unref();
  }
}
