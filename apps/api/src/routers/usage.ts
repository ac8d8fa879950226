import { OwnUsageRequest, TenantUsageRequest, UsageMonth, UsageReport, UsageSeries, UsageSeriesRequest } from '@tenantry/domain';
import { z } from 'zod';
import { findTenant } from '../services/tenants.js';
import { usageReport, usageSeries } from '../services/usage.js';
import { platformProcedure, router, tenantProcedure } from '../trpc.js';

const MONTHS = 'Months are calendar months in UTC (`YYYY-MM`); a month in the future is 400, a month before the tenant existed is all zeros.';
const METERS =
  '`apiRequests` counts every authenticated call, refused ones included, by route template, method and status class; `egressBytes` the response bodies sent; `storageBytes`, `fileStorageBytes` and `realtimeConnections` are gauges sampled by the worker (current, peak, time-weighted average).';

/** Usage: what a tenant used, from the hourly rollups quotas and invoices also read. */
export const usageRouter = router({
  ofTenant: platformProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/tenants/{id}/usage',
        summary: "A tenant's usage this month",
        description: `The tenant's usage in the current month, per meter, with \`asOf\` and its effective limits. ${METERS} ${MONTHS}`,
        auth: 'platform',
      },
    })
    .input(TenantUsageRequest)
    .output(UsageReport)
    .query(async ({ ctx, input }) => usageReport(ctx.deps, (await findTenant(ctx.deps.db, input.id)).id, input.month)),

  ofTenantMonth: platformProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/tenants/{id}/usage/{month}',
        summary: "A tenant's usage in a month",
        description: `The tenant's usage in one month; \`final\` once the month and its grace period for late counts are over. ${MONTHS}`,
        auth: 'platform',
      },
    })
    .input(TenantUsageRequest.extend({ month: UsageMonth }))
    .output(UsageReport)
    .query(async ({ ctx, input }) => usageReport(ctx.deps, (await findTenant(ctx.deps.db, input.id)).id, input.month)),

  series: platformProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/tenants/{id}/usage/series',
        summary: "A tenant's usage over time",
        description:
          'One meter of one tenant in UTC hours or days between `from` and `to` (ISO 8601), for charts: counters summed per bucket, gauges as their time-weighted average (and `peak`). Every bucket is present; empty ones are 0. At most 1,000 points.',
        auth: 'platform',
      },
    })
    .input(UsageSeriesRequest)
    .output(UsageSeries)
    .query(async ({ ctx, input }) => usageSeries(ctx.deps, (await findTenant(ctx.deps.db, input.id)).id, input)),

  own: tenantProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/usage',
        summary: 'My usage this month',
        description: `The calling tenant's own usage in the current month, with \`asOf\` and its limits. ${METERS} ${MONTHS}`,
        auth: 'tenant',
      },
    })
    .input(OwnUsageRequest)
    .output(UsageReport)
    .query(({ ctx, input }) => usageReport(ctx.deps, ctx.principal.tenantId, input.month)),

  ownMonth: tenantProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/usage/{month}',
        summary: 'My usage in a month',
        description: `The calling tenant's own usage in one month. ${MONTHS}`,
        auth: 'tenant',
      },
    })
    .input(z.strictObject({ month: UsageMonth }))
    .output(UsageReport)
    .query(({ ctx, input }) => usageReport(ctx.deps, ctx.principal.tenantId, input.month)),
});
