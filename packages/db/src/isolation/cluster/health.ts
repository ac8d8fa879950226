import type { Db } from '../../client.js';

/** One postmaster of a cluster tenant, as the health route shows it. */
export interface ClusterInstanceHealth {
  generation: number;
  role: 'primary' | 'standby';
  /**
   * What the worker's watch last saw: running (a primary that answers), streaming or
   * catchup (a standby replicating), disconnected (up, not replicating), down, in_recovery
   * (a primary that answers read-only); creating while it is built; fenced for an old
   * primary kept after a failover.
   */
  state: string;
  synchronous: boolean | null;
  lagBytes: number | null;
  lagSeconds: number | null;
  downSince: string | null;
  observedAt: string | null;
}

export interface ClusterFailoverHealth {
  step: string;
  fromGeneration: number | null;
  toGeneration: number | null;
  primaryDownSince: string;
  startedAt: string;
  promotedAt: string | null;
  switchedAt: string | null;
  finishedAt: string | null;
  /** From the primary first seen down to the failover starting, and from there to the routing switch. */
  detectionSeconds: number;
  promotionSeconds: number | null;
  lastError: string | null;
}

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

/**
 * A cluster tenant's instances and its last failover, as recorded by the worker's watch
 * (every TENANT_CLUSTER_WATCH_INTERVAL_MS): the api reads the control plane, it never
 * connects to a tenant instance as its superuser. Read from one table each, so an instance
 * and its state never come from two different passes.
 */
export async function clusterReplicationHealth(db: Db, tenantId: string): Promise<{ instances: ClusterInstanceHealth[]; lastFailover: ClusterFailoverHealth | null }> {
  const [rows, failover] = await Promise.all([
    db.selectFrom('cluster_instances').selectAll().where('tenant_id', '=', tenantId).orderBy('generation').execute(),
    db.selectFrom('cluster_failovers').selectAll().where('tenant_id', '=', tenantId).orderBy('started_at', 'desc').limit(1).executeTakeFirst(),
  ]);
  const generationOf = (id: string | null) => rows.find((r) => r.id === id)?.generation ?? null;
  return {
    instances: rows.map((r) => ({
      generation: r.generation,
      role: r.role,
      state: r.state === 'active' ? (r.observed_state ?? 'unknown') : r.state,
      synchronous: r.role === 'standby' && r.state === 'active' && r.sync_state ? r.sync_state === 'sync' || r.sync_state === 'quorum' : null,
      lagBytes: r.role === 'standby' && r.lag_bytes !== null ? Number(r.lag_bytes) : null,
      lagSeconds: r.role === 'standby' ? r.lag_seconds : null,
      downSince: iso(r.state === 'fenced' ? null : r.down_since),
      observedAt: iso(r.observed_at),
    })),
    lastFailover: failover
      ? {
          step: failover.step,
          fromGeneration: generationOf(failover.old_instance_id),
          toGeneration: generationOf(failover.new_instance_id),
          primaryDownSince: iso(failover.detected_at)!,
          startedAt: iso(failover.started_at)!,
          promotedAt: iso(failover.promoted_at),
          switchedAt: iso(failover.switched_at),
          finishedAt: iso(failover.finished_at),
          detectionSeconds: (new Date(failover.started_at).getTime() - new Date(failover.detected_at).getTime()) / 1000,
          promotionSeconds: failover.switched_at ? (new Date(failover.switched_at).getTime() - new Date(failover.started_at).getTime()) / 1000 : null,
          lastError: failover.last_error,
        }
      : null,
  };
}
