import { collectProcessMetrics } from '@tenantry/observability';
import type { Db, StorageSupervision } from '@tenantry/db';
import { Isolation } from '@tenantry/domain';
import type { Queue } from 'bullmq';
import { sql } from 'kysely';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The worker's Prometheus metrics. Gauges that describe the fleet (tenants by status,
 * queue depth, unhealthy tenants) are computed at scrape time from Postgres and Redis with
 * one cheap query each, so every worker reports the same truth. No tenant id is a label.
 */
export function createWorkerMetrics(db: Db, queues: Record<string, Queue>, unhealthyAfterMs: number) {
  const registry = new Registry();
  collectProcessMetrics(registry);

  const provisions = new Counter({
    name: 'tenantry_provisions_total',
    help: 'Provisioning sagas finished, by outcome and isolation model',
    labelNames: ['status', 'isolation'] as const,
    registers: [registry],
  });
  const provisionDuration = new Histogram({
    name: 'tenantry_provision_duration_seconds',
    help: 'From the provisioning job being queued to the tenant being active',
    labelNames: ['isolation'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  const lifecycleTransitions = new Counter({
    name: 'tenantry_lifecycle_transitions_total',
    help: 'Tenant lifecycle transitions made by the worker (purge), by from and to state',
    labelNames: ['from', 'to'] as const,
    registers: [registry],
  });
  const probeFailures = new Counter({
    name: 'tenantry_tenant_probe_failures_total',
    help: 'Tenant health probes that failed',
    registers: [registry],
  });
  new Gauge({
    name: 'tenantry_active_tenants',
    help: 'Tenants by lifecycle status',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      const rows = await db.selectFrom('tenants').select(['status', (eb) => eb.fn.countAll<string>().as('n')]).groupBy('status').execute();
      this.reset();
      for (const row of rows) this.set({ status: row.status }, Number(row.n));
    },
  });
  new Gauge({
    name: 'tenantry_queue_jobs',
    help: 'Jobs by queue and state',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    async collect() {
      for (const [name, queue] of Object.entries(queues)) {
        const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed');
        for (const [state, n] of Object.entries(counts)) this.set({ queue: name, state }, n);
      }
    },
  });
  new Gauge({
    name: 'tenantry_tenants_unhealthy',
    help: 'Active tenants whose store has failed its health probe for longer than the probe interval',
    registers: [registry],
    async collect() {
      const row = await sql<{ n: number }>`
        select count(*)::int as n from tenant_health h join tenants t on t.id = h.tenant_id
        where t.status = 'active' and h.consecutive_failures > 0
          and h.last_failure_at > coalesce(h.last_success_at, '-infinity')
          and coalesce(h.last_success_at, '-infinity') < now() - make_interval(secs => ${unhealthyAfterMs / 1000})`.execute(db);
      this.set(row.rows[0]?.n ?? 0);
    },
  });

  const moves = new Counter({
    name: 'tenantry_tenant_moves_total',
    help: 'Moves of tenants between isolation models finished, by from and to model and outcome (done or rolled_back)',
    labelNames: ['from', 'to', 'status'] as const,
    registers: [registry],
  });
  const moveDuration = new Histogram({
    name: 'tenantry_tenant_move_duration_seconds',
    help: 'From a move being requested to its end (done or rolled back), by from and to model',
    labelNames: ['from', 'to'] as const,
    buckets: [0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
    registers: [registry],
  });
  const moveWritePause = new Histogram({
    name: 'tenantry_tenant_move_write_pause_seconds',
    help: "How long a move paused its tenant's writes (cutover to switch), by from and to model",
    labelNames: ['from', 'to'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [registry],
  });
  new Gauge({
    name: 'tenantry_tenant_moves_open',
    help: 'Moves not finished yet, by state',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      const rows = await db
        .selectFrom('tenant_moves')
        .select(['status', (eb) => eb.fn.countAll<string>().as('n')])
        .where('status', 'not in', ['done', 'rolled_back'])
        .groupBy('status')
        .execute();
      this.reset();
      for (const status of ['pending', 'copying', 'cutover', 'verifying', 'failed']) this.set({ status }, Number(rows.find((r) => r.status === status)?.n ?? 0));
    },
  });
  // Replicated cluster tenants (the cluster watch). Fleet-wide maxima and counts only.
  const failovers = new Counter({
    name: 'tenantry_cluster_failovers_total',
    help: 'Cluster tenant failovers, by outcome: started, completed, failed (given up)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const failoverSeconds = new Histogram({
    name: 'tenantry_cluster_failover_seconds',
    help: 'Completed failovers, by part: detection (primary first seen down → failover started), promotion (started → routing switched)',
    labelNames: ['part'] as const,
    buckets: [0.5, 1, 2.5, 5, 10, 15, 20, 30, 60, 120],
    registers: [registry],
  });
  const standbyRebuilds = new Counter({
    name: 'tenantry_cluster_standby_rebuilds_total',
    help: 'Standbys removed to be rebuilt (data directory gone, slot lost, or down past TENANT_CLUSTER_STANDBY_TIMEOUT_MS)',
    registers: [registry],
  });
  const fencedStops = new Counter({
    name: 'tenantry_cluster_fenced_stops_total',
    help: 'Fenced old primaries found running and stopped again',
    registers: [registry],
  });
  const degraded = new Gauge({
    name: 'tenantry_cluster_replication_degraded',
    help: 'Synchronous cluster tenants whose primary commits alone right now (no standby streams), as of the last watch pass',
    registers: [registry],
  });
  new Gauge({
    name: 'tenantry_cluster_replication_lag_bytes',
    help: 'Replication lag of the most lagging streaming standby over all cluster tenants, in bytes of WAL not yet replayed',
    registers: [registry],
    async collect() {
      const row = await sql<{ n: string | null }>`select max(lag_bytes)::text as n from cluster_instances where role = 'standby' and state = 'active' and observed_state in ('streaming', 'catchup')`.execute(db);
      this.set(Number(row.rows[0]?.n ?? 0));
    },
  });
  new Gauge({
    name: 'tenantry_cluster_replication_lag_seconds',
    help: 'Replication lag of the most lagging streaming standby over all cluster tenants, in seconds (replay_lag)',
    registers: [registry],
    async collect() {
      const row = await sql<{ n: number | null }>`select max(lag_seconds) as n from cluster_instances where role = 'standby' and state = 'active' and observed_state in ('streaming', 'catchup')`.execute(db);
      this.set(row.rows[0]?.n ?? 0);
    },
  });
  new Gauge({
    name: 'tenantry_cluster_standbys_missing',
    help: 'Standbys that cluster tenants should have but that do not stream (down, rebuilding, or not yet made)',
    registers: [registry],
    async collect() {
      const row = await sql<{ n: number }>`
        select coalesce(sum(greatest(0, t.cluster_replicas - (
          select count(*) from cluster_instances i
          where i.tenant_id = t.id and i.role = 'standby' and i.state = 'active' and i.observed_state = 'streaming'))), 0)::int as n
        from tenants t
        where t.isolation = 'cluster' and t.status in ('active', 'suspended', 'pending_deletion') and t.cluster_replicas > 0`.execute(db);
      this.set(row.rows[0]?.n ?? 0);
    },
  });
  const recordSupervision = (report: StorageSupervision) => {
    if (report.failoversStarted > 0) failovers.inc({ outcome: 'started' }, report.failoversStarted);
    for (const f of report.failovers) {
      failovers.inc({ outcome: f.outcome });
      if (f.detectionSeconds !== undefined) failoverSeconds.observe({ part: 'detection' }, f.detectionSeconds);
      if (f.promotionSeconds !== undefined) failoverSeconds.observe({ part: 'promotion' }, f.promotionSeconds);
    }
    if (report.standbysRebuilt > 0) standbyRebuilds.inc(report.standbysRebuilt);
    if (report.fencedStopped > 0) fencedStops.inc(report.fencedStopped);
    degraded.set(report.replicationDegraded);
  };
  for (const outcome of ['started', 'completed', 'failed']) failovers.inc({ outcome }, 0);

  // Start every labelled counter at 0, so the first failure after a restart is an
  // increase that rate()/increase() can see, not a series appearing from nowhere.
  for (const isolation of Isolation.options) {
    for (const status of ['succeeded', 'failed']) provisions.inc({ status, isolation }, 0);
    for (const to of Isolation.options) {
      if (to === isolation) continue;
      for (const status of ['done', 'rolled_back']) moves.inc({ from: isolation, to, status }, 0);
    }
  }

  return { registry, provisions, provisionDuration, lifecycleTransitions, probeFailures, moves, moveDuration, moveWritePause, recordSupervision };
}

export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;
