import { keepPreviousData, queryOptions, useQuery } from '@tanstack/react-query';
import { Link, useNavigate } from '@tanstack/react-router';
import { createColumnHelper, tableFeatures, useTable } from '@tanstack/react-table';
import { useEffect, useState } from 'react';
import { type TenantListItem, api, queryKeys } from '../api';
import { StorageUsed } from '../features/usage';
import { PAGE_SIZE, PLANS, STATUSES, type TenantFilters } from '../filters';
import { tenantsRoute } from '../router';
import { Select } from '../ui/Field';
import { formatDate } from '../ui/format';
import { Empty, ErrorState, Loading, StatusBadge } from '../ui/states';

const features = tableFeatures({});
const column = createColumnHelper<typeof features, TenantListItem>();
const columns = column.columns([
  column.accessor('name', {
    header: 'Name',
    cell: (info) => (
      <Link to="/tenants/$tenantId" params={{ tenantId: info.row.original.id }} className="table__primary-link">
        {info.getValue()}
      </Link>
    ),
  }),
  column.accessor('plan', { header: 'Plan' }),
  column.accessor('status', { header: 'Status', cell: (info) => <StatusBadge status={info.getValue()} /> }),
  column.accessor('createdAt', { header: 'Created', cell: (info) => <time dateTime={info.getValue()}>{formatDate(info.getValue())}</time> }),
  column.display({ id: 'storageUsed', header: 'Storage used', cell: (info) => <StorageUsed tenant={info.row.original} /> }),
]);
const noRows: TenantListItem[] = [];

/** The list query of a view: the route's loader starts it, the page renders it. */
export function tenantListQuery(filters: TenantFilters) {
  const cursor = filters.c?.split('.').at(-1);
  const input = {
    ...(filters.q?.trim() ? { search: filters.q.trim() } : {}),
    ...(filters.plan ? { plan: filters.plan } : {}),
    ...(filters.status ? { status: filters.status } : {}),
    ...(cursor ? { cursor } : {}),
    limit: PAGE_SIZE,
  };
  return queryOptions({
    queryKey: queryKeys.tenantList(input),
    queryFn: ({ signal }) => api.tenants.list.query(input, { signal }),
  });
}

/** How long typing may pause before the search runs: short enough to feel live, long enough to skip most keystrokes. */
const SEARCH_DEBOUNCE_MS = 120;

export function TenantsPage() {
  const filters = tenantsRoute.useSearch();
  const navigate = useNavigate({ from: '/' });
  const cursors = filters.c ? filters.c.split('.') : [];

  useEffect(() => {
    document.title = 'Tenants · Tenantry';
  }, []);

  const setFilters = (change: Partial<TenantFilters>) =>
    // A new filter starts from the first page; `replace` keeps typing out of the history.
    void navigate({ search: (prev) => ({ ...prev, ...change, c: undefined }), replace: true });

  // The box is local while typing; the URL (and the query) follow after a short pause.
  const [text, setText] = useState(filters.q ?? '');
  useEffect(() => setText(filters.q ?? ''), [filters.q]);
  useEffect(() => {
    if (text.trim() === (filters.q ?? '').trim()) return;
    const timer = window.setTimeout(() => setFilters({ q: text.trim() ? text : undefined }), SEARCH_DEBOUNCE_MS);
    return () => window.clearTimeout(timer);
  });

  const page = useQuery({ ...tenantListQuery(filters), placeholderData: keepPreviousData });
  const table = useTable({ features, columns, data: page.data?.items ?? noRows, getRowId: (row) => row.id });

  const nextCursor = page.data?.nextCursor;
  const filtered = Boolean(filters.q || filters.plan || filters.status);

  return (
    <>
      <div className="page__header">
        <h1>Tenants</h1>
      </div>
      <div role="search" className="toolbar" aria-label="Filter tenants">
        <div className="field field--grow">
          <label className="field__label" htmlFor="tenant-search">
            Search tenants
          </label>
          <input
            id="tenant-search"
            className="input"
            type="search"
            placeholder="Name or slug"
            value={text}
            maxLength={64}
            autoComplete="off"
            onChange={(event) => setText(event.target.value)}
          />
        </div>
        <Select
          label="Plan"
          value={filters.plan ?? ''}
          onChange={(value) => setFilters({ plan: (value || undefined) as TenantFilters['plan'] })}
          options={[{ value: '', label: 'All plans' }, ...PLANS.map((plan) => ({ value: plan, label: plan }))]}
        />
        <Select
          label="Status"
          value={filters.status ?? ''}
          onChange={(value) => setFilters({ status: (value || undefined) as TenantFilters['status'] })}
          options={[{ value: '', label: 'All statuses' }, ...STATUSES.map((status) => ({ value: status, label: status.replace('_', ' ') }))]}
        />
      </div>

      {page.isPending ? (
        <Loading label="Loading tenants…" />
      ) : page.isError ? (
        <ErrorState error={page.error} onRetry={() => void page.refetch()} />
      ) : page.data.items.length === 0 ? (
        <Empty title={filtered ? 'No tenants match these filters.' : 'No tenants yet.'}>
          {filtered ? (
            <button type="button" className="button" onClick={() => void navigate({ search: {}, replace: true })}>
              Clear filters
            </button>
          ) : (
            <p className="muted">
              Create one with <code>POST /v1/tenants</code>, or run <code>pnpm demo</code> for sample data.
            </p>
          )}
        </Empty>
      ) : (
        <div className={`table-wrap${page.isPlaceholderData ? ' table-wrap--stale' : ''}`} aria-busy={page.isFetching}>
          <table className="table" aria-label="Tenants">
            <thead>
              {table.getHeaderGroups().map((group) => (
                <tr key={group.id}>
                  {group.headers.map((header) => (
                    <th key={header.id} scope="col">
                      {header.isPlaceholder ? null : <table.FlexRender header={header} />}
                    </th>
                  ))}
                </tr>
              ))}
            </thead>
            <tbody>
              {table.getRowModel().rows.map((row) => (
                <tr key={row.id}>
                  {row.getAllCells().map((cell) => (
                    <td key={cell.id}>
                      <table.FlexRender cell={cell} />
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      <nav className="pager" aria-label="Pages">
        <span className="muted" aria-live="polite">
          Page {cursors.length + 1}
        </span>
        <button
          type="button"
          className="button"
          disabled={cursors.length === 0}
          onClick={() => void navigate({ search: (prev) => ({ ...prev, c: cursors.slice(0, -1).join('.') || undefined }) })}
        >
          Previous page
        </button>
        <button
          type="button"
          className="button"
          disabled={!nextCursor || page.isPlaceholderData}
          onClick={() => nextCursor && void navigate({ search: (prev) => ({ ...prev, c: [...cursors, nextCursor].join('.') }) })}
        >
          Next page
        </button>
      </nav>
    </>
  );
}
