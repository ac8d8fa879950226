import type { DnsProvider } from '@tenantry/dns';
import { type Db, type TenantStore, clusterReplicationHealth, probeTenantStore } from '@tenantry/db';
import { NotFoundError, fromPublicId, toPublicId } from '@tenantry/domain';

/**
 * A tenant's health, checked now: a real query in its own store, its DNS record (none is
 * configured in this version), its provisioning and lifecycle state, and what the worker's
 * periodic probe last saw; for a cluster tenant, each instance's role, state and lag and its
 * last failover, as the worker's watch recorded them.
 */
export async function tenantHealth(db: Db, tenantStore: TenantStore, dns: DnsProvider, ref: string) {
  const id = fromPublicId('ten', ref);
  const tenant = await db
    .selectFrom('tenants')
    .select(['id', 'slug', 'status', 'isolation', 'schema_name', 'placement_generation'])
    .where(id ? 'id' : 'slug', '=', id ?? ref)
    .executeTakeFirst();
  if (!tenant) throw new NotFoundError('Tenant', 'tenant_not_found');

  const [signup, steps, probe] = await Promise.all([
    db.selectFrom('signups').select(['status', 'last_error']).where('tenant_id', '=', tenant.id).executeTakeFirst(),
    db.selectFrom('provisioning_steps').select('step').where('tenant_id', '=', tenant.id).orderBy('completed_at').execute(),
    db.selectFrom('tenant_health').selectAll().where('tenant_id', '=', tenant.id).executeTakeFirst(),
  ]);
  const checkStore = tenant.status === 'active' || tenant.status === 'suspended' || tenant.status === 'pending_deletion';
  const store = checkStore ? await probeTenantStore(tenantStore, { id: tenant.id, isolation: tenant.isolation, schemaName: tenant.schema_name, placementGeneration: tenant.placement_generation }) : null;
  return {
    tenantId: toPublicId('ten', tenant.id),
    healthy: tenant.status === 'active' && store?.ok === true,
    lifecycle: tenant.status,
    provisioning: {
      status: signup?.status ?? null,
      stepsDone: steps.map((s) => s.step),
      lastError: signup?.last_error ?? null,
    },
    store: store ? { ok: store.ok, latencyMs: store.latencyMs, error: store.error ?? null } : null,
    dns: await dnsStatus(dns, tenant.slug, tenant.status),
    lastProbe: probe
      ? {
          at: new Date(probe.last_probe_at).toISOString(),
          ok: probe.consecutive_failures === 0,
          consecutiveFailures: probe.consecutive_failures,
          lastError: probe.last_error,
        }
      : null,
    replication: tenant.isolation === 'cluster' ? await clusterReplicationHealth(db, tenant.id) : null,
  };
}

/** The tenant's hostname and whether it is published: `ok`, `missing`, or DNS not configured. */
async function dnsStatus(dns: DnsProvider, slug: string, status: string): Promise<{ status: 'not_configured' | 'ok' | 'missing' | 'unreachable'; name: string | null }> {
  if (!dns.zone || status === 'deleted') return { status: 'not_configured', name: null };
  const name = `${slug}.${dns.zone}`;
  try {
    return { status: (await dns.readTenantRecord(slug)) ? 'ok' : 'missing', name };
  } catch {
    return { status: 'unreachable', name };
  }
}
