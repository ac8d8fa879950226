import { createHash, randomBytes } from 'node:crypto';

/** Session tokens are opaque random strings; only their SHA-256 is stored. */
const TOKEN_PREFIX = 'tnt_s_';

export function newSessionToken(prefix = TOKEN_PREFIX): { token: string; tokenHash: Buffer } {
  const token = prefix + randomBytes(32).toString('base64url');
  return { token, tokenHash: hashToken(token) };
}

/**
 * SHA-256 (not a slow hash) is right here: the token has 256 bits of entropy, so nothing
 * can be guessed offline, and the lookup must be an indexed equality — which also means
 * no timing-sensitive string comparison happens in our code.
 */
export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
