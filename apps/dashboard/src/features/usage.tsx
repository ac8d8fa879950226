import type { Tenant } from '../api';

/**
 * THE place the usage API (metering) plugs into the dashboard. Until it lands
 * (GET /v1/tenants/{id}/usage, …/usage/series), storage shows "—" and the detail page has
 * no usage or chart panels. To add them:
 *
 *   1. `StorageUsed`: read the tenant's usage through TanStack Query (one batched query per
 *      page of tenants, or `storageBytes.current` from the list if the api adds it) and
 *      render `formatBytes`.
 *   2. `usagePanels`: append components (this month's usage against limits; the charts,
 *      role="img" named "API requests over time", "Storage over time", "Realtime
 *      connections over time"; invoices). The detail page renders every panel listed here,
 *      in order, after its quota limits.
 */
export function StorageUsed(_props: { tenant: Tenant }) {
  return (
    <span className="muted" title="Usage metering is not available yet">
      —
    </span>
  );
}

export interface TenantPanelProps {
  tenant: Tenant;
}

export const usagePanels: ReadonlyArray<{ id: string; Panel: (props: TenantPanelProps) => React.ReactNode }> = [];
