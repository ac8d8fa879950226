/**
 * Per-tenant DNS: `<slug>.<zone>` for every tenant, made while provisioning and removed on
 * purge. One interface, a driver per DNS service; `none` when DNS is not configured.
 */
export interface DnsProvider {
  /** The zone tenants live under (no trailing dot), or null when DNS is off. */
  readonly zone: string | null;
  /** Create or replace the tenant's record. Idempotent. */
  ensureTenantRecord(slug: string): Promise<void>;
  /** Remove the tenant's record. Idempotent: a missing record is fine. */
  removeTenantRecord(slug: string): Promise<void>;
  /** The tenant's record as the DNS service holds it: its addresses/targets, or null. */
  readTenantRecord(slug: string): Promise<string[] | null>;
}

export class DnsError extends Error {}

const SLUG = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** `acme` → `acme.tenants.example.com` — slugs are checked to be one DNS label. */
export function tenantHostname(slug: string, zone: string): string {
  if (!SLUG.test(slug)) throw new DnsError(`not a DNS label: ${JSON.stringify(slug)}`);
  return `${slug}.${zone}`;
}

/** DNS switched off: nothing to make, nothing to remove. */
export class NoDnsProvider implements DnsProvider {
  readonly zone = null;
  async ensureTenantRecord(): Promise<void> {}
  async removeTenantRecord(): Promise<void> {}
  async readTenantRecord(): Promise<string[] | null> {
    return null;
  }
}
