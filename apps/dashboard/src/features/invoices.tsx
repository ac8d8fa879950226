import { useInfiniteQuery, useQuery } from '@tanstack/react-query';
import { isTenantryError } from '@tenantry/sdk';
import { type Invoice, type Tenant, api, queryKeys } from '../api';
import { formatDate, formatDateTime } from '../ui/format';
import { Card, Empty, ErrorState, Loading } from '../ui/states';

const moneyFormats = new Map<string, Intl.NumberFormat>();

/** Integer minor units in the invoice's currency ("2,500" USD → "$25.00"; JPY has no minor unit). */
export function formatMoney(minor: number, currency: string): string {
  let format = moneyFormats.get(currency);
  if (!format) {
    format = new Intl.NumberFormat(undefined, { style: 'currency', currency });
    moneyFormats.set(currency, format);
  }
  return format.format(minor / 10 ** (format.resolvedOptions().maximumFractionDigits ?? 2));
}

const quantity = new Intl.NumberFormat(undefined, { maximumFractionDigits: 6 });

/** An invoice's lines and total: the upcoming draft, and the pricing calculator's estimate. */
export function InvoiceLines({ invoice, label }: { invoice: Invoice; label: string }) {
  const money = (minor: number) => formatMoney(minor, invoice.currency);
  return (
    <div className="table-scroll">
      <table className="table table--compact" aria-label={label}>
        <thead>
          <tr>
            <th scope="col">Line</th>
            <th scope="col" className="num">
              Quantity
            </th>
            <th scope="col" className="num">
              Unit price
            </th>
            <th scope="col" className="num">
              Amount
            </th>
          </tr>
        </thead>
        <tbody>
          {invoice.lines.map((line, i) => (
            <tr key={`${line.kind}-${line.from}-${i}`}>
              <th scope="row" className="invoice__line">
                {line.description}
              </th>
              <td className="num">
                {quantity.format(Number(line.quantity))} {line.unit}
              </td>
              <td className="num">{money(line.unitPriceMinor)}</td>
              <td className="num">{money(line.amountMinor)}</td>
            </tr>
          ))}
        </tbody>
        <tfoot>
          {invoice.subtotalMinor !== invoice.totalMinor ? (
            <tr>
              <th scope="row" colSpan={3}>
                Subtotal
              </th>
              <td className="num">{money(invoice.subtotalMinor)}</td>
            </tr>
          ) : null}
          <tr>
            <th scope="row" colSpan={3}>
              Total
            </th>
            <td className="num invoice__total">{money(invoice.totalMinor)}</td>
          </tr>
        </tfoot>
      </table>
    </div>
  );
}

/**
 * The month so far as a draft, computed by the api with the month close's own code.
 * 404 `no_upcoming_invoice`: nothing is billed to the tenant this month.
 */
export function UpcomingInvoice({ tenant }: { tenant: Tenant }) {
  const upcoming = useQuery({
    queryKey: queryKeys.upcoming(tenant.id),
    queryFn: () => api.invoices.upcoming.query({ id: tenant.id }),
    retry: false,
  });
  const none = upcoming.isError && isTenantryError(upcoming.error) && upcoming.error.status === 404;
  return (
    <Card title="Upcoming invoice" className="grid__wide">
      {upcoming.isPending ? (
        <Loading label="Computing the upcoming invoice…" />
      ) : none ? (
        <Empty title="Nothing is billed to this tenant this month." />
      ) : upcoming.isError ? (
        <ErrorState error={upcoming.error} onRetry={() => void upcoming.refetch()} />
      ) : (
        <>
          <p className="muted">
            Draft for {upcoming.data.month}, {formatDate(upcoming.data.periodFrom)} to {formatDateTime(upcoming.data.periodTo)} so far (plan version{' '}
            {upcoming.data.planVersion}). It becomes an invoice when the month closes.
          </p>
          <InvoiceLines invoice={upcoming.data} label="Upcoming invoice lines" />
        </>
      )}
    </Card>
  );
}

const INVOICE_PAGE = 12;
const FORMATS = [
  { format: 'json', label: 'JSON' },
  { format: 'csv', label: 'CSV' },
  { format: 'pdf', label: 'PDF' },
] as const;

/**
 * The tenant's finalized invoices and voids, with downloads. The links are plain
 * same-origin GETs of the REST route: the session cookie authenticates them like any
 * platform read (reads need no CSRF token), so the browser downloads the file itself.
 */
export function Invoices({ tenant }: { tenant: Tenant }) {
  const invoices = useInfiniteQuery({
    queryKey: queryKeys.invoices(tenant.id),
    queryFn: ({ pageParam }) => api.invoices.list.query({ id: tenant.id, limit: INVOICE_PAGE, ...(pageParam ? { cursor: pageParam } : {}) }),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const items = invoices.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <Card title="Invoices" className="grid__span2">
      {invoices.isPending ? (
        <Loading label="Loading invoices…" />
      ) : invoices.isError ? (
        <ErrorState error={invoices.error} onRetry={() => void invoices.refetch()} />
      ) : items.length === 0 ? (
        <Empty title="No invoices yet.">
          <p className="muted">A month's invoice is issued when the month closes.</p>
        </Empty>
      ) : (
        <>
          <div className="table-scroll">
            <table className="table table--compact" aria-label="Invoices">
              <thead>
                <tr>
                  <th scope="col">Number</th>
                  <th scope="col">Month</th>
                  <th scope="col">Status</th>
                  <th scope="col" className="num">
                    Total
                  </th>
                  <th scope="col">Download</th>
                </tr>
              </thead>
              <tbody>
                {items.map((invoice) => (
                  <tr key={invoice.number}>
                    <th scope="row">
                      <code>{invoice.number}</code>
                    </th>
                    <td>{invoice.month}</td>
                    <td>
                      {invoice.status}
                      {invoice.voidedBy ? ` (voided by ${invoice.voidedBy})` : ''}
                      {invoice.voids ? ` of ${invoice.voids}` : ''}
                    </td>
                    <td className="num">{formatMoney(invoice.totalMinor, invoice.currency)}</td>
                    <td className="downloads">
                      {FORMATS.map(({ format, label }) => (
                        <a
                          key={format}
                          href={`/v1/tenants/${encodeURIComponent(tenant.id)}/invoices/${encodeURIComponent(invoice.number)}?format=${format}`}
                          download={`invoice-${invoice.number}.${format}`}
                          aria-label={`Download ${invoice.number} as ${label}`}
                        >
                          {label}
                        </a>
                      ))}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {invoices.hasNextPage ? (
            <button type="button" className="button" onClick={() => void invoices.fetchNextPage()} disabled={invoices.isFetchingNextPage}>
              {invoices.isFetchingNextPage ? 'Loading…' : 'Load older invoices'}
            </button>
          ) : null}
        </>
      )}
    </Card>
  );
}
