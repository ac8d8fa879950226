import { useInfiniteQuery, useQuery } from '@tanstack/react-query';
import { Link } from '@tanstack/react-router';
import { isTenantryError } from '@tenantry/sdk';
import { useEffect } from 'react';
import { type Tenant, api, queryKeys } from '../api';
import { QuotaLimits } from '../features/quotas';
import { LifecycleActions } from '../features/lifecycle';
import { usagePanels } from '../features/usage';
import { tenantRoute } from '../router';
import { formatDateTime } from '../ui/format';
import { Card, Empty, ErrorState, Facts, Loading, StatusBadge } from '../ui/states';

export function TenantPage() {
  const { tenantId } = tenantRoute.useParams();
  const tenant = useQuery({ queryKey: queryKeys.tenant(tenantId), queryFn: () => api.tenants.get.query({ id: tenantId }) });

  useEffect(() => {
    document.title = `${tenant.data?.name ?? 'Tenant'} · Tenantry`;
  }, [tenant.data?.name]);

  if (tenant.isPending) return <Loading label="Loading tenant…" />;
  if (tenant.isError) {
    if (isTenantryError(tenant.error) && (tenant.error.status === 404 || tenant.error.status === 400)) {
      return (
        <Empty title="No such tenant.">
          <Link to="/">Back to tenants</Link>
        </Empty>
      );
    }
    return <ErrorState error={tenant.error} onRetry={() => void tenant.refetch()} />;
  }
  const t = tenant.data;
  return (
    <>
      <nav aria-label="Breadcrumb" className="breadcrumb">
        <Link to="/">Tenants</Link>
        <span aria-hidden="true"> / </span>
        <span aria-current="page">{t.slug}</span>
      </nav>
      <div className="page__header">
        <h1>{t.name}</h1>
        <StatusBadge status={t.status} />
      </div>
      <LifecycleActions tenant={t} />
      <div className="grid">
        <Profile tenant={t} />
        <Health tenant={t} />
        <QuotaLimits tenant={t} />
        {usagePanels.map(({ id, Panel }) => (
          <Panel key={id} tenant={t} />
        ))}
        <AuditTrail tenant={t} />
      </div>
    </>
  );
}

function Profile({ tenant }: { tenant: Tenant }) {
  return (
    <Card title="Profile">
      <Facts
        items={[
          ['Id', <code key="id">{tenant.id}</code>],
          ['Slug', <code key="slug">{tenant.slug}</code>],
          ['Plan', tenant.plan],
          ['Status', <StatusBadge key="status" status={tenant.status} />],
          ...(tenant.statusReason ? ([['Reason', tenant.statusReason]] as const) : []),
          ...(tenant.deleteAfter ? ([['Purged after', formatDateTime(tenant.deleteAfter)]] as const) : []),
          ['Isolation', tenant.isolation],
          ['Created', formatDateTime(tenant.createdAt)],
          ['Updated', formatDateTime(tenant.updatedAt)],
        ]}
      />
    </Card>
  );
}

const DNS_STATUS: Record<string, string> = {
  ok: 'published',
  missing: 'missing from DNS',
  unreachable: 'DNS server unreachable',
  not_configured: 'per-tenant DNS not configured',
};

function Health({ tenant }: { tenant: Tenant }) {
  const health = useQuery({
    queryKey: queryKeys.health(tenant.id),
    queryFn: () => api.tenants.health.query({ id: tenant.id }),
    refetchInterval: 30_000,
  });
  return (
    <Card title="Health">
      {health.isPending ? (
        <Loading label="Checking health…" />
      ) : health.isError ? (
        <ErrorState error={health.error} onRetry={() => void health.refetch()} />
      ) : (
        <Facts
          items={[
            [
              'Healthy',
              <span key="h" className={health.data.healthy ? 'text-success' : 'text-danger'}>
                {health.data.healthy ? 'yes' : health.data.lifecycle === 'active' ? 'no' : `no (${health.data.lifecycle.replace('_', ' ')})`}
              </span>,
            ],
            [
              'Store',
              health.data.store
                ? health.data.store.ok
                  ? `answers (${Math.round(health.data.store.latencyMs)} ms)`
                  : `failing: ${health.data.store.error ?? 'unknown error'}`
                : 'not checked in this state',
            ],
            ['DNS name', health.data.dns.name ? <code key="dns">{health.data.dns.name}</code> : '—'],
            ['DNS', DNS_STATUS[health.data.dns.status] ?? health.data.dns.status],
            ['Provisioning', health.data.provisioning.status ?? '—'],
            ...(health.data.provisioning.lastError ? ([['Last error', health.data.provisioning.lastError]] as const) : []),
            [
              'Last probe',
              health.data.lastProbe
                ? `${formatDateTime(health.data.lastProbe.at)}: ${health.data.lastProbe.ok ? 'ok' : `${health.data.lastProbe.consecutiveFailures} failures`}`
                : 'none yet',
            ],
          ]}
        />
      )}
    </Card>
  );
}

const AUDIT_PAGE = 20;

function AuditTrail({ tenant }: { tenant: Tenant }) {
  const audit = useInfiniteQuery({
    queryKey: queryKeys.audit(tenant.id),
    queryFn: ({ pageParam }) => api.audit.list.query({ tenantId: tenant.id, limit: AUDIT_PAGE, ...(pageParam ? { cursor: pageParam } : {}) }),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const entries = audit.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <Card title="Audit trail" className="grid__wide">
      {audit.isPending ? (
        <Loading label="Loading audit trail…" />
      ) : audit.isError ? (
        <ErrorState error={audit.error} onRetry={() => void audit.refetch()} />
      ) : entries.length === 0 ? (
        <Empty title="No audit entries." />
      ) : (
        <>
          <table className="table table--compact" aria-label="Audit trail">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Action</th>
                <th scope="col">Actor</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((entry) => (
                <tr key={entry.id}>
                  <td>
                    <time dateTime={entry.at}>{formatDateTime(entry.at)}</time>
                  </td>
                  <td>
                    <code>{entry.action}</code>
                  </td>
                  <td>{entry.actor}</td>
                  <td className="audit__data">{describeData(entry.data)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {audit.hasNextPage ? (
            <button type="button" className="button" onClick={() => void audit.fetchNextPage()} disabled={audit.isFetchingNextPage}>
              {audit.isFetchingNextPage ? 'Loading…' : 'Load older entries'}
            </button>
          ) : null}
        </>
      )}
    </Card>
  );
}

function describeData(data: Record<string, unknown>): string {
  return Object.entries(data)
    .filter(([, value]) => value !== null && value !== undefined)
    .map(([key, value]) => `${key}: ${typeof value === 'object' ? JSON.stringify(value) : String(value)}`)
    .join(' · ');
}
