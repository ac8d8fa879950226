import { execFile } from 'node:child_process';
import { access, chown, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PLAN_CATALOG, type PlanId, tenantRoleName } from '@tenantry/domain';
import { sql } from 'kysely';
import type pg from 'pg';
import type { Db } from '../../client.js';
import type { Tenant as TenantsTableRow } from '../../schema.js';
import { withClient } from '../../pg-faults.js';
import { withTenantLock } from '../../tenant-lock.js';
import { insertProvisioningTenant } from '../../tenants.js';
import type { IsolationLog, ProvisioningTenant, StorageSupervision } from '../driver.js';
import { decryptSecret, encryptSecret, generateRolePassword, scramSha256Verifier } from '../shared/secrets.js';
import { TEMPLATE_DDL, ensureRole } from '../shared/tenant-database.js';
import { DEFAULT_REPLICATION_TIMINGS, type ReplicationTimings, ensureStandbys, superviseClusters } from './replication.js';
import type { ClusterRuntime } from './runtime.js';

/**
 * Cluster isolation, driver `local`: a dedicated Postgres instance per tenant, a real
 * separate postmaster on 127.0.0.1, its data directory `<dataDir>/tc_<32 hex>`.
 *
 * - initdb (as the OS user owning Postgres when we are root) with SCRAM for every
 *   connection and a generated superuser password, stored AES-256-GCM-encrypted.
 * - Inside it, database `tenant` (owned by that superuser) with the documents table of
 *   every tenant store (RLS enabled, forced), and the tenant's login role `tr_<32 hex>`
 *   with DML on documents only (no TRUNCATE), its password stored encrypted too.
 * - Placement reuses database_server (`127.0.0.1:<port>`), database_name (`tenant`),
 *   database_role and database_password_enc; plus cluster_data_dir/port/admin password.
 *
 * - Replicated (replication.ts): besides that primary, `replicas` streaming standbys, each
 *   its own postmaster in `<dir>_<generation>`, made with pg_basebackup -R from the primary
 *   as the replication role `tenantry_replicator` (its password stored encrypted too; the
 *   standbys stream over the primary's Unix socket with peer authentication, so no
 *   password is ever written into a data directory). Every instance is a row of
 *   cluster_instances; the tenants row names the primary, which requests route to.
 *
 * Every operation is idempotent and resumable: the placement is recorded first, initdb
 * and pg_basebackup run into `<dir>.init` and are renamed into place only when complete,
 * and start/stop consult `pg_ctl status` first.
 */
export interface LocalClusterOptions {
  /** Parent of the tenants' data directories (created if missing). */
  dataDir: string;
  /**
   * Directory of initdb/pg_ctl. Empty: chosen per call by `postgresBinDir` — each
   * instance's own major version, the newest installed for new ones, else PATH.
   */
  binDir: string;
  /** When this process is root: the OS user the instances run as (initdb refuses root). */
  osUser: string;
  /** Extra server settings (`name=value`), passed as `-c` at every start. */
  settings: string[];
  /** TENANT_SECRET_KEY: needed to provision (drop and status work without it). */
  secretKey?: Buffer | undefined;
  /** Standbys per cluster tenant (TENANT_CLUSTER_REPLICAS, default 1); a plan's `clusterReplicas` may raise it. */
  replicas?: number | undefined;
  /** Commits wait for a standby (TENANT_CLUSTER_SYNCHRONOUS, default true). */
  synchronous?: boolean | undefined;
  /** The most WAL a replication slot may hold back (max_slot_wal_keep_size, default 1GB). */
  maxSlotWalKeepSize?: string | undefined;
  /** The watch's bounds (replication.ts), each defaulted. */
  timings?: Partial<ReplicationTimings> | undefined;
  /** Where the watch reports failovers and what it could not heal. */
  warn?: IsolationLog | undefined;
}

/** The role standbys replicate as, inside every tenant instance. */
export const CLUSTER_REPLICATION_ROLE = 'tenantry_replicator';

/** One postmaster of a cluster tenant, as recorded in cluster_instances. */
export interface InstanceRecord {
  id: string;
  generation: number;
  role: 'primary' | 'standby';
  state: 'creating' | 'active' | 'fenced';
  port: number;
  dataDir: string;
  slotName: string | null;
  downSince: Date | null;
}

export interface ClusterPlacement {
  /** The primary's data directory and port. */
  dataDir: string;
  port: number;
  role: string;
  rolePasswordEnc: Buffer;
  adminPasswordEnc: Buffer;
  /** The password of the replication role (standbys themselves authenticate by peer). */
  replicationPasswordEnc: Buffer;
  /** How many standbys the watch keeps streaming, and whether commits wait for one. */
  replicas: number;
  synchronous: boolean;
}

/** The tenant-row columns a cluster placement is kept in (the cluster driver's placement columns). */
export const CLUSTER_PLACEMENT_COLUMNS = [
  'database_server',
  'database_name',
  'database_role',
  'database_password_enc',
  'cluster_data_dir',
  'cluster_port',
  'cluster_admin_password_enc',
  'cluster_replication_password_enc',
  'cluster_replicas',
  'cluster_synchronous',
] as const;

type ClusterColumns = { [K in (typeof CLUSTER_PLACEMENT_COLUMNS)[number]]?: TenantsTableRow[K] | null };

/** A placement as the tenant row (or a move's stored placement) holds it. */
export function clusterColumnsOf(placement: ClusterPlacement) {
  return {
    database_server: `127.0.0.1:${placement.port}`,
    database_name: CLUSTER_TENANT_DATABASE,
    database_role: placement.role,
    database_password_enc: placement.rolePasswordEnc,
    cluster_data_dir: placement.dataDir,
    cluster_port: placement.port,
    cluster_admin_password_enc: placement.adminPasswordEnc,
    cluster_replication_password_enc: placement.replicationPasswordEnc,
    cluster_replicas: placement.replicas,
    cluster_synchronous: placement.synchronous,
  } satisfies ClusterColumns;
}

/** The placement those columns hold, or undefined while any part is missing. */
export function clusterPlacementOf(columns: ClusterColumns): ClusterPlacement | undefined {
  const { cluster_data_dir: dataDir, cluster_port: port, database_role: role, database_password_enc: rolePasswordEnc } = columns;
  const { cluster_admin_password_enc: adminPasswordEnc, cluster_replication_password_enc: replicationPasswordEnc, cluster_replicas: replicas, cluster_synchronous: synchronous } = columns;
  if (!dataDir || !port || !role || !rolePasswordEnc || !adminPasswordEnc || !replicationPasswordEnc || replicas == null || synchronous == null) return undefined;
  return { dataDir, port, role, rolePasswordEnc, adminPasswordEnc, replicationPasswordEnc, replicas, synchronous };
}

/** The tenant database inside a tenant's dedicated instance. */
export const CLUSTER_TENANT_DATABASE = 'tenant';

/** `tc_<tenant hex>` (the first primary) or `tc_<tenant hex>_<generation>` (every instance made after it). */
const CLUSTER_DIR = /^tc_[0-9a-f]{32}(_[1-9][0-9]{0,5})?$/;
/** What may appear in a path handed to pg_ctl's -o (it goes through a shell). */
const SAFE_PATH = /^[A-Za-z0-9_./-]+$/;
const SETTING = /^[a-z_][a-z0-9_.]*=[A-Za-z0-9_.:/-]+$/;
/** The superuser inside each tenant instance. */
export const CLUSTER_SUPERUSER = 'postgres';

export function tenantClusterDirName(tenantId: string): string {
  const name = `tc_${tenantId.replaceAll('-', '').toLowerCase()}`;
  if (!CLUSTER_DIR.test(name)) throw new Error(`not a tenant id: ${JSON.stringify(tenantId)}`);
  return name;
}

/** The data directory of a tenant's instance of `generation` (0: the first primary, as before replicas). */
export function instanceDataDir(base: string, generation: number): string {
  return generation === 0 ? base : `${base}_${generation}`;
}

/** The standby's application_name and its slot on the primary. */
export function standbyName(generation: number): string {
  return `standby_${generation}`;
}

export function assertClusterDir(dir: string): void {
  if (!path.isAbsolute(dir) || !CLUSTER_DIR.test(path.basename(dir)) || !SAFE_PATH.test(dir)) {
    throw new Error(`not a tenant cluster directory: ${JSON.stringify(dir)}`);
  }
}

/** A TCP port nothing listens on right now (the kernel's pick). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

/** Debian's and Ubuntu's layout: one `<root>/<major>/bin` per installed Postgres version. */
export const VERSIONED_PG_ROOT = '/usr/lib/postgresql';

/**
 * Where initdb/pg_ctl are for an instance of major version `dataDirVersion` (its
 * PG_VERSION; undefined for a new instance): that version's bin directory under `root` if
 * installed — a data directory can only be run by its own major version, so installing a
 * newer Postgres must not switch existing tenants to it — else the newest installed, else
 * '' (PATH).
 */
export async function postgresBinDir(dataDirVersion: string | undefined, root = VERSIONED_PG_ROOT): Promise<string> {
  const entries = await readdir(root).catch(() => [] as string[]);
  const installed: string[] = [];
  for (const entry of entries) {
    if (/^\d+(\.\d+)?$/.test(entry) && (await exists(path.join(root, entry, 'bin', 'initdb')))) installed.push(entry);
  }
  if (dataDirVersion && installed.includes(dataDirVersion)) return path.join(root, dataDirVersion, 'bin');
  const newest = installed.sort((a, b) => Number(b) - Number(a))[0];
  return newest ? path.join(root, newest, 'bin') : '';
}

/** initdb's arguments for a tenant instance: SCRAM for every connection, the superuser's password from a file. */
export function initdbArgs(dataDir: string, pwfile: string): string[] {
  return ['-D', dataDir, '-U', CLUSTER_SUPERUSER, `--pwfile=${pwfile}`, '--auth-host=scram-sha-256', '--auth-local=scram-sha-256', '--encoding=UTF8', '--no-instructions'];
}

/** `pg_ctl start` of a tenant instance: on 127.0.0.1:`port` only, its socket in its own directory, with `settings`. */
export function pgCtlStartArgs(dataDir: string, port: number, settings: readonly string[]): string[] {
  for (const s of settings) if (!SETTING.test(s)) throw new Error(`not a server setting: ${JSON.stringify(s)}`);
  const options = [`-p ${port}`, `-k ${dataDir}`, '-c listen_addresses=127.0.0.1', ...settings.map((s) => `-c ${s}`)].join(' ');
  return ['start', '-w', '-t', '60', '-D', dataDir, '-l', path.join(dataDir, 'server.log'), '-o', options];
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const instanceColumns = ['id', 'generation', 'role', 'state', 'port', 'data_dir', 'slot_name', 'down_since'] as const;

export function toInstance(row: { id: string; generation: number; role: 'primary' | 'standby'; state: 'creating' | 'active' | 'fenced'; port: number; data_dir: string; slot_name: string | null; down_since: Date | null }): InstanceRecord {
  return { id: row.id, generation: row.generation, role: row.role, state: row.state, port: row.port, dataDir: row.data_dir, slotName: row.slot_name, downSince: row.down_since };
}

/** The tenant's instances, oldest first. */
export async function instancesOf(db: Db, tenantId: string): Promise<InstanceRecord[]> {
  const rows = await db.selectFrom('cluster_instances').select(instanceColumns).where('tenant_id', '=', tenantId).orderBy('generation').execute();
  return rows.map(toInstance);
}

export class LocalClusterProvisioner implements ClusterRuntime {
  private owner: Promise<{ uid: number; gid: number } | undefined> | undefined;

  constructor(
    readonly db: Db,
    readonly options: LocalClusterOptions,
  ) {
    if (!path.isAbsolute(options.dataDir) || !SAFE_PATH.test(options.dataDir)) throw new Error(`TENANT_CLUSTER_DATA_DIR must be an absolute plain path: ${options.dataDir}`);
    for (const s of options.settings) if (!SETTING.test(s)) throw new Error(`not a server setting: ${JSON.stringify(s)}`);
    if (options.maxSlotWalKeepSize !== undefined && !/^[0-9]+(kB|MB|GB|TB)?$/.test(options.maxSlotWalKeepSize)) throw new Error(`not a WAL size: ${options.maxSlotWalKeepSize}`);
  }

  unavailable(): undefined {
    return undefined;
  }

  dataDirOf(tenantId: string): string {
    return path.join(this.options.dataDir, tenantClusterDirName(tenantId));
  }

  /** Standbys a new tenant of `plan` gets: the installation's default, or more if its plan says so. */
  replicasFor(plan: string): number {
    const planReplicas = PLAN_CATALOG[plan as PlanId]?.clusterReplicas ?? 0;
    return Math.max(this.options.replicas ?? 1, planReplicas);
  }

  /**
   * Every instance starts with these: the configured settings, and the bound on the WAL a
   * replication slot may hold back (a standby that falls further behind loses its slot and
   * is rebuilt, rather than filling the primary's disk).
   */
  get serverSettings(): string[] {
    return [...this.options.settings, `max_slot_wal_keep_size=${this.options.maxSlotWalKeepSize ?? '1GB'}`];
  }

  /**
   * Place, initdb, start and fill the tenant's primary, then make its standbys;
   * serialised per tenant like the saga. The tenant is not active before its standbys
   * stream: a new cluster tenant is replicated from its first write.
   */
  async provision(tenant: ProvisioningTenant): Promise<ClusterPlacement> {
    return withTenantLock(this.db, tenant.id, async (conn) => {
      let placement = await this.place(conn, tenant);
      const key = this.requireKey();
      const primary = await this.ensurePrimaryRecord(conn, tenant.id, placement);
      await this.ensureInitialised(placement.dataDir, decryptSecret(key, placement.adminPasswordEnc, tenant.id));
      placement = await this.ensureRunning(conn, tenant.id, placement);
      await this.ensureTenantObjects(tenant.id, placement);
      await ensureStandbys(this, conn, tenant.id, { ...primary, port: placement.port });
      return placement;
    });
  }

  /**
   * Start the tenant's instances whose postmaster is not running (the health pass calls
   * this after a failed probe): its standbys, and its primary when it has no standby to
   * fail over to. A replicated tenant's primary that is down is the watch's business
   * (replication.ts): it fails over after TENANT_CLUSTER_FAILOVER_AFTER_MS rather than
   * restart an instance whose disk may be gone. Fenced instances are never started. True
   * if one was started.
   */
  async restartIfDown(tenantId: string): Promise<boolean> {
    return withTenantLock(this.db, tenantId, async (conn) => {
      const row = await conn
        .selectFrom('tenants')
        .select(['status', 'cluster_data_dir', 'cluster_port', 'database_role', 'database_password_enc', 'cluster_admin_password_enc'])
        .where('id', '=', tenantId)
        .where('isolation', '=', 'cluster')
        .executeTakeFirst();
      if (!row || !row.cluster_data_dir || !row.cluster_port || row.status === 'deleted') return false;
      const instances = (await instancesOf(conn, tenantId)).filter((i) => i.state === 'active');
      const hasStandby = instances.some((i) => i.role === 'standby');
      let started = false;
      for (const instance of instances) {
        if (instance.role === 'primary' && hasStandby) continue;
        if (!(await exists(path.join(instance.dataDir, 'PG_VERSION')))) continue;
        if ((await this.status(instance.dataDir)) === 'running') continue;
        await this.startInstance(conn, tenantId, instance);
        started = true;
      }
      return started;
    });
  }

  /** One watch pass over every replicated tenant: standbys kept streaming, failover when a primary is gone. */
  supervise(): Promise<StorageSupervision> {
    return superviseClusters(this, { ...DEFAULT_REPLICATION_TIMINGS, ...this.options.timings }, this.options.warn ?? (() => undefined));
  }

  /** `running`, `stopped`, or `missing` (no data directory). */
  async status(dataDir: string): Promise<'running' | 'stopped' | 'missing'> {
    assertClusterDir(dataDir);
    if (!(await exists(path.join(dataDir, 'PG_VERSION')))) return 'missing';
    const { code } = await this.pg('pg_ctl', ['status', '-D', dataDir], dataDir);
    return code === 0 ? 'running' : 'stopped';
  }

  /**
   * Stop every instance of the tenant (fast: connections are terminated) and remove its
   * data directories: the primary, every standby, fenced old primaries, and anything
   * half-made (`.init`, `.pw`). Idempotent. Found by name under the data directory as
   * well as from the rows, so an instance whose row is gone (a worker killed between
   * making and recording it) is removed too.
   */
  async drop(tenantId: string, dataDir: string | null): Promise<void> {
    const base = this.dataDirOf(tenantId);
    const recorded = await this.db.selectFrom('cluster_instances').select('data_dir').where('tenant_id', '=', tenantId).execute();
    const entries = await readdir(this.options.dataDir).catch(() => [] as string[]);
    const named = entries.filter((e) => e === path.basename(base) || e.startsWith(`${path.basename(base)}_`) || e.startsWith(`${path.basename(base)}.`)).map((e) => path.join(this.options.dataDir, e));
    const dirs = new Set([dataDir ?? base, base, ...recorded.map((r) => r.data_dir), ...named.map((d) => d.replace(/\.(init|pw)$/, ''))]);
    for (const dir of dirs) {
      assertClusterDir(dir);
      await this.stopInstance(dir, 'fast');
      await rm(dir, { recursive: true, force: true });
      await rm(`${dir}.init`, { recursive: true, force: true });
      await rm(`${dir}.pw`, { force: true });
    }
  }

  /**
   * A move's target: where the tenant's primary goes (its directory, a free port, fresh
   * encrypted passwords) and how it is replicated (the tenant's plan). The move records it
   * on its own row; nothing is made yet.
   */
  async placeMove(tenantId: string): Promise<ClusterPlacement> {
    const { plan } = await this.db.selectFrom('tenants').select('plan').where('id', '=', tenantId).executeTakeFirstOrThrow();
    return this.newPlacement(tenantId, plan);
  }

  /**
   * A move's target: initdb, start and fill the primary at `placement`, as `provision`
   * does but leaving the tenant row alone (it names the source until the switch). Its
   * standbys are not made here: the watch only looks after tenants whose row says
   * cluster, so it makes them on its first pass after the switch (docs/isolation-models.md
   * says what that window means). Answers the port it really runs on: after a crash it may
   * have been started on another one than the placement says (startInstance records it).
   */
  async provisionAt(tenantId: string, placement: ClusterPlacement): Promise<ClusterPlacement> {
    return withTenantLock(this.db, tenantId, async (conn) => {
      const key = this.requireKey();
      await this.ensurePrimaryRecord(conn, tenantId, placement);
      await this.ensureInitialised(placement.dataDir, decryptSecret(key, placement.adminPasswordEnc, tenantId));
      const running = await this.ensureRunning(conn, tenantId, placement);
      await this.ensureTenantObjects(tenantId, running);
      return running;
    });
  }

  /** Stop the postmaster in `dir` if it runs (idempotent); throws if it is still running after. */
  async stopInstance(dir: string, mode: 'fast' | 'immediate'): Promise<void> {
    assertClusterDir(dir);
    if ((await this.status(dir)) !== 'running') return;
    const stopped = await this.pg('pg_ctl', ['stop', '-D', dir, '-m', mode, '-w', '-t', '60'], dir);
    if ((await this.status(dir)) === 'running') throw new Error(`could not stop the tenant cluster in ${dir}: ${stopped.stderr.trim()}`);
  }

  /** Start the instance unless it runs; on another port if its own was taken meanwhile (recorded, on the tenant row too for the primary). */
  async startInstance(conn: Db, tenantId: string, instance: InstanceRecord): Promise<number> {
    const { dataDir } = instance;
    if ((await this.status(dataDir)) === 'running') return instance.port;
    let port = instance.port;
    if (!(await portIsFree(port))) {
      port = await freePort();
      await conn.updateTable('cluster_instances').set({ port, updated_at: sql`now()` }).where('id', '=', instance.id).execute();
      if (instance.role === 'primary' && instance.state === 'active') {
        await conn
          .updateTable('tenants')
          .set({ cluster_port: port, database_server: `127.0.0.1:${port}`, updated_at: sql`now()` })
          .where('id', '=', tenantId)
          // A move's target primary is not on the tenant row yet (it still names the source).
          .where('isolation', '=', 'cluster')
          .execute();
      }
    }
    const started = await this.pg('pg_ctl', pgCtlStartArgs(dataDir, port, this.serverSettings), dataDir);
    if (started.code !== 0 || (await this.status(dataDir)) !== 'running') {
      throw new Error(`could not start the tenant cluster in ${dataDir}: ${(started.stderr || started.stdout).trim().slice(-500)}`);
    }
    return port;
  }

  /** A connection to one of the tenant's instances as its superuser. */
  adminConfig(tenantId: string, adminPasswordEnc: Buffer, port: number, database = 'postgres'): pg.ClientConfig {
    return {
      host: '127.0.0.1',
      port,
      user: CLUSTER_SUPERUSER,
      password: decryptSecret(this.requireKey(), adminPasswordEnc, tenantId),
      database,
      connectionTimeoutMillis: 2_000,
      application_name: 'tenantry-cluster-watch',
    };
  }

  requireKey(): Buffer {
    if (!this.options.secretKey) throw new Error('cluster isolation needs TENANT_SECRET_KEY (32 bytes, base64) on the worker');
    return this.options.secretKey;
  }

  /** Where a new primary of the tenant goes (nothing made yet): its directory, a free port, fresh encrypted passwords, and its replication by plan. */
  private async newPlacement(tenantId: string, plan: string): Promise<ClusterPlacement> {
    const key = this.requireKey();
    return {
      dataDir: this.dataDirOf(tenantId),
      port: await freePort(),
      role: tenantRoleName(tenantId),
      rolePasswordEnc: encryptSecret(key, generateRolePassword(), tenantId),
      adminPasswordEnc: encryptSecret(key, generateRolePassword(), tenantId),
      replicationPasswordEnc: encryptSecret(key, generateRolePassword(), tenantId),
      replicas: this.replicasFor(plan),
      synchronous: this.options.synchronous ?? true,
    };
  }

  private async place(conn: Db, tenant: ProvisioningTenant): Promise<ClusterPlacement> {
    await insertProvisioningTenant(conn, tenant);
    const row = await conn.selectFrom('tenants').select(CLUSTER_PLACEMENT_COLUMNS).where('id', '=', tenant.id).executeTakeFirstOrThrow();
    const recorded = clusterPlacementOf(row);
    if (recorded) return recorded;
    const placement = await this.newPlacement(tenant.id, tenant.plan);
    await conn
      .updateTable('tenants')
      .set({ ...clusterColumnsOf(placement), updated_at: sql`now()` })
      .where('id', '=', tenant.id)
      .execute();
    return placement;
  }

  /** The primary's row in cluster_instances (generation 0, the placement's directory and port). */
  private async ensurePrimaryRecord(conn: Db, tenantId: string, placement: ClusterPlacement): Promise<InstanceRecord> {
    await conn
      .insertInto('cluster_instances')
      .values({ tenant_id: tenantId, generation: 0, role: 'primary', state: 'active', port: placement.port, data_dir: placement.dataDir })
      .onConflict((oc) => oc.columns(['tenant_id', 'generation']).doNothing())
      .execute();
    const primary = (await instancesOf(conn, tenantId)).find((i) => i.role === 'primary' && i.state === 'active');
    if (!primary) throw new Error('the tenant cluster has no primary recorded');
    return primary;
  }

  /** initdb into `<dir>.init`, renamed into place when complete: a crash leaves nothing half-made at `<dir>`. */
  private async ensureInitialised(dataDir: string, adminPassword: string): Promise<void> {
    assertClusterDir(dataDir);
    if (await exists(path.join(dataDir, 'PG_VERSION'))) return;
    await this.ensureParent();
    const staging = `${dataDir}.init`;
    const pwfile = `${dataDir}.pw`;
    await rm(staging, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
    await writeFile(pwfile, adminPassword, { mode: 0o600 });
    try {
      await this.chownToOwner(pwfile);
      const result = await this.pg('initdb', initdbArgs(staging, pwfile));
      if (result.code !== 0) throw new Error(`initdb failed: ${result.stderr.trim().slice(-500)}`);
    } finally {
      await rm(pwfile, { force: true });
    }
    await this.allowPeerReplication(staging);
    await rename(staging, dataDir);
  }

  /**
   * Standbys stream over the primary's Unix socket as the replication role, authenticated
   * by the OS user the instances run as (peer, mapped in pg_ident.conf): no password in
   * any standby's primary_conninfo. Every other connection keeps SCRAM. pg_basebackup
   * copies both files, so a promoted standby accepts its own standbys the same way.
   */
  private async allowPeerReplication(dataDir: string): Promise<void> {
    const osUser = (await this.ownerIds()) ? this.options.osUser : os.userInfo().username;
    if (!/^[A-Za-z0-9_.-]+$/.test(osUser)) throw new Error(`not a plain OS user name: ${osUser}`);
    const hba = await readFile(path.join(dataDir, 'pg_hba.conf'), 'utf8');
    await writeFile(path.join(dataDir, 'pg_hba.conf'), `local replication ${CLUSTER_REPLICATION_ROLE} peer map=tenantry\n${hba}`);
    const ident = await readFile(path.join(dataDir, 'pg_ident.conf'), 'utf8').catch(() => '');
    await writeFile(path.join(dataDir, 'pg_ident.conf'), `${ident}\ntenantry ${osUser} ${CLUSTER_REPLICATION_ROLE}\n`);
  }

  /** Start the primary unless it runs; on another port if its own was taken meanwhile. */
  private async ensureRunning(conn: Db, tenantId: string, placement: ClusterPlacement): Promise<ClusterPlacement> {
    const primary = (await instancesOf(conn, tenantId)).find((i) => i.role === 'primary' && i.state === 'active');
    if (!primary) throw new Error('the tenant cluster has no primary recorded');
    const port = await this.startInstance(conn, tenantId, primary);
    return { ...placement, port };
  }

  /** Database `tenant`, the documents table, the tenant role and its grants, the replication role: each idempotent. */
  private async ensureTenantObjects(tenantId: string, placement: ClusterPlacement): Promise<void> {
    const key = this.requireKey();
    const withAdmin = (database: string, fn: (client: pg.Client) => Promise<void>) =>
      withClient({ ...this.adminConfig(tenantId, placement.adminPasswordEnc, placement.port, database), connectionTimeoutMillis: 5_000, application_name: 'tenantry-provisioner' }, fn);
    const rolePassword = decryptSecret(key, placement.rolePasswordEnc, tenantId);
    const replicationPassword = decryptSecret(key, placement.replicationPasswordEnc, tenantId);
    await withAdmin('postgres', async (client) => {
      const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [CLUSTER_TENANT_DATABASE]);
      if (!rowCount) await client.query(`create database ${client.escapeIdentifier(CLUSTER_TENANT_DATABASE)}`);
      await ensureRole(client, placement.role, rolePassword);
      await ensureReplicationRole(client, replicationPassword);
      const role = client.escapeIdentifier(placement.role);
      const tenantDb = client.escapeIdentifier(CLUSTER_TENANT_DATABASE);
      // The role reaches its database only; not postgres nor the templates.
      await client.query(`revoke all on database postgres, template1 from public`);
      await client.query(`revoke all on database ${tenantDb} from public; grant connect on database ${tenantDb} to ${role}`);
    });
    await withAdmin(CLUSTER_TENANT_DATABASE, async (client) => {
      await client.query(TEMPLATE_DDL);
      const role = client.escapeIdentifier(placement.role);
      await client.query(`grant usage on schema public to ${role}; grant select, insert, update, delete on documents to ${role}`);
    });
  }

  async ensureParent(): Promise<void> {
    await mkdir(this.options.dataDir, { recursive: true, mode: 0o755 });
    await this.chownToOwner(this.options.dataDir);
  }

  async chownToOwner(file: string): Promise<void> {
    const owner = await this.ownerIds();
    if (owner) await chown(file, owner.uid, owner.gid);
  }

  /** uid/gid of osUser when we are root (we then run Postgres as them); else none. */
  private ownerIds(): Promise<{ uid: number; gid: number } | undefined> {
    this.owner ??= (async () => {
      if (process.getuid?.() !== 0) return undefined;
      const id = (flag: string) =>
        new Promise<number>((resolve, reject) =>
          execFile('id', [flag, this.options.osUser], (err, stdout) => (err ? reject(new Error(`no OS user ${this.options.osUser} to run tenant clusters as`)) : resolve(Number(stdout.trim())))),
        );
      return { uid: await id('-u'), gid: await id('-g') };
    })();
    return this.owner;
  }

  /**
   * Run initdb/pg_ctl/pg_basebackup (as osUser when root); never throws on a non-zero
   * exit. `dataDir`: the instance it acts on, whose major version picks the binaries
   * (unless configured).
   */
  async pg(binary: 'initdb' | 'pg_ctl' | 'pg_basebackup', args: string[], dataDir?: string): Promise<Run> {
    const version = dataDir ? (await readFile(path.join(dataDir, 'PG_VERSION'), 'utf8').catch(() => '')).trim() : '';
    const binDir = this.options.binDir || (await postgresBinDir(version || undefined));
    const bin = binDir ? path.join(binDir, binary) : binary;
    const asRoot = (await this.ownerIds()) !== undefined;
    const [file, argv] = asRoot ? ['runuser', ['-u', this.options.osUser, '--', bin, ...args]] : [bin, args];
    return new Promise((resolve, reject) => {
      // cwd: a directory the OS user can enter (initdb/pg_ctl complain about one they cannot).
      execFile(file, argv, { cwd: '/', timeout: 300_000, env: { ...process.env, LC_ALL: 'C.UTF-8' } }, (err, stdout, stderr) => {
        if (err && typeof (err as NodeJS.ErrnoException).code === 'string') return reject(err);
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
      });
    });
  }
}

/** The replication role: login + replication only, its password as a SCRAM verifier. */
async function ensureReplicationRole(client: pg.Client, password: string): Promise<void> {
  const role = client.escapeIdentifier(CLUSTER_REPLICATION_ROLE);
  const attributes = `login replication nosuperuser nocreatedb nocreaterole noinherit nobypassrls password ${client.escapeLiteral(scramSha256Verifier(password))}`;
  const { rowCount } = await client.query('select 1 from pg_roles where rolname = $1', [CLUSTER_REPLICATION_ROLE]);
  await client.query(rowCount ? `alter role ${role} with ${attributes}` : `create role ${role} with ${attributes}`);
}
