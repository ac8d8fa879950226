import { Limits } from '@tenantry/domain';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The api's Prometheus metrics, in a registry of its own (served on METRICS_PORT, not on
 * the public port). Labels are bounded sets only — route templates, methods, status
 * classes, results — never a tenant id, email or anything a client can vary freely.
 */
export function createApiMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

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
  const quotaExceeded = new Counter({
    name: 'tenantry_quota_exceeded_total',
    help: 'Tenant calls refused for exceeding a plan limit, by limit',
    labelNames: ['limit'] as const,
    registers: [registry],
  });

  // Start at 0 so the first refusal after a restart shows as an increase.
  for (const limit of Object.keys(Limits.shape)) quotaExceeded.inc({ limit }, 0);
  for (const result of ['accepted', 'invalid', 'rate_limited', 'unavailable']) signups.inc({ result }, 0);
  for (const limiter of ['signup', 'login', 'pricing']) rateLimited.inc({ limiter }, 0);

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
