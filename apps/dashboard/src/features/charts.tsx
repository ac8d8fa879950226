import { useQuery } from '@tanstack/react-query';
import { useEffect, useId, useRef, useState } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { type Interval, type Meter, type Tenant, type UsageSeries, api, queryKeys } from '../api';
import { formatBytes, formatNumber } from '../ui/format';
import { Card, ErrorState, Loading } from '../ui/states';

/**
 * Usage over time, from the series API (`usage.series`): one uPlot chart per meter. uPlot
 * draws on a canvas, so each chart is a `role="img"` whose name says what it is and whose
 * description is a visible text summary of the same numbers (total, peak and when).
 * This module is loaded lazily: the tenant list never downloads uPlot.
 */
const RANGES = {
  hour: { label: 'Last 24 hours', points: 24, step: 3_600_000 },
  day: { label: 'Last 30 days', points: 30, step: 86_400_000 },
} as const satisfies Record<Interval, { label: string; points: number; step: number }>;

interface ChartSpec {
  meter: Meter;
  title: string;
  /** The accessible name: part of the dashboard's contract (ARCHITECTURE.md). */
  name: string;
  kind: 'counter' | 'gauge';
  format: (n: number) => string;
}

const CHARTS: readonly ChartSpec[] = [
  { meter: 'apiRequests', title: 'API requests', name: 'API requests over time', kind: 'counter', format: (n) => formatNumber(Math.round(n)) },
  { meter: 'storageBytes', title: 'Storage', name: 'Storage over time', kind: 'gauge', format: (n) => formatBytes(Math.round(n)) },
  { meter: 'realtimeConnections', title: 'Realtime connections', name: 'Realtime connections over time', kind: 'gauge', format: (n) => formatNumber(Math.round(n)) },
];

/** The window ending with the current UTC bucket: 24 whole hours or 30 whole days. */
function windowOf(interval: Interval, now = Date.now()): { from: string; to: string } {
  const { points, step } = RANGES[interval];
  const end = Math.floor(now / step) * step + step;
  return { from: new Date(end - points * step).toISOString(), to: new Date(end).toISOString() };
}

const hourFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const whenOf = (interval: Interval, at: string) => (interval === 'hour' ? hourFormat : dayFormat).format(new Date(at));

/** "API requests, last 24 hours: 1,234 total, peak 210 at 14:00." — what the chart shows, in words. */
export function summarize(spec: ChartSpec, series: UsageSeries): string {
  const range = RANGES[series.interval].label.toLowerCase();
  const points = series.points;
  const peakOf = (p: UsageSeries['points'][number]) => (spec.kind === 'gauge' ? (p.peak ?? p.value) : p.value);
  const top = points.reduce<UsageSeries['points'][number] | undefined>((best, p) => (!best || peakOf(p) > peakOf(best) ? p : best), undefined);
  if (!top || peakOf(top) === 0) return `${spec.title}, ${range}: no data.`;
  const peak = `peak ${spec.format(peakOf(top))} at ${whenOf(series.interval, top.at)}`;
  if (spec.kind === 'counter') {
    const total = points.reduce((sum, p) => sum + p.value, 0);
    return `${spec.title}, ${range}: ${spec.format(total)} total, ${peak}.`;
  }
  const latest = [...points].reverse().find((p) => p.value > 0) ?? top;
  return `${spec.title}, ${range}: ${peak}, latest ${spec.format(latest.value)} (${whenOf(series.interval, latest.at)}).`;
}

export function UsageCharts({ tenant }: { tenant: Tenant }) {
  const [interval, pickInterval] = useState<Interval>('hour');
  return (
    <Card
      title="Usage over time"
      className="grid__wide"
      actions={
        <div className="segmented" role="group" aria-label="Chart range">
          {(Object.keys(RANGES) as Interval[]).map((value) => (
            <button key={value} type="button" className="segmented__button" aria-pressed={interval === value} onClick={() => pickInterval(value)}>
              {RANGES[value].label}
            </button>
          ))}
        </div>
      }
    >
      <div className="charts">
        {CHARTS.map((spec) => (
          <MeterChart key={spec.meter} tenant={tenant} spec={spec} interval={interval} />
        ))}
      </div>
    </Card>
  );
}

function MeterChart({ tenant, spec, interval }: { tenant: Tenant; spec: ChartSpec; interval: Interval }) {
  const summaryId = useId();
  const series = useQuery({
    queryKey: queryKeys.series(tenant.id, spec.meter, interval),
    queryFn: () => api.usage.series.query({ id: tenant.id, meter: spec.meter, interval, ...windowOf(interval) }),
    refetchInterval: 60_000,
  });
  const empty = series.data ? series.data.points.every((p) => p.value === 0 && !p.peak) : true;
  return (
    <figure className="chart">
      <figcaption className="chart__title">{spec.title}</figcaption>
      {series.isPending ? (
        <Loading label={`Loading ${spec.title.toLowerCase()}…`} />
      ) : series.isError ? (
        <ErrorState error={series.error} onRetry={() => void series.refetch()} />
      ) : (
        <>
          <div role="img" aria-label={spec.name} aria-describedby={summaryId} className="chart__plot" data-points={series.data.points.filter((p) => p.value > 0).length}>
            {empty ? <p className="chart__empty">Nothing recorded in this range yet.</p> : <Plot spec={spec} series={series.data} />}
          </div>
          <p id={summaryId} className="chart__summary">
            {summarize(spec, series.data)}
          </p>
        </>
      )}
    </figure>
  );
}

const HEIGHT = 180;

/** The uPlot canvas, sized to its container and rebuilt when the data changes. */
function Plot({ spec, series }: { spec: ChartSpec; series: UsageSeries }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const xs = series.points.map((p) => Date.parse(p.at) / 1000);
    const ys = series.points.map((p) => p.value);
    const data: uPlot.AlignedData = spec.kind === 'gauge' ? [xs, ys, series.points.map((p) => p.peak ?? p.value)] : [xs, ys];
    const axis = { stroke: '#50585f', grid: { stroke: '#e8eaee' }, ticks: { stroke: '#d9dde3' } };
    const plot = new uPlot(
      {
        width: Math.max(200, el.clientWidth),
        height: HEIGHT,
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
        axes: [axis, { ...axis, size: 70, values: (_u, splits) => splits.map((n) => spec.format(n)) }],
        series: [
          {},
          { label: spec.kind === 'gauge' ? 'average' : spec.title, stroke: '#1f4fd1', fill: 'rgb(31 79 209 / 12%)', width: 2, value: (_u, v) => (v == null ? '' : spec.format(v)) },
          ...(spec.kind === 'gauge' ? [{ label: 'peak', stroke: '#713f12', dash: [4, 4], width: 1.5, points: { show: false } }] : []),
        ],
      },
      data,
      el,
    );
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(200, el.clientWidth), height: HEIGHT }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [spec, series]);
  return <div ref={ref} className="chart__canvas" aria-hidden="true" />;
}
