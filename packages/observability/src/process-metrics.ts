import { type Registry, collectDefaultMetrics } from 'prom-client';

/**
 * prom-client's default gauges that end in `_total`, a suffix the exposition format keeps
 * for counters (`promtool check metrics` fails on them). Their per-type twins without the
 * suffix (`nodejs_active_handles{type=…}` and so on) stay: sum() of those is the total.
 */
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** Node process metrics (CPU, memory, event loop, GC, handles) in `registry`, all validly named. */
export function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(name);
}
