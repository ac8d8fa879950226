import { useQuery } from '@tanstack/react-query';
import { type ReactNode, Suspense, lazy } from 'react';
import { type Tenant, type TenantListItem, type UsageReport, api, queryKeys } from '../api';
import { formatBytes, formatDateTime, formatNumber } from '../ui/format';
import { Card, ErrorState, Loading } from '../ui/states';
import { Invoices, UpcomingInvoice } from './invoices';

/**
 * The list's "Storage used": the latest storage sample the list route carries with each
 * tenant (the worker samples every USAGE_SAMPLE_INTERVAL_MS), "—" before the first.
 */
export function StorageUsed({ tenant }: { tenant: TenantListItem }) {
  if (tenant.storageBytes === null) {
    return (
      <span className="muted" title="Not sampled yet">
        —
      </span>
    );
  }
  return <>{formatBytes(tenant.storageBytes)}</>;
}

export interface TenantPanelProps {
  tenant: Tenant;
}

const percent = new Intl.NumberFormat(undefined, { style: 'percent', maximumFractionDigits: 3 });

function used(value: number, limit: number | undefined, format: (n: number) => string): ReactNode {
  if (limit === undefined) return format(value);
  const share = limit > 0 ? value / limit : 0;
  return (
    <>
      {format(value)} <span className="muted">of {format(limit)}</span>
      {limit > 0 ? <meter className="usage__meter" min={0} max={1} value={Math.min(share, 1)} high={0.8} optimum={0} aria-label={`${percent.format(share)} of the limit`} /> : null}
    </>
  );
}

function usageRows(report: UsageReport): ReadonlyArray<readonly [string, ReactNode]> {
  const { meters, limits } = report;
  const availability = meters.availability;
  return [
    ['API requests', `${formatNumber(meters.apiRequests.total)} (limit ${formatNumber(limits.apiRequestsPerMinute)} per minute)`],
    ['Egress', formatBytes(meters.egressBytes.total)],
    ['Database storage', used(meters.storageBytes.current, limits.storageBytes, formatBytes)],
    ['File storage', used(meters.fileStorageBytes.current, limits.fileStorageBytes, formatBytes)],
    ['Realtime connections', used(meters.realtimeConnections.current, limits.realtimeConnections, formatNumber)],
    ['Realtime peak', formatNumber(meters.realtimeConnections.peak)],
    ['Availability', availability.ratio === null ? 'no probes yet' : `${percent.format(availability.ratio)} of ${formatNumber(availability.probes)} probes`],
  ];
}

/** This month's usage per meter against the tenant's effective limits, with the instant it is true as of. */
function UsageThisMonth({ tenant }: TenantPanelProps) {
  const usage = useQuery({
    queryKey: queryKeys.usage(tenant.id),
    queryFn: () => api.usage.ofTenant.query({ id: tenant.id }),
    refetchInterval: 60_000,
  });
  return (
    <Card title="Usage this month">
      {usage.isPending ? (
        <Loading label="Loading usage…" />
      ) : usage.isError ? (
        <ErrorState error={usage.error} onRetry={() => void usage.refetch()} />
      ) : (
        <>
          <table className="table table--compact" aria-label="Usage this month">
            <thead>
              <tr>
                <th scope="col">Meter</th>
                <th scope="col">Used</th>
              </tr>
            </thead>
            <tbody>
              {usageRows(usage.data).map(([meter, value]) => (
                <tr key={meter}>
                  <th scope="row">{meter}</th>
                  <td>{value}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <p className="muted">
            {usage.data.month} (UTC), as of <time dateTime={usage.data.asOf}>{formatDateTime(usage.data.asOf)}</time>
            {usage.data.final ? '; final' : ''}.
          </p>
        </>
      )}
    </Card>
  );
}

/** uPlot is only downloaded when a tenant page opens, never for the list. */
const UsageCharts = lazy(() => import('./charts').then((m) => ({ default: m.UsageCharts })));

function Charts({ tenant }: TenantPanelProps) {
  return (
    <Suspense
      fallback={
        <Card title="Usage over time" className="grid__wide">
          <Loading label="Loading charts…" />
        </Card>
      }
    >
      <UsageCharts tenant={tenant} />
    </Suspense>
  );
}

/** The panels the tenant page shows after its quota limits, in order. */
export const usagePanels: ReadonlyArray<{ id: string; Panel: (props: TenantPanelProps) => ReactNode }> = [
  { id: 'usage', Panel: UsageThisMonth },
  { id: 'invoices', Panel: Invoices },
  { id: 'charts', Panel: Charts },
  { id: 'upcoming', Panel: UpcomingInvoice },
];
