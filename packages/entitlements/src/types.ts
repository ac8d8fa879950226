import type { Entitlements } from '@tenantry/domain';

/**
 * Where an answer came from:
 * - `store`: read from the billing store just now (including "no billing row": trial defaults);
 * - `cache`: a cache entry younger than the TTL;
 * - `stale-cache`: the store failed; a cache entry older than the TTL but younger than the
 *   staleness bound was served;
 * - `defaults`: the store failed and nothing usable was cached: trial defaults (fail-open);
 * - `license`: a self-hosted installation's signed license.
 */
export type EntitlementOrigin = 'store' | 'cache' | 'stale-cache' | 'defaults' | 'license';

export type ResolvedEntitlements = Entitlements & {
  /** How old the answer may be, in whole seconds (0 for a fresh read or a TTL-fresh cache hit). */
  staleSeconds: number;
  origin: EntitlementOrigin;
};

/**
 * What a tenant may do now. Hosted installations read billing state (DatabaseSource);
 * self-hosted ones read a signed license (TokenSource).
 *
 * Returned objects are frozen and may be shared between callers: do not mutate them.
 */
export interface EntitlementSource {
  get(tenantId: string): Promise<ResolvedEntitlements>;
  close(): Promise<void>;
}

/** Deep-freeze an answer so one shared object can be handed to every caller. */
export function freezeResolved(value: ResolvedEntitlements): ResolvedEntitlements {
  Object.freeze(value.capabilities);
  Object.freeze(value.limits);
  return Object.freeze(value);
}
