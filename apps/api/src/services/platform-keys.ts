import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { type Db, appendAudit } from '@tenantry/db';
import { ForbiddenError, UnauthorizedError } from '@tenantry/domain';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { ChangeFeedState } from './credential-cache.js';
import { hashToken } from './sessions.js';

const KEY_PREFIX = 'tpk_';

export interface PlatformPrincipal {
  /** Which key: `env:<n>` for a configured key, else the platform_keys row id. Never the key. */
  keyId: string;
  /** Set when the call came with an operator session (dashboard) instead of the key itself. */
  sessionId?: string;
}

/** A new platform key and the hash that is all we keep of it. */
export function newPlatformKey(): { key: string; keyHash: Buffer } {
  const key = KEY_PREFIX + randomBytes(32).toString('base64url');
  return { key, keyHash: sha256(key) };
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Hashes of the keys given in PLATFORM_API_KEY (comma-separated, for rotation). */
export function configuredKeyHashes(setting: string | undefined): Buffer[] {
  return (setting ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k.length > 0)
    .map(sha256);
}

/** Where the platform keys this api accepts come from, for the start-up line. */
export type PlatformKeySource = 'configured' | 'generated' | 'stored';

/**
 * Make sure at least one platform key exists. With none configured and none stored, the
 * first start makes one, prints it once and stores only its hash. An advisory lock keeps
 * two instances starting together from both making one.
 */
export async function ensurePlatformKey(db: Db, configured: Buffer[], logger: Logger, print: (line: string) => void): Promise<PlatformKeySource> {
  if (configured.length > 0) return 'configured';
  const created = await db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtextextended('tenantry:platform-key-bootstrap', 0))`.execute(trx);
    const existing = await trx.selectFrom('platform_keys').select('id').where('revoked_at', 'is', null).executeTakeFirst();
    if (existing) return null;
    const { key, keyHash } = newPlatformKey();
    const row = await trx.insertInto('platform_keys').values({ name: 'bootstrap', key_hash: keyHash }).returning('id').executeTakeFirstOrThrow();
    await appendAudit(trx, { actor: 'system:api', action: 'platform_key.created', data: { keyId: row.id, name: 'bootstrap' } });
    return key;
  });
  if (!created) return 'stored';
  logger.warn('no platform key configured or stored: generated one (printed once on stdout)');
  print(`\nTenantry platform API key (shown once; store it now, only its hash is kept):\n\n  ${created}\n`);
  return 'generated';
}

/** A stored, unrevoked platform key: its row id and the SHA-256 of the key. */
interface StoredKey {
  id: string;
  key_hash: Buffer;
}

/**
 * The active stored platform keys, kept in memory so that a platform call needs no key
 * query (a status poll was two queries; now one). Correct only because Postgres announces
 * every change to platform_keys (migration 2026-12-02T1000_platform_key_changes) on the
 * api's tenant change feed, so, as for tenant credentials (credential-cache.ts):
 *
 * - An announced change (a key created, revoked, removed; by the platform-key command or
 *   an operator's SQL) drops what is held at once: a revoked key is refused by every
 *   instance within the notification's delivery (milliseconds; tested under 1 s).
 * - While the feed is not listening, every call reads the keys; every loss and every
 *   reconnection drops what is held.
 * - A read that raced an announcement is not kept (its answer may predate the change).
 * - What is held is read again after `ttlMs` regardless; 0 turns the memory off.
 *
 * A key that is not among those held is looked up once more before it is refused, so a key
 * created a moment ago works at once, before its announcement arrives.
 */
export class StoredPlatformKeys {
  private held: { keys: StoredKey[]; until: number } | undefined;
  /** Bumped by every announcement and feed reset: a read that saw it change is not kept. */
  private invalidations = 0;

  constructor(
    private readonly db: Db,
    private readonly feed: ChangeFeedState,
    private readonly ttlMs: number,
    private readonly onLookup: (result: 'hit' | 'miss' | 'bypass') => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /** The active keys, and whether they came from memory (a miss there is worth a fresh read). */
  async active(): Promise<{ keys: StoredKey[]; fromMemory: boolean }> {
    const held = this.held;
    if (held && this.feed.listening && this.now() < held.until) {
      this.onLookup('hit');
      return { keys: held.keys, fromMemory: true };
    }
    return { keys: await this.read(), fromMemory: false };
  }

  /** Read the keys from Postgres; kept for later calls only if nothing changed while reading. */
  async read(): Promise<StoredKey[]> {
    const seen = this.invalidations;
    const keep = this.ttlMs > 0 && this.feed.listening;
    const keys = await this.db.selectFrom('platform_keys').select(['id', 'key_hash']).where('revoked_at', 'is', null).execute();
    if (keep && this.feed.listening && seen === this.invalidations) {
      this.held = { keys, until: this.now() + this.ttlMs };
      this.onLookup('miss');
    } else {
      this.onLookup('bypass');
    }
    return keys;
  }

  /** A change was announced, or the feed was lost or regained: read the keys again next time. */
  invalidate(): void {
    this.invalidations++;
    this.held = undefined;
  }
}

/** The stored key whose hash is `presented`, compared with every one in constant time. */
function storedMatch(keys: readonly StoredKey[], presented: Buffer): string | null {
  let match: string | null = null;
  for (const row of keys) {
    if (row.key_hash.length === presented.length && timingSafeEqual(row.key_hash, presented)) match ??= row.id;
  }
  return match;
}

/** What authenticating a platform call needs of the api's dependencies. */
export interface PlatformKeyDeps {
  db: Db;
  platformKeys: StoredPlatformKeys;
  /** Hashes of the keys given in PLATFORM_API_KEY. */
  platformKeyHashes: Buffer[];
}

/**
 * Authenticate a platform request. Hashes are compared with timingSafeEqual against every
 * active key, so neither the match nor its position leaks through timing. A valid tenant
 * session token here is the wrong credential, not a wrong one: 403, not 401.
 */
export async function authenticatePlatform(deps: PlatformKeyDeps, bearer: string | null): Promise<PlatformPrincipal> {
  const { db } = deps;
  if (!bearer) throw new UnauthorizedError('unauthenticated', 'A platform API key is required (Authorization: Bearer <key>)');
  const presented = sha256(bearer);
  let match: string | null = null;
  deps.platformKeyHashes.forEach((hash, i) => {
    if (timingSafeEqual(hash, presented)) match ??= `env:${i + 1}`;
  });
  const stored = await deps.platformKeys.active();
  match ??= storedMatch(stored.keys, presented);
  // Not among the keys held in memory: perhaps made a moment ago, its announcement still on its way.
  if (!match && stored.fromMemory) match = storedMatch(await deps.platformKeys.read(), presented);
  if (match) return { keyId: match };

  const isSession = await db
    .selectFrom('sessions')
    .select('id')
    .where('token_hash', '=', hashToken(bearer))
    .where('expires_at', '>', new Date())
    .executeTakeFirst();
  if (isSession) throw new ForbiddenError('platform_key_required', 'This route needs a platform API key, not a tenant token');
  throw new UnauthorizedError('invalid_platform_key', 'The platform API key is invalid or revoked');
}
