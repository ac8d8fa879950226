import { access, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { sql } from 'kysely';
import type pg from 'pg';
import { appendAudit } from '../../audit.js';
import type { Db } from '../../client.js';
import { withClient } from '../../pg-faults.js';
import type { FailoverStep } from '../../schema.js';
import { tryWithTenantLock } from '../../tenant-lock.js';
import type { StorageSupervision } from '../driver.js';
import {
  CLUSTER_REPLICATION_ROLE,
  type InstanceRecord,
  type LocalClusterProvisioner,
  freePort,
  instanceDataDir,
  instancesOf,
  standbyName,
  toInstance,
} from './local.js';

/**
 * Replication of local cluster tenants: standbys made and rebuilt, synchronous
 * replication kept honest, and failover — all run by the worker's watch (`supervise`),
 * every pass, for every cluster tenant, under the tenant's advisory lock (tried, not
 * waited for: a tenant another worker is busy with is skipped this pass).
 *
 * A failover is a recorded state machine (cluster_failovers.step):
 *   fencing → promoting → switching → rebuilding → done
 * Each step is idempotent, and the row says which one to run next, so a worker killed
 * midway leaves a failover the next pass (of any worker) resumes. The database refuses a
 * second open failover and a second active primary per tenant (unique partial indexes),
 * so two workers never promote twice.
 */
export interface ReplicationTimings {
  /** The primary must not answer for this long before a failover starts (default 10 s). */
  failoverAfterMs: number;
  /** A standby down this long loses its slot and is rebuilt (default 5 min); one whose directory is gone, at once. */
  standbyTimeoutMs: number;
  /**
   * A synchronous tenant whose standbys have all been down this long has the primary
   * commit alone (asynchronous, audited, alerted) until a standby streams again, rather
   * than block every write (default 10 s).
   */
  syncDegradeAfterMs: number;
  /** A fenced old primary's directory is kept this long for inspection, then removed (default 24 h). */
  fencedRetentionMs: number;
  /** Tenants watched at once. */
  concurrency: number;
}

export const DEFAULT_REPLICATION_TIMINGS: ReplicationTimings = {
  failoverAfterMs: 10_000,
  standbyTimeoutMs: 5 * 60_000,
  syncDegradeAfterMs: 10_000,
  fencedRetentionMs: 24 * 3_600_000,
  concurrency: 4,
};

interface ClusterTenant {
  id: string;
  adminPasswordEnc: Buffer;
  replicas: number;
  synchronous: boolean;
}

interface Observation {
  up: boolean;
  inRecovery: boolean;
  /** Bytes of WAL written (primary) or received (standby) since 0/0, as a decimal string. */
  position: bigint;
  error?: string;
}

interface ReplicationRow {
  application_name: string;
  state: string;
  sync_state: string;
  lag_bytes: string | null;
  lag_seconds: number | null;
}

interface SlotRow {
  slot_name: string;
  active: boolean;
  wal_status: string | null;
  retained: string | null;
}

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

const AUDIT_ACTOR = 'system:worker';

export function emptySupervision(): StorageSupervision {
  return {
    tenants: 0,
    failoversStarted: 0,
    failovers: [],
    standbysRebuilt: 0,
    fencedStopped: 0,
    replicationDegraded: 0,
    standbysMissing: 0,
    maxLagBytes: 0,
    maxLagSeconds: 0,
  };
}

async function admin<T>(p: LocalClusterProvisioner, tenant: ClusterTenant, port: number, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  return withClient(p.adminConfig(tenant.id, tenant.adminPasswordEnc, port), async (client) => {
    await client.query("set statement_timeout = '5s'");
    return fn(client);
  }, () => undefined);
}

async function observe(p: LocalClusterProvisioner, tenant: ClusterTenant, instance: InstanceRecord): Promise<Observation> {
  try {
    return await admin(p, tenant, instance.port, async (client) => {
      const { rows } = await client.query<{ in_recovery: boolean; position: string }>(`
        select pg_is_in_recovery() as in_recovery,
               pg_wal_lsn_diff(case when pg_is_in_recovery()
                                    then greatest(coalesce(pg_last_wal_receive_lsn(), '0/0'), coalesce(pg_last_wal_replay_lsn(), '0/0'))
                                    else pg_current_wal_lsn() end, '0/0')::bigint::text as position`);
      return { up: true, inRecovery: rows[0]!.in_recovery, position: BigInt(rows[0]!.position) };
    });
  } catch (err) {
    return { up: false, inRecovery: false, position: 0n, error: (err as Error).message.slice(0, 300) };
  }
}

async function tenantOf(db: Db, tenantId: string): Promise<(ClusterTenant & { status: string }) | undefined> {
  const row = await db
    .selectFrom('tenants')
    .select(['id', 'status', 'cluster_admin_password_enc', 'cluster_replicas', 'cluster_synchronous'])
    .where('id', '=', tenantId)
    .where('isolation', '=', 'cluster')
    .executeTakeFirst();
  if (!row || !row.cluster_admin_password_enc) return undefined;
  return { id: row.id, status: row.status, adminPasswordEnc: row.cluster_admin_password_enc, replicas: row.cluster_replicas ?? 0, synchronous: row.cluster_synchronous ?? false };
}

/**
 * One watch pass over every cluster tenant that has instances (active, suspended, pending
 * deletion: a tenant not served now still keeps its standby and fails over).
 */
export async function superviseClusters(p: LocalClusterProvisioner, timings: ReplicationTimings, warn: (message: string, fields?: Record<string, unknown>) => void): Promise<StorageSupervision> {
  const report = emptySupervision();
  const tenants = await p.db
    .selectFrom('tenants')
    .select('id')
    .where('isolation', '=', 'cluster')
    .where('status', 'in', ['active', 'suspended', 'pending_deletion'])
    .where(({ exists: has, selectFrom }) => has(selectFrom('cluster_instances').select('cluster_instances.id').whereRef('cluster_instances.tenant_id', '=', 'tenants.id')))
    .orderBy('seq')
    .execute();
  let next = 0;
  const lane = async () => {
    while (next < tenants.length) {
      const { id } = tenants[next++]!;
      try {
        const done = await tryWithTenantLock(p.db, id, (conn) => superviseTenant(p, conn, id, timings, report, warn));
        if (done !== undefined) report.tenants += 1;
      } catch (err) {
        warn('cluster watch failed for a tenant', { tenantId: id, err: (err as Error).message });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(timings.concurrency, tenants.length) }, lane));
  return report;
}

/** One tenant's pass: resume an open failover, or observe, heal and (if its primary is gone long enough) fail over. */
export async function superviseTenant(
  p: LocalClusterProvisioner,
  conn: Db,
  tenantId: string,
  timings: ReplicationTimings,
  report: StorageSupervision,
  warn: (message: string, fields?: Record<string, unknown>) => void,
): Promise<true> {
  const tenant = await tenantOf(conn, tenantId);
  if (!tenant || tenant.status === 'deleted') return true;
  const open = await conn.selectFrom('cluster_failovers').selectAll().where('tenant_id', '=', tenantId).where('step', 'not in', ['done', 'abandoned']).executeTakeFirst();
  if (open) {
    await runFailover(p, conn, tenant, open.id, report, warn);
    return true;
  }
  const instances = await instancesOf(conn, tenantId);
  await keepFenced(p, conn, tenant, instances, timings, report);
  const primary = instances.find((i) => i.role === 'primary' && i.state === 'active');
  if (!primary) return true;
  const seen = await observe(p, tenant, primary);
  if (seen.up && !seen.inRecovery) {
    await record(conn, primary.id, { observed_state: 'running', down_since: null, lag_bytes: null, lag_seconds: null, sync_state: null });
    await watchStandbys(p, conn, tenant, primary, instances, timings, report, warn);
    return true;
  }

  // The primary does not answer (or answers as a standby: not a primary we can route to).
  const downSince = primary.downSince ?? new Date();
  await record(conn, primary.id, { observed_state: seen.up ? 'in_recovery' : 'down', down_since: downSince, lag_bytes: null, lag_seconds: null, sync_state: null });
  const standbys = instances.filter((i) => i.role === 'standby' && i.state === 'active');
  // Nothing to fail over to: the health pass restarts an unreplicated tenant's primary.
  if (standbys.length === 0) return true;
  if (Date.now() - downSince.getTime() < timings.failoverAfterMs) return true;
  await startFailover(p, conn, tenant, primary, standbys, downSince, report, warn);
  return true;
}

async function record(
  conn: Db,
  instanceId: string,
  values: { observed_state: string; down_since: Date | null; lag_bytes: string | number | null; lag_seconds: number | null; sync_state: string | null },
): Promise<void> {
  await conn
    .updateTable('cluster_instances')
    .set({ ...values, observed_at: sql`now()`, updated_at: sql`now()` })
    .where('id', '=', instanceId)
    .execute();
}

/** A fenced old primary found running is stopped again; one past its retention is removed. */
async function keepFenced(p: LocalClusterProvisioner, conn: Db, tenant: ClusterTenant, instances: InstanceRecord[], timings: ReplicationTimings, report: StorageSupervision): Promise<void> {
  for (const fenced of instances.filter((i) => i.state === 'fenced')) {
    const status = await p.status(fenced.dataDir);
    if (status === 'running') {
      await p.stopInstance(fenced.dataDir, 'immediate');
      report.fencedStopped += 1;
    }
    const fencedAt = fenced.downSince?.getTime() ?? Date.now();
    if (Date.now() - fencedAt >= timings.fencedRetentionMs) {
      await removeInstanceFiles(p, fenced.dataDir);
      await conn.deleteFrom('cluster_instances').where('id', '=', fenced.id).execute();
      await appendAudit(conn, { actor: AUDIT_ACTOR, action: 'tenant.cluster_fenced_removed', tenantId: tenant.id, data: { generation: fenced.generation } });
    } else {
      await record(conn, fenced.id, { observed_state: 'fenced', down_since: fenced.downSince, lag_bytes: null, lag_seconds: null, sync_state: null });
    }
  }
}

async function removeInstanceFiles(p: LocalClusterProvisioner, dir: string): Promise<void> {
  await p.stopInstance(dir, 'immediate');
  await rm(dir, { recursive: true, force: true });
  await rm(`${dir}.init`, { recursive: true, force: true });
}

/**
 * With the primary up: what each standby is doing (from pg_stat_replication and its own
 * answer), restart one that is merely stopped, rebuild one that is gone or was down past
 * the bound (its slot dropped first, so the primary's WAL stays bounded), make the
 * standbys the tenant lacks, drop slots nobody owns, and set synchronous replication.
 */
async function watchStandbys(
  p: LocalClusterProvisioner,
  conn: Db,
  tenant: ClusterTenant,
  primary: InstanceRecord,
  instances: InstanceRecord[],
  timings: ReplicationTimings,
  report: StorageSupervision,
  warn: (message: string, fields?: Record<string, unknown>) => void,
): Promise<void> {
  const { replication, slots } = await admin(p, tenant, primary.port, async (client) => ({
    replication: (
      await client.query<ReplicationRow>(`
        select application_name, state, sync_state,
               pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint::text as lag_bytes,
               extract(epoch from replay_lag)::float8 as lag_seconds
        from pg_stat_replication`)
    ).rows,
    slots: (
      await client.query<SlotRow>(`
        select slot_name, active, wal_status, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text as retained
        from pg_replication_slots where slot_type = 'physical'`)
    ).rows,
  }));
  const now = Date.now();
  let healthy: InstanceRecord[] = [];
  let unhealthy: InstanceRecord[] = [];
  for (const standby of instances.filter((i) => i.role === 'standby')) {
    const name = standbyName(standby.generation);
    if (standby.state === 'creating') {
      // Left half-made by a worker that died: start again from scratch.
      await removeStandby(p, conn, tenant, primary, standby, 'left half-made');
      continue;
    }
    if (standby.state !== 'active') continue;
    const rep = replication.find((r) => r.application_name === name);
    const slot = slots.find((s) => s.slot_name === name);
    if (rep && (rep.state === 'streaming' || rep.state === 'catchup')) {
      const lagBytes = Number(rep.lag_bytes ?? 0);
      const lagSeconds = rep.lag_seconds ?? 0;
      report.maxLagBytes = Math.max(report.maxLagBytes, lagBytes);
      report.maxLagSeconds = Math.max(report.maxLagSeconds, lagSeconds);
      await record(conn, standby.id, { observed_state: rep.state, down_since: null, lag_bytes: rep.lag_bytes ?? 0, lag_seconds: lagSeconds, sync_state: rep.sync_state });
      if (rep.state === 'streaming') healthy.push({ ...standby, downSince: null });
      else unhealthy.push(standby);
      continue;
    }
    const status = await p.status(standby.dataDir);
    const downSince = standby.downSince ?? new Date();
    const lost = slot?.wal_status === 'lost' || (!slot && status !== 'missing');
    const retained = slot?.retained ?? null;
    if (status === 'missing' || lost || now - downSince.getTime() >= timings.standbyTimeoutMs) {
      await removeStandby(p, conn, tenant, primary, standby, status === 'missing' ? 'data directory gone' : lost ? 'slot lost' : 'down past the bound');
      report.standbysRebuilt += 1;
      continue;
    }
    await record(conn, standby.id, { observed_state: status === 'running' ? 'disconnected' : 'down', down_since: downSince, lag_bytes: retained, lag_seconds: null, sync_state: null });
    unhealthy.push({ ...standby, downSince });
    if (status === 'stopped') await p.startInstance(conn, tenant.id, standby).catch((err: Error) => warn('could not restart a tenant standby', { tenantId: tenant.id, err: err.message }));
  }

  // Slots of no standby (a rebuild that died between creating the slot and recording it) hold WAL for nobody.
  const owned = new Set((await instancesOf(conn, tenant.id)).filter((i) => i.role === 'standby').map((i) => standbyName(i.generation)));
  for (const slot of slots) {
    if (!owned.has(slot.slot_name) && !slot.active && slot.slot_name.startsWith('standby_')) {
      await admin(p, tenant, primary.port, (client) => client.query('select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1 and not active', [slot.slot_name]));
    }
  }

  const made = await ensureStandbys(p, conn, tenant.id, primary);
  if (made > 0) {
    const fresh = await instancesOf(conn, tenant.id);
    healthy = fresh.filter((i) => i.role === 'standby' && i.state === 'active' && !unhealthy.some((u) => u.id === i.id));
    unhealthy = unhealthy.filter((u) => fresh.some((i) => i.id === u.id));
  }
  report.standbysMissing += Math.max(0, tenant.replicas - healthy.length);
  const degraded = await applySynchronous(p, conn, tenant, primary, healthy, unhealthy, timings);
  if (degraded) report.replicationDegraded += 1;
}

/**
 * synchronous_standby_names on the primary: FIRST 1 of the standbys that stream, plus those
 * down for less than the degrade bound (commits wait for them that long); none when the
 * tenant is asynchronous, or when no standby qualifies — then the primary commits alone
 * (degraded) until one streams again. Set with ALTER SYSTEM + reload, never on the command
 * line, so it can change without a restart. Returns whether the tenant is degraded.
 */
async function applySynchronous(
  p: LocalClusterProvisioner,
  conn: Db,
  tenant: ClusterTenant,
  primary: InstanceRecord,
  streaming: InstanceRecord[],
  down: InstanceRecord[],
  timings: ReplicationTimings,
): Promise<boolean> {
  const candidates = tenant.synchronous
    ? [...streaming, ...down.filter((d) => d.downSince && Date.now() - d.downSince.getTime() < timings.syncDegradeAfterMs)].map((i) => standbyName(i.generation)).sort()
    : [];
  // FIRST 1: the first listed standby that streams is the synchronous one, the others stand by to take its place.
  const wanted = candidates.length > 0 ? `FIRST 1 (${candidates.join(', ')})` : '';
  const current = await admin(p, tenant, primary.port, async (client) => {
    const { rows } = await client.query<{ names: string }>('select current_setting($1) as names', ['synchronous_standby_names']);
    const names = rows[0]!.names;
    if (names !== wanted) {
      await client.query(`alter system set synchronous_standby_names = ${client.escapeLiteral(wanted)}`);
      await client.query('select pg_reload_conf()');
      await awaitSyncInEffect(client, candidates);
    }
    return names;
  });
  const degraded = tenant.synchronous && tenant.replicas > 0 && wanted === '';
  if (tenant.synchronous && (current === '') !== (wanted === '')) {
    await appendAudit(conn, {
      actor: AUDIT_ACTOR,
      action: wanted === '' ? 'tenant.cluster_replication_degraded' : 'tenant.cluster_replication_synchronous',
      tenantId: tenant.id,
      data: { synchronousStandbys: candidates },
    });
  }
  return degraded;
}

/**
 * pg_reload_conf only signals: each walsender takes the new synchronous_standby_names when it
 * next handles the signal, and until then commits still wait (or do not wait) as before. Wait,
 * briefly, until the walsenders report the new setting, so that what is audited and what
 * provisioning or a failover then call done is what Postgres does. A standby that is not
 * streaming cannot turn `sync`; past the bound the next watch pass sees what holds.
 */
async function awaitSyncInEffect(client: pg.Client, synchronousStandbys: readonly string[], timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await client.query<{ streaming: number; sync: number; other_sync: number }>(
      `select count(*) filter (where state = 'streaming' and application_name = any($1))::int as streaming,
              count(*) filter (where sync_state in ('sync', 'quorum') and application_name = any($1))::int as sync,
              count(*) filter (where sync_state in ('sync', 'quorum') and not application_name = any($1))::int as other_sync
         from pg_stat_replication`,
      [synchronousStandbys],
    );
    const { streaming, sync, other_sync: otherSync } = rows[0]!;
    // In effect: no standby outside the list is waited for, and one of the list is, unless none of it streams.
    if (otherSync === 0 && (sync > 0 || streaming === 0)) return;
    if (Date.now() >= deadline) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Make standbys until the tenant has `cluster_replicas` active ones; returns how many were made. */
export async function ensureStandbys(p: LocalClusterProvisioner, conn: Db, tenantId: string, primary: InstanceRecord): Promise<number> {
  const tenant = await tenantOf(conn, tenantId);
  if (!tenant) return 0;
  let made = 0;
  for (;;) {
    const instances = await instancesOf(conn, tenantId);
    const standbys = instances.filter((i) => i.role === 'standby' && i.state !== 'fenced');
    const halfMade = standbys.find((s) => s.state === 'creating');
    if (halfMade) {
      await removeStandby(p, conn, tenant, primary, halfMade, 'left half-made');
      continue;
    }
    if (standbys.length >= tenant.replicas) break;
    const { cluster_last_generation: generation } = await conn
      .updateTable('tenants')
      .set({ cluster_last_generation: sql<number>`greatest(cluster_last_generation, ${Math.max(...instances.map((i) => i.generation))}) + 1` })
      .where('id', '=', tenantId)
      .returning('cluster_last_generation')
      .executeTakeFirstOrThrow();
    await createStandby(p, conn, tenant, primary, generation);
    made += 1;
  }
  if (made > 0) {
    // Provisioning and rebuilds: the new standby streams now, so commits may wait for it.
    const standbys = (await instancesOf(conn, tenantId)).filter((i) => i.role === 'standby' && i.state === 'active');
    await applySynchronous(p, conn, tenant, primary, standbys, [], DEFAULT_REPLICATION_TIMINGS);
  }
  return made;
}

/** The conninfo a standby streams from its primary with: the primary's socket, peer authentication, no password. */
function primaryConninfo(primary: InstanceRecord, generation: number): string {
  return `host=${primary.dataDir} port=${primary.port} user=${CLUSTER_REPLICATION_ROLE} application_name=${standbyName(generation)}`;
}

/**
 * A new standby of `primary`: its row first (state creating), its slot on the primary,
 * pg_basebackup -R into `<dir>.init` renamed into place when complete, started, and
 * recorded active once it streams. A crash anywhere leaves a `creating` row the next pass
 * removes and starts over.
 */
async function createStandby(p: LocalClusterProvisioner, conn: Db, tenant: ClusterTenant, primary: InstanceRecord, generation: number): Promise<void> {
  const base = p.dataDirOf(tenant.id);
  const dir = instanceDataDir(base, generation);
  const name = standbyName(generation);
  const inserted = await conn
    .insertInto('cluster_instances')
    .values({ tenant_id: tenant.id, generation, role: 'standby', state: 'creating', port: await freePort(), data_dir: dir, slot_name: name })
    .returning(['id', 'generation', 'role', 'state', 'port', 'data_dir', 'slot_name', 'down_since'])
    .executeTakeFirstOrThrow();
  const standby = toInstance(inserted);
  await admin(p, tenant, primary.port, (client) =>
    client.query('select pg_create_physical_replication_slot($1) where not exists (select 1 from pg_replication_slots where slot_name = $1)', [name]),
  );
  const staging = `${dir}.init`;
  await rm(staging, { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
  await p.ensureParent();
  const backup = await p.pg('pg_basebackup', ['-D', staging, '-d', primaryConninfo(primary, generation), '-X', 'stream', '-S', name, '-R', '-c', 'fast', '-w', '--no-sync'], primary.dataDir);
  if (backup.code !== 0) throw new Error(`pg_basebackup failed: ${backup.stderr.trim().slice(-500)}`);
  await rename(staging, dir);
  await p.startInstance(conn, tenant.id, standby);
  await waitStreaming(p, tenant, primary, name);
  await conn.updateTable('cluster_instances').set({ state: 'active', observed_state: 'streaming', observed_at: sql`now()`, updated_at: sql`now()` }).where('id', '=', standby.id).execute();
  await appendAudit(conn, { actor: AUDIT_ACTOR, action: 'tenant.cluster_standby_created', tenantId: tenant.id, data: { generation, primaryGeneration: primary.generation } });
}

async function waitStreaming(p: LocalClusterProvisioner, tenant: ClusterTenant, primary: InstanceRecord, name: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const state = await admin(p, tenant, primary.port, async (client) => {
      const { rows } = await client.query<{ state: string }>('select state from pg_stat_replication where application_name = $1', [name]);
      return rows[0]?.state;
    });
    if (state === 'streaming') return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`the new standby ${name} did not start streaming within ${timeoutMs} ms`);
}

/** Stop a standby, remove its directory, drop its slot on the primary, forget it. */
async function removeStandby(p: LocalClusterProvisioner, conn: Db, tenant: ClusterTenant, primary: InstanceRecord, standby: InstanceRecord, why: string): Promise<void> {
  await removeInstanceFiles(p, standby.dataDir);
  const slot = standby.slotName ?? standbyName(standby.generation);
  await admin(p, tenant, primary.port, async (client) => {
    await client.query('select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active_pid is not null', [slot]);
    await client.query('select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1 and not active', [slot]);
  }).catch(() => undefined);
  await conn.deleteFrom('cluster_instances').where('id', '=', standby.id).execute();
  await appendAudit(conn, { actor: AUDIT_ACTOR, action: 'tenant.cluster_standby_removed', tenantId: tenant.id, data: { generation: standby.generation, reason: why } });
}

/** Pick the most advanced standby that answers, record the failover, and run it. */
async function startFailover(
  p: LocalClusterProvisioner,
  conn: Db,
  tenant: ClusterTenant,
  primary: InstanceRecord,
  standbys: InstanceRecord[],
  downSince: Date,
  report: StorageSupervision,
  warn: (message: string, fields?: Record<string, unknown>) => void,
): Promise<void> {
  let best: { standby: InstanceRecord; position: bigint } | undefined;
  for (const standby of standbys) {
    const seen = await observe(p, tenant, standby);
    if (seen.up && seen.inRecovery && (!best || seen.position > best.position)) best = { standby, position: seen.position };
  }
  if (!best) {
    warn('a tenant primary is down and no standby answers: nothing to fail over to yet', { tenantId: tenant.id });
    return;
  }
  const row = await conn
    .insertInto('cluster_failovers')
    .values({ tenant_id: tenant.id, step: 'fencing', old_instance_id: primary.id, new_instance_id: best.standby.id, detected_at: downSince })
    .returning('id')
    .executeTakeFirstOrThrow();
  report.failoversStarted += 1;
  warn('tenant primary down: failing over', { tenantId: tenant.id, from: primary.generation, to: best.standby.generation, downForMs: Date.now() - downSince.getTime() });
  await runFailover(p, conn, tenant, row.id, report, warn);
}

async function setStep(conn: Db, failoverId: string, step: FailoverStep, extra: { promoted_at?: Date; switched_at?: Date; finished_at?: Date; last_error?: string | null } = {}): Promise<void> {
  await conn.updateTable('cluster_failovers').set({ step, ...extra }).where('id', '=', failoverId).execute();
}

/** Run a recorded failover from the step it is at to the end. */
async function runFailover(p: LocalClusterProvisioner, conn: Db, tenant: ClusterTenant, failoverId: string, report: StorageSupervision, warn: (message: string, fields?: Record<string, unknown>) => void): Promise<void> {
  const load = () => conn.selectFrom('cluster_failovers').selectAll().where('id', '=', failoverId).executeTakeFirstOrThrow();
  let failover = await load();
  const byId = async (id: string | null) => {
    const row = id ? await conn.selectFrom('cluster_instances').select(['id', 'generation', 'role', 'state', 'port', 'data_dir', 'slot_name', 'down_since']).where('id', '=', id).executeTakeFirst() : undefined;
    return row ? toInstance(row) : undefined;
  };
  const target = await byId(failover.new_instance_id);
  if (!target) {
    // The standby chosen is gone (removed by an operator): give this failover up; the next pass starts a new one.
    await setStep(conn, failoverId, 'abandoned', { finished_at: new Date(), last_error: 'the standby chosen for promotion no longer exists' });
    report.failovers.push({ outcome: 'failed' });
    return;
  }
  try {
    if (failover.step === 'fencing') {
      const old = await byId(failover.old_instance_id);
      if (old) await fence(p, conn, old);
      await setStep(conn, failoverId, 'promoting');
      failover = await load();
    }
    if (failover.step === 'promoting') {
      await promote(p, tenant, target);
      await setStep(conn, failoverId, 'switching', { promoted_at: new Date() });
      failover = await load();
    }
    if (failover.step === 'switching') {
      await switchRouting(conn, tenant.id, failover.id, failover.old_instance_id, target);
      failover = await load();
    }
    if (failover.step === 'rebuilding') {
      const primary = { ...target, role: 'primary' as const, state: 'active' as const, slotName: null, downSince: null };
      await repointStandbys(p, conn, tenant, primary);
      const made = await ensureStandbys(p, conn, tenant.id, primary);
      if (made === 0) {
        // Resumed after the standby was made (a worker died before recording done): promote()
        // left the primary committing alone, so make its standby synchronous here, before done.
        const standbys = (await instancesOf(conn, tenant.id)).filter((i) => i.role === 'standby' && i.state === 'active');
        await applySynchronous(p, conn, tenant, primary, standbys, [], DEFAULT_REPLICATION_TIMINGS);
      }
      await setStep(conn, failoverId, 'done', { finished_at: new Date(), last_error: null });
      failover = await load();
      const detected = new Date(failover.detected_at).getTime();
      const started = new Date(failover.started_at).getTime();
      const switched = failover.switched_at ? new Date(failover.switched_at).getTime() : started;
      report.failovers.push({ outcome: 'completed', detectionSeconds: (started - detected) / 1000, promotionSeconds: (switched - started) / 1000 });
    }
  } catch (err) {
    // Recorded, and retried from this step on the next pass.
    await conn.updateTable('cluster_failovers').set({ last_error: (err as Error).message.slice(0, 500) }).where('id', '=', failoverId).execute();
    warn('a tenant failover step failed; the next pass resumes it', { tenantId: tenant.id, step: failover.step, err: (err as Error).message });
    throw err;
  }
}

/**
 * Fence the old primary: stop it, and make sure it can never serve writes again if it is
 * started by anyone — standby.signal makes it come up read-only (in recovery, following
 * nothing), and its pg_hba.conf then admits only its superuser over its own socket, so the
 * tenant's role cannot even connect. Recorded as fenced: the worker never starts it, and
 * stops it if it finds it running. Its directory stays for inspection (the bound
 * `fencedRetentionMs`); a disk that is gone is fenced by definition.
 */
async function fence(p: LocalClusterProvisioner, conn: Db, old: InstanceRecord): Promise<void> {
  if (await exists(path.join(old.dataDir, 'PG_VERSION'))) {
    await p.stopInstance(old.dataDir, 'immediate');
    await writeFile(path.join(old.dataDir, 'standby.signal'), '');
    await writeFile(
      path.join(old.dataDir, 'pg_hba.conf'),
      `# Fenced by Tenantry at ${new Date().toISOString()}: this was the primary before a failover.\n# It must not serve the tenant again; it starts read-only and admits only its superuser locally.\nlocal all postgres scram-sha-256\n`,
    );
    await p.chownToOwner(path.join(old.dataDir, 'standby.signal'));
    await p.chownToOwner(path.join(old.dataDir, 'pg_hba.conf'));
  }
  await conn
    .updateTable('cluster_instances')
    .set({ state: 'fenced', down_since: sql`coalesce(down_since, now())`, observed_state: 'fenced', observed_at: sql`now()`, updated_at: sql`now()` })
    .where('id', '=', old.id)
    .execute();
}

/**
 * Promote the chosen standby (pg_promote, waiting for it), then let it commit alone
 * until its own standby streams: it inherited the old primary's synchronous_standby_names,
 * which names itself, and would otherwise block every write.
 */
async function promote(p: LocalClusterProvisioner, tenant: ClusterTenant, target: InstanceRecord): Promise<void> {
  await admin(p, tenant, target.port, async (client) => {
    const { rows } = await client.query<{ in_recovery: boolean }>('select pg_is_in_recovery() as in_recovery');
    if (rows[0]!.in_recovery) {
      const promoted = await client.query<{ ok: boolean }>('select pg_promote(true, 60) as ok');
      if (!promoted.rows[0]!.ok) throw new Error('pg_promote did not finish within 60 s');
    }
    await client.query("alter system set synchronous_standby_names = ''");
    await client.query('alter system reset primary_conninfo');
    await client.query('alter system reset primary_slot_name');
    await client.query('select pg_reload_conf()');
  });
}

/**
 * The routing switch, in one control-plane transaction: the promoted standby becomes the
 * primary on its row and on the tenant's row (what every api instance routes by), the
 * failover moves on, and the audit entry commits with it.
 */
async function switchRouting(conn: Db, tenantId: string, failoverId: string, oldId: string | null, target: InstanceRecord): Promise<void> {
  await conn.transaction().execute(async (trx) => {
    await trx.updateTable('cluster_instances').set({ role: 'primary', slot_name: null, down_since: null, observed_state: 'running', lag_bytes: null, lag_seconds: null, sync_state: null, updated_at: sql`now()` }).where('id', '=', target.id).execute();
    await trx
      .updateTable('tenants')
      // A new placement generation: no process reuses a pool opened for the old primary.
      .set({ database_server: `127.0.0.1:${target.port}`, cluster_port: target.port, cluster_data_dir: target.dataDir, placement_generation: sql`placement_generation + 1`, updated_at: sql`now()` })
      .where('id', '=', tenantId)
      .where('isolation', '=', 'cluster')
      .execute();
    const row = await trx
      .updateTable('cluster_failovers')
      .set({ step: 'rebuilding', switched_at: sql`now()` })
      .where('id', '=', failoverId)
      .returning(['detected_at', 'started_at'])
      .executeTakeFirstOrThrow();
    const old = oldId ? await trx.selectFrom('cluster_instances').select('generation').where('id', '=', oldId).executeTakeFirst() : undefined;
    await appendAudit(trx, {
      actor: AUDIT_ACTOR,
      action: 'tenant.cluster_failover',
      tenantId,
      data: { fromGeneration: old?.generation ?? null, toGeneration: target.generation, primaryDownSince: new Date(row.detected_at).toISOString(), failoverStartedAt: new Date(row.started_at).toISOString() },
    });
  });
}

/** Other standbys (replicas > 1) follow the new primary: their slot on it, then primary_conninfo and reload. */
async function repointStandbys(p: LocalClusterProvisioner, conn: Db, tenant: ClusterTenant, primary: InstanceRecord): Promise<void> {
  const standbys = (await instancesOf(conn, tenant.id)).filter((i) => i.role === 'standby' && i.state === 'active' && i.id !== primary.id);
  for (const standby of standbys) {
    const name = standbyName(standby.generation);
    await admin(p, tenant, primary.port, (client) =>
      client.query('select pg_create_physical_replication_slot($1) where not exists (select 1 from pg_replication_slots where slot_name = $1)', [name]),
    );
    await admin(p, tenant, standby.port, async (client) => {
      await client.query(`alter system set primary_conninfo = ${client.escapeLiteral(primaryConninfo(primary, standby.generation))}`);
      await client.query(`alter system set primary_slot_name = ${client.escapeLiteral(name)}`);
      await client.query('select pg_reload_conf()');
    }).catch(() => undefined); // a standby that cannot be reached is rebuilt by the watch
  }
}
