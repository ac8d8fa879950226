import { execFile } from 'node:child_process';
import { access, chown, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { tenantRoleName } from '@tenantry/domain';
import { sql } from 'kysely';
import type pg from 'pg';
import type { Db } from '../../client.js';
import { withClient } from '../../pg-faults.js';
import { withTenantLock } from '../../tenant-lock.js';
import { insertProvisioningTenant } from '../../tenants.js';
import type { ProvisioningTenant } from '../driver.js';
import { decryptSecret, encryptSecret, generateRolePassword } from '../shared/secrets.js';
import { TEMPLATE_DDL, ensureRole } from '../shared/tenant-database.js';
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
 * Every operation is idempotent and resumable: the placement is recorded first, initdb
 * runs into `<dir>.init` and is renamed into place only when complete, and start/stop
 * consult `pg_ctl status` first.
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
}

export interface ClusterPlacement {
  dataDir: string;
  port: number;
  role: string;
  rolePasswordEnc: Buffer;
  adminPasswordEnc: Buffer;
}

/** The tenant database inside a tenant's dedicated instance. */
export const CLUSTER_TENANT_DATABASE = 'tenant';

const CLUSTER_DIR = /^tc_[0-9a-f]{32}$/;
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

function assertClusterDir(dir: string): void {
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

/** The port a running instance listens on (line 4 of its postmaster.pid), if it runs. */
async function runningPort(dataDir: string): Promise<number | undefined> {
  const pid = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const port = Number(pid.split('\n')[3]);
  return Number.isInteger(port) && port > 0 ? port : undefined;
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
  const options = [`-p ${port}`, `-k ${dataDir}`, '-c listen_addresses=127.0.0.1', ...settings.map((s) => `-c ${s}`)].join(' ');
  return ['start', '-w', '-t', '60', '-D', dataDir, '-l', path.join(dataDir, 'server.log'), '-o', options];
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export class LocalClusterProvisioner implements ClusterRuntime {
  private owner: Promise<{ uid: number; gid: number } | undefined> | undefined;

  constructor(
    private readonly db: Db,
    private readonly options: LocalClusterOptions,
  ) {
    if (!path.isAbsolute(options.dataDir) || !SAFE_PATH.test(options.dataDir)) throw new Error(`TENANT_CLUSTER_DATA_DIR must be an absolute plain path: ${options.dataDir}`);
    for (const s of options.settings) if (!SETTING.test(s)) throw new Error(`not a server setting: ${JSON.stringify(s)}`);
  }

  unavailable(): undefined {
    return undefined;
  }

  dataDirOf(tenantId: string): string {
    return path.join(this.options.dataDir, tenantClusterDirName(tenantId));
  }

  /** Place, initdb, start and fill the tenant's instance; serialised per tenant like the saga. */
  async provision(tenant: ProvisioningTenant): Promise<ClusterPlacement> {
    return withTenantLock(this.db, tenant.id, async (conn) => {
      let placement = await this.place(conn, tenant);
      const key = this.requireKey();
      await this.ensureInitialised(placement.dataDir, decryptSecret(key, placement.adminPasswordEnc, tenant.id));
      placement = await this.ensureRunning(conn, tenant.id, placement);
      await this.ensureTenantObjects(tenant.id, placement);
      return placement;
    });
  }

  /**
   * Start the tenant's instance if its postmaster is not running (the health pass calls
   * this after a failed probe). True if it was started.
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
      if (!(await exists(path.join(row.cluster_data_dir, 'PG_VERSION')))) return false;
      if ((await this.status(row.cluster_data_dir)) === 'running') return false;
      await this.ensureRunning(conn, tenantId, {
        dataDir: row.cluster_data_dir,
        port: row.cluster_port,
        role: row.database_role!,
        rolePasswordEnc: row.database_password_enc!,
        adminPasswordEnc: row.cluster_admin_password_enc!,
      });
      return true;
    });
  }

  /** `running`, `stopped`, or `missing` (no data directory). */
  async status(dataDir: string): Promise<'running' | 'stopped' | 'missing'> {
    assertClusterDir(dataDir);
    if (!(await exists(path.join(dataDir, 'PG_VERSION')))) return 'missing';
    const { code } = await this.pg('pg_ctl', ['status', '-D', dataDir], dataDir);
    return code === 0 ? 'running' : 'stopped';
  }

  /**
   * Stop the instance (fast: connections are terminated) and remove its data directory.
   * Idempotent; without a recorded directory (the row is gone) the one its id names.
   */
  async drop(tenantId: string, dataDir: string | null): Promise<void> {
    const dirs = new Set([dataDir ?? this.dataDirOf(tenantId), this.dataDirOf(tenantId)]);
    for (const dir of dirs) {
      assertClusterDir(dir);
      if ((await this.status(dir)) === 'running') {
        const stopped = await this.pg('pg_ctl', ['stop', '-D', dir, '-m', 'fast', '-w', '-t', '60'], dir);
        if ((await this.status(dir)) === 'running') throw new Error(`could not stop the tenant cluster in ${dir}: ${stopped.stderr.trim()}`);
      }
      await rm(dir, { recursive: true, force: true });
      await rm(`${dir}.init`, { recursive: true, force: true });
      await rm(`${dir}.pw`, { force: true });
    }
  }

  /**
   * A move's target: where the tenant's instance goes (its directory, a free port, fresh
   * encrypted passwords). The move records it on its own row; nothing is made yet.
   */
  async placeMove(tenantId: string): Promise<ClusterPlacement> {
    const key = this.requireKey();
    return {
      dataDir: this.dataDirOf(tenantId),
      port: await freePort(),
      role: tenantRoleName(tenantId),
      rolePasswordEnc: encryptSecret(key, generateRolePassword(), tenantId),
      adminPasswordEnc: encryptSecret(key, generateRolePassword(), tenantId),
    };
  }

  /**
   * A move's target: initdb, start and fill the instance at `placement`, as `provision`
   * does but leaving the tenant row alone (it names the source until the switch). Answers
   * the port it really runs on, read from its postmaster.pid: after a crash it may have
   * been started on another one than the placement says.
   */
  async provisionAt(tenantId: string, placement: ClusterPlacement): Promise<ClusterPlacement> {
    return withTenantLock(this.db, tenantId, async (conn) => {
      const key = this.requireKey();
      await this.ensureInitialised(placement.dataDir, decryptSecret(key, placement.adminPasswordEnc, tenantId));
      const started = await this.ensureRunning(conn, tenantId, placement);
      const running = { ...started, port: (await runningPort(placement.dataDir)) ?? started.port };
      await this.ensureTenantObjects(tenantId, running);
      return running;
    });
  }

  private requireKey(): Buffer {
    if (!this.options.secretKey) throw new Error('cluster isolation needs TENANT_SECRET_KEY (32 bytes, base64) on the worker');
    return this.options.secretKey;
  }

  private async place(conn: Db, tenant: ProvisioningTenant): Promise<ClusterPlacement> {
    await insertProvisioningTenant(conn, tenant);
    const row = await conn
      .selectFrom('tenants')
      .select(['cluster_data_dir', 'cluster_port', 'database_role', 'database_password_enc', 'cluster_admin_password_enc'])
      .where('id', '=', tenant.id)
      .executeTakeFirstOrThrow();
    if (row.cluster_data_dir && row.cluster_port && row.database_role && row.database_password_enc && row.cluster_admin_password_enc) {
      return { dataDir: row.cluster_data_dir, port: row.cluster_port, role: row.database_role, rolePasswordEnc: row.database_password_enc, adminPasswordEnc: row.cluster_admin_password_enc };
    }
    const key = this.requireKey();
    const placement: ClusterPlacement = {
      dataDir: this.dataDirOf(tenant.id),
      port: await freePort(),
      role: tenantRoleName(tenant.id),
      rolePasswordEnc: encryptSecret(key, generateRolePassword(), tenant.id),
      adminPasswordEnc: encryptSecret(key, generateRolePassword(), tenant.id),
    };
    await conn
      .updateTable('tenants')
      .set({
        database_server: `127.0.0.1:${placement.port}`,
        database_name: CLUSTER_TENANT_DATABASE,
        database_role: placement.role,
        database_password_enc: placement.rolePasswordEnc,
        cluster_data_dir: placement.dataDir,
        cluster_port: placement.port,
        cluster_admin_password_enc: placement.adminPasswordEnc,
        updated_at: sql`now()`,
      })
      .where('id', '=', tenant.id)
      .execute();
    return placement;
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
    await rename(staging, dataDir);
  }

  /** Start the postmaster unless it runs; on another port if its own was taken meanwhile. */
  private async ensureRunning(conn: Db, tenantId: string, placement: ClusterPlacement): Promise<ClusterPlacement> {
    const { dataDir } = placement;
    if ((await this.status(dataDir)) === 'running') return placement;
    let port = placement.port;
    if (!(await portIsFree(port))) {
      port = await freePort();
      await conn
        .updateTable('tenants')
        .set({ cluster_port: port, database_server: `127.0.0.1:${port}`, updated_at: sql`now()` })
        .where('id', '=', tenantId)
        // A move's target instance is not on the tenant row yet (it still names the source).
        .where('isolation', '=', 'cluster')
        .execute();
    }
    const started = await this.pg('pg_ctl', pgCtlStartArgs(dataDir, port, this.options.settings), dataDir);
    if (started.code !== 0 || (await this.status(dataDir)) !== 'running') {
      throw new Error(`could not start the tenant cluster in ${dataDir}: ${(started.stderr || started.stdout).trim().slice(-500)}`);
    }
    return { ...placement, port };
  }

  /** Database `tenant`, the documents table, the tenant role and its grants: each idempotent. */
  private async ensureTenantObjects(tenantId: string, placement: ClusterPlacement): Promise<void> {
    const key = this.requireKey();
    const admin = { host: '127.0.0.1', port: placement.port, user: CLUSTER_SUPERUSER, password: decryptSecret(key, placement.adminPasswordEnc, tenantId) };
    const withAdmin = (database: string, fn: (client: pg.Client) => Promise<void>) =>
      withClient({ ...admin, database, connectionTimeoutMillis: 5_000, application_name: 'tenantry-provisioner' }, fn);
    const rolePassword = decryptSecret(key, placement.rolePasswordEnc, tenantId);
    await withAdmin('postgres', async (client) => {
      const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [CLUSTER_TENANT_DATABASE]);
      if (!rowCount) await client.query(`create database ${client.escapeIdentifier(CLUSTER_TENANT_DATABASE)}`);
      await ensureRole(client, placement.role, rolePassword);
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

  private async ensureParent(): Promise<void> {
    await mkdir(this.options.dataDir, { recursive: true, mode: 0o755 });
    await this.chownToOwner(this.options.dataDir);
  }

  private async chownToOwner(file: string): Promise<void> {
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
   * Run initdb/pg_ctl (as osUser when root); never throws on a non-zero exit. `dataDir`:
   * the instance it acts on, whose major version picks the binaries (unless configured).
   */
  private async pg(binary: 'initdb' | 'pg_ctl', args: string[], dataDir?: string): Promise<Run> {
    const version = dataDir ? (await readFile(path.join(dataDir, 'PG_VERSION'), 'utf8').catch(() => '')).trim() : '';
    const binDir = this.options.binDir || (await postgresBinDir(version || undefined));
    const bin = binDir ? path.join(binDir, binary) : binary;
    const asRoot = (await this.ownerIds()) !== undefined;
    const [file, argv] = asRoot ? ['runuser', ['-u', this.options.osUser, '--', bin, ...args]] : [bin, args];
    return new Promise((resolve, reject) => {
      // cwd: a directory the OS user can enter (initdb/pg_ctl complain about one they cannot).
      execFile(file, argv, { cwd: '/', timeout: 120_000, env: { ...process.env, LC_ALL: 'C.UTF-8' } }, (err, stdout, stderr) => {
        if (err && typeof (err as NodeJS.ErrnoException).code === 'string') return reject(err);
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
      });
    });
  }
}
