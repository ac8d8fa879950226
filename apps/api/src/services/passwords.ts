import argon2 from 'argon2';

/**
 * argon2id at the OWASP floor (m = 19 MiB, t = 2, p = 1). Hashing runs on libuv's small
 * thread pool, which is why the signup limiter runs before any hash is computed.
 */
const ARGON2_OPTIONS = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export function hashPassword(password: string): Promise<string> {
  return argon2.hash(password, ARGON2_OPTIONS);
}

/**
 * Verify a password; with no stored hash (unknown email) verify against a throwaway hash
 * anyway, so "no such user" and "wrong password" take the same time.
 */
export async function verifyPassword(storedHash: string | null, password: string): Promise<boolean> {
  const hash = storedHash ?? (await dummyHash());
  const ok = await argon2.verify(hash, password);
  return storedHash !== null && ok;
}

let dummy: Promise<string> | undefined;
function dummyHash(): Promise<string> {
  dummy ??= argon2.hash('tenantry-timing-equaliser', ARGON2_OPTIONS);
  return dummy;
}
