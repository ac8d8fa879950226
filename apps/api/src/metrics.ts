import { collectProcessMetrics } from '@tenantry/observability';
import { Limits } from '@tenantry/domain';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The api's Prometheus metrics, in a registry of its own (served on API_METRICS_PORT, not on
 * the public port). Labels are bounded sets only — route templates, methods, status
 * classes, results — never a tenant id, email or anything a client can vary freely.
 */
export function createApiMetrics() {
  const registry = new Registry();
  collectProcessMetrics(registry);

  const httpDuration = new Histogram({
    name: 'tenantry_http_request_duration_seconds',
    help: 'HTTP requests by route template, method and status class',
    labelNames: ['route', 'method', 'status_class'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const signups = new Counter({
    name: 'tenantry_signups_total',
    help: 'Public signups by result',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const rateLimited = new Counter({
    name: 'tenantry_rate_limited_total',
    help: 'Requests refused by a rate limiter',
    labelNames: ['limiter'] as const,
    registers: [registry],
  });
  const lifecycleTransitions = new Counter({
    name: 'tenantry_lifecycle_transitions_total',
    help: 'Tenant lifecycle transitions by from and to state',
    labelNames: ['from', 'to'] as const,
    registers: [registry],
  });
  const credentialLookups = new Counter({
    name: 'tenantry_credential_cache_lookups_total',
    help: 'Tenant credentials resolved: from the cache (hit), by a query then cached (miss), or by a query while the cache is off or not listening for changes (bypass)',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  for (const result of ['hit', 'miss', 'bypass']) credentialLookups.inc({ result }, 0);
  const platformKeyLookups = new Counter({
    name: 'tenantry_platform_key_lookups_total',
    help: 'Stored platform keys consulted for a platform call: from memory (hit), by a query then kept (miss), or by a query while memory is off or not listening for changes (bypass)',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  for (const result of ['hit', 'miss', 'bypass']) platformKeyLookups.inc({ result }, 0);
  const quotaExceeded = new Counter({
    name: 'tenantry_quota_exceeded_total',
    help: 'Tenant calls refused for exceeding a plan limit, by the limit (resource)',
    labelNames: ['resource'] as const,
    registers: [registry],
  });
  const usageFlushDuration = new Histogram({
    name: 'tenantry_usage_flush_duration_seconds',
    help: 'Time to write one flush of usage counts to Postgres',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const usageFlushRows = new Histogram({
    name: 'tenantry_usage_flush_rows',
    help: 'Rollup cells written per usage flush',
    buckets: [0, 1, 10, 100, 1_000, 10_000, 100_000],
    registers: [registry],
  });
  const usageFlushFailures = new Counter({
    name: 'tenantry_usage_flush_failures_total',
    help: 'Usage flushes that failed or timed out (each is retried with the same sequence number)',
    registers: [registry],
  });
  const usageUnflushedSeconds = new Gauge({
    name: 'tenantry_usage_unflushed_seconds',
    help: 'Age of the oldest usage count not yet in Postgres (what a SIGKILL now would lose)',
    registers: [registry],
  });

  const realtimeConnections = new Gauge({
    name: 'tenantry_realtime_connections',
    help: 'Realtime streams open on this instance',
    registers: [registry],
  });
  const realtimeEvents = new Counter({
    name: 'tenantry_realtime_events_total',
    help: 'Realtime events: published by this instance, delivered to its streams, or streams closed for reading too slowly',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  for (const kind of ['published', 'delivered', 'slow_consumer']) realtimeEvents.inc({ kind }, 0);
  const movesRequested = new Counter({
    name: 'tenantry_tenant_moves_requested_total',
    help: 'Moves of tenants between isolation models accepted, by from and to model',
    labelNames: ['from', 'to'] as const,
    registers: [registry],
  });
  const pausedWrites = new Counter({
    name: 'tenantry_tenant_writes_paused_total',
    help: "Tenant writes that met a move's write pause: waited for the switch, or refused with 503 tenant_moving",
    labelNames: ['outcome'] as const,
    registers: [registry],
  });

  // Start at 0 so the first refusal after a restart shows as an increase.
  for (const outcome of ['waited', 'refused']) pausedWrites.inc({ outcome }, 0);
  for (const resource of Object.keys(Limits.shape)) quotaExceeded.inc({ resource }, 0);
  for (const result of ['accepted', 'invalid', 'rate_limited', 'unavailable']) signups.inc({ result }, 0);
  for (const limiter of ['signup', 'login', 'login_ip', 'login_account', 'pricing']) rateLimited.inc({ limiter }, 0);

  // The stalest entitlement answer served since the last scrape (0 when all were fresh):
  // a gauge that remembers the worst case between scrapes instead of the last value.
  let stalest = 0;
  new Gauge({
    name: 'tenantry_entitlement_staleness_seconds',
    help: 'Staleness of the stalest entitlement answer served since the last scrape',
    registers: [registry],
    collect() {
      this.set(stalest);
      stalest = 0;
    },
  });

  return {
    registry,
    httpDuration,
    signups,
    rateLimited,
    lifecycleTransitions,
    quotaExceeded,
    credentialLookups,
    platformKeyLookups,
    usageFlushDuration,
    usageFlushRows,
    usageFlushFailures,
    usageUnflushedSeconds,
    realtimeConnections,
    realtimeEvents,
    movesRequested,
    pausedWrites,
    observeStaleness(seconds: number) {
      if (seconds > stalest) stalest = seconds;
    },
  };
}

export type ApiMetrics = ReturnType<typeof createApiMetrics>;

/** `2xx` … `5xx` */
export function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}
