import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { type Db, appendAudit } from '@tenantry/db';
import { ForbiddenError, UnauthorizedError } from '@tenantry/domain';
import { sql } from 'kysely';
import type { Logger } from 'pino';
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

/**
 * Authenticate a platform request. Hashes are compared with timingSafeEqual against every
 * active key, so neither the match nor its position leaks through timing. A valid tenant
 * session token here is the wrong credential, not a wrong one: 403, not 401.
 */
export async function authenticatePlatform(db: Db, configured: Buffer[], bearer: string | null): Promise<PlatformPrincipal> {
  if (!bearer) throw new UnauthorizedError('unauthenticated', 'A platform API key is required (Authorization: Bearer <key>)');
  const presented = sha256(bearer);
  let match: string | null = null;
  configured.forEach((hash, i) => {
    if (timingSafeEqual(hash, presented)) match ??= `env:${i + 1}`;
  });
  const stored = await db.selectFrom('platform_keys').select(['id', 'key_hash']).where('revoked_at', 'is', null).execute();
  for (const row of stored) {
    if (row.key_hash.length === presented.length && timingSafeEqual(row.key_hash, presented)) match ??= row.id;
  }
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
