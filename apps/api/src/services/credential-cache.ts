import type { Db } from '@tenantry/db';
import { type ResolvedCredential, authenticateTenant } from './tenant-auth.js';
import { hashToken } from './sessions.js';

/** What the cache needs of the tenant change feed (packages/db TenantChangeFeed). */
export interface ChangeFeedState {
  readonly listening: boolean;
}

export interface CredentialCacheOptions {
  /** Longest an entry is served; 0 turns the cache off (every call queries). */
  ttlMs: number;
  maxEntries: number;
  now?: () => number;
  onLookup?: (result: 'hit' | 'miss' | 'bypass') => void;
}

interface Entry {
  resolved: ResolvedCredential;
  tenantId: string;
  /** When it stops being served: the TTL, or the session's own expiry if sooner. */
  until: number;
}

/**
 * Resolved tenant credentials (who calls, its tenant's status and routing), kept in memory
 * so that most tenant calls need no credential query. Correct only because Postgres
 * announces every change that could alter an answer (migration
 * 2026-12-01T1800_tenant_changes), so:
 *
 * - A change announced for a tenant drops its entries at once: a logout, a revoked key,
 *   a suspension, a move's pause or switch is honoured by every instance within the
 *   notification's delivery (milliseconds; tested under 1 s across two instances).
 * - While the feed is not listening (starting, or its connection lost), nothing is served
 *   from or stored in the cache: announcements could be missed. Every loss and every
 *   reconnection empties it.
 * - A query that raced an announcement is not stored: each load remembers the
 *   invalidation count it started under and stores its answer only if nothing was
 *   invalidated meanwhile (the answer may predate the change).
 * - Entries expire after `ttlMs` regardless (a bound on memory turnover, and a last line of
 *   defence), and a session's entry no later than the session itself.
 * - Unknown or revoked credentials (401) are never cached: the next call asks again.
 * - At most `maxEntries`, the oldest dropped first.
 */
export class CredentialCache {
  private readonly entries = new Map<string, Entry>();
  private readonly tokensOfTenant = new Map<string, Set<string>>();
  /** Bumped by every invalidation: a load that saw it change does not store its answer. */
  private invalidations = 0;
  private readonly now: () => number;

  constructor(
    private readonly feed: ChangeFeedState,
    private readonly options: CredentialCacheOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  async resolve(db: Db, bearer: string | null): Promise<ResolvedCredential> {
    if (!bearer || this.options.ttlMs <= 0 || !this.feed.listening) {
      this.options.onLookup?.('bypass');
      return authenticateTenant(db, bearer);
    }
    const key = hashToken(bearer).toString('base64');
    const entry = this.entries.get(key);
    if (entry && entry.until > this.now()) {
      this.options.onLookup?.('hit');
      return entry.resolved;
    }
    this.options.onLookup?.('miss');
    const startedUnder = this.invalidations;
    const resolved = await authenticateTenant(db, bearer);
    if (this.invalidations === startedUnder && this.feed.listening) this.store(key, resolved);
    return resolved;
  }

  /** A tenant changed (announced by Postgres): its credentials are resolved afresh. */
  invalidateTenant(tenantId: string): void {
    this.invalidations += 1;
    for (const key of this.tokensOfTenant.get(tenantId) ?? []) this.entries.delete(key);
    this.tokensOfTenant.delete(tenantId);
  }

  /** Changes may have been missed (the feed lost or regained its connection): forget everything. */
  clear(): void {
    this.invalidations += 1;
    this.entries.clear();
    this.tokensOfTenant.clear();
  }

  private store(key: string, resolved: ResolvedCredential): void {
    const tenantId = resolved.principal.tenantId;
    const until = Math.min(this.now() + this.options.ttlMs, resolved.expiresAt?.getTime() ?? Number.POSITIVE_INFINITY);
    this.entries.delete(key);
    this.entries.set(key, { resolved, tenantId, until });
    let tokens = this.tokensOfTenant.get(tenantId);
    if (!tokens) this.tokensOfTenant.set(tenantId, (tokens = new Set()));
    tokens.add(key);
    while (this.entries.size > this.options.maxEntries) {
      const [oldestKey, oldest] = this.entries.entries().next().value as [string, Entry];
      this.entries.delete(oldestKey);
      const left = this.tokensOfTenant.get(oldest.tenantId);
      left?.delete(oldestKey);
      if (left?.size === 0) this.tokensOfTenant.delete(oldest.tenantId);
    }
  }
}
