import type { Isolation } from '@tenantry/domain';
import type { Transaction, UpdateType } from 'kysely';
import type { Db } from '../client.js';
import type { Database, Tenant, TenantsTable } from '../schema.js';
import type { Placement } from './placement.js';
import type { StorageMeasure } from './shared/storage.js';

/** A tenant as requests and probes name it: enough for its driver to find its data. */
export interface TenantRef {
  id: string;
  isolation: Isolation;
  schemaName: string | null;
  /**
   * The tenant row's placement_generation when the ref was read: a per-tenant pool opened
   * for an older placement (before a move) is not used for it.
   */
  placementGeneration: number;
}

/**
 * Where a tenant's data lives, behind one interface: `run` gives `fn` a transaction that
 * sees that tenant's tables — and only its rows — whatever the isolation model.
 */
export interface TenantStore {
  run<T>(tenant: TenantRef, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T>;
}

export class UnsupportedIsolationError extends Error {}

/** A tenant whose storage is being made: enough to write its row if nothing has yet. */
export interface ProvisioningTenant {
  id: string;
  name: string;
  plan: string;
  isolation: Isolation;
}

/**
 * A tenant whose storage is being removed: its id always; its row unless it was never
 * written (a signup that failed early) or is already gone. Without a placement a driver
 * removes what the id alone names.
 */
export interface TeardownTarget {
  id: string;
  row: Tenant | undefined;
}

export interface StoreProbe {
  ok: boolean;
  latencyMs: number;
  error?: string;
}

/** A tenants column that may be cleared (set to null). */
export type NullableTenantColumn = { [K in keyof TenantsTable]-?: null extends UpdateType<TenantsTable[K]> ? K : never }[keyof TenantsTable];

/** Where drivers report what operators should see: a lost connection, an instance restarted. */
export type IsolationLog = (message: string, fields?: Record<string, unknown>) => void;

/**
 * What one supervision pass (IsolationDriver.supervise) saw and did, for the worker's
 * metrics and logs: counts and maxima only, never a tenant id.
 */
export interface StorageSupervision {
  /** Tenants looked at (those another worker was busy with are skipped). */
  tenants: number;
  failoversStarted: number;
  /** Failovers that ended in this pass, with how long noticing and promoting took. */
  failovers: Array<{ outcome: 'completed' | 'failed'; detectionSeconds?: number; promotionSeconds?: number }>;
  /** Standbys removed to be rebuilt (gone, or down past the bound). */
  standbysRebuilt: number;
  /** Fenced old primaries found running and stopped again. */
  fencedStopped: number;
  /** Tenants that want synchronous replication but commit alone now (no standby streams). */
  replicationDegraded: number;
  /** Standbys wanted but not streaming, over all tenants. */
  standbysMissing: number;
  maxLagBytes: number;
  maxLagSeconds: number;
}

/** Per-tenant connection pools (database and cluster tenants): a bounded LRU. */
export interface TenantPoolOptions {
  /** Most per-tenant pools kept open; the least recently used beyond it is closed. */
  maxPools: number;
  /** Connections per tenant pool. */
  connectionsPerPool: number;
  /** An idle connection of a tenant pool is closed after this long (default 10 s). */
  idleTimeoutMillis?: number;
  /** application_name of the tenant connections (tells the api's from the worker's probes). */
  applicationName: string;
}

/**
 * A tenant's store at a given placement, for a move: transactions as the tenant's own role
 * (exactly what requests get through `open`), at a placement that need not be the tenant
 * row's (the target before the switch). Close it when done.
 */
export interface AttachedStore {
  run<T>(fn: (trx: Transaction<Database>) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** The tenant's writes could not be paused at its store in time (in-flight writes did not finish). */
export class FreezeTimeoutError extends Error {}

/** What every driver is built with (each model's own options come on top, see registry.ts). */
export interface DriverContext {
  /** The control-plane database: tenant rows, placements, the tenant lock. */
  db: Db;
  /** Its URL: database tenants default to its server, and tenant roles are kept out of it. */
  controlPlaneUrl: string;
  /** TENANT_SECRET_KEY: encrypts and opens tenant credentials. Without it, models that need credentials are unavailable. */
  secretKey: Buffer | undefined;
  pools: TenantPoolOptions;
  warn: IsolationLog;
}

/**
 * One isolation model, whole: how a tenant's storage is made, removed, reached at request
 * time and checked. The registry (registry.ts) picks the driver from the tenant row's
 * `isolation`; nothing else looks at the model. Each driver lives in a folder of its own
 * (schema/, database/, cluster/).
 *
 * A driver records where it put a tenant (its placement) on the tenant row, in the columns
 * it lists in `placementColumns`, and reads it back from there; so everything but
 * `provision` works from the row alone, in any process that has the driver.
 *
 * Online moves between models use the members under "Moves": the target driver chooses a
 * placement (`placeMove`) that the move keeps on its own row — database and cluster share
 * the database_* columns, so the target's cannot sit on the tenant row beside the
 * source's — and makes the storage there (`provisionAt`) while the source still serves;
 * the worker copies rows between the two through `attach` (as the tenant's own role, the
 * same path requests take) until they agree, `freeze`s the source (writes refused, reads
 * go on), copies the last changes, verifies row counts and checksums, switches the tenant
 * row to the target in one control-plane transaction and finally `dropAt`s the source. A
 * move that fails before the switch `thaw`s the source and drops the target. See
 * apps/worker/src/moves/.
 */
export interface IsolationDriver {
  readonly model: Isolation;

  /** The tenant-row columns holding this model's placement; purging a tenant clears them. */
  readonly placementColumns: readonly NullableTenantColumn[];

  /**
   * Why this installation cannot take new tenants of this model (a missing key, a variant
   * that does not provision), or undefined when it can. The api asks before it accepts a
   * tenant; `provision` refuses with the same reason.
   */
  unavailable(): string | undefined;

  /**
   * Make the tenant's storage and record its placement on the tenant row (writing the row
   * first if the saga has not yet). Runs outside any control-plane transaction — storage
   * on another server or in another process cannot join one — under the tenant's advisory
   * lock. Idempotent and resumable: after a crash anywhere, running it again finishes the
   * job with the placement already recorded.
   */
  provision(tenant: ProvisioningTenant): Promise<void>;

  /**
   * For storage in the control-plane database only (schema): what `provision` does, inside
   * `trx`, where the tenant row is written and the tenant's lock held. The saga then makes
   * the storage in its own transaction: the tenant's rows and its storage commit together,
   * or neither does, in one commit instead of two.
   */
  provisionIn?(trx: Transaction<Database>, tenant: ProvisioningTenant): Promise<void>;

  /**
   * Remove the tenant's storage, inside `trx`: the control-plane transaction that then
   * deletes the rows recording it, under the tenant's lock. Storage in the control-plane
   * database is dropped in `trx` and rolls back with it; storage elsewhere is removed at
   * once and idempotently, so a rollback leaves the placement for the next try to find.
   */
  drop(trx: Transaction<Database>, tenant: TeardownTarget): Promise<void>;

  /**
   * Request time: run `fn` in a transaction that sees exactly this tenant's data, as a
   * role that cannot see anyone else's (row-level security keyed on app.tenant_id too).
   */
  open<T>(tenant: TenantRef, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T>;

  /**
   * The worker's health pass, per active tenant: a real query through `open`, the way
   * requests reach the data. A driver that can heal what it finds (a stopped instance)
   * does so, then probes again.
   */
  health(tenant: TenantRef): Promise<StoreProbe>;

  /**
   * The storageBytes of each tenant (see shared/storage.ts: on-disk size minus space marked
   * reusable, from catalogs and free space maps, never rows). Tenants in `vacuumFirst` (at
   * or over their limit) get a plain VACUUM first, so rows they deleted count as freed now.
   * A tenant that cannot be measured (its instance down) is left out of the answer.
   */
  measureStorage(tenants: readonly TenantRef[], vacuumFirst: ReadonlySet<string>): Promise<Map<string, StorageMeasure>>;

  /**
   * For tenants not served right now (suspended, pending deletion): keep their storage
   * ready, so unsuspending or restoring gives access back at once. True if something had
   * to be started. Absent when there is nothing to keep running.
   */
  readonly keepReady?: ((tenantId: string) => Promise<boolean>) | undefined;

  /**
   * A frequent pass (every TENANT_CLUSTER_WATCH_INTERVAL_MS) over the tenants whose
   * storage this process looks after beyond probing: replicated clusters' standbys and
   * failover. Absent when there is nothing to supervise.
   */
  readonly supervise?: (() => Promise<StorageSupervision>) | undefined;

  /** Release what the driver holds open (per-tenant pools). */
  close(): Promise<void>;

  // ---- Moves ------------------------------------------------------------------------

  /**
   * Choose where a move to this model puts the tenant (a server, a port, fresh encrypted
   * passwords), without making anything yet: the move records it on its row first, so a
   * retry makes the same storage. Refuses like `provision` when the model is unavailable.
   */
  placeMove(tenantId: string): Promise<Placement>;

  /**
   * Make (or finish making) the tenant's storage at `placement`, empty and ready for its
   * rows; idempotent and resumable like `provision`. Never touches the tenant row. Answers
   * the placement as it now is (an instance restarted on another port).
   */
  provisionAt(tenantId: string, placement: Placement): Promise<Placement>;

  /** The tenant's store at `placement`, as its own role (see AttachedStore). */
  attach(tenantId: string, placement: Placement): Promise<AttachedStore>;

  /**
   * Stop the tenant's writes at `placement` for good — its role keeps SELECT and loses
   * INSERT, UPDATE and DELETE — once the writes already running there have committed
   * (waited for up to `timeoutMs`, else FreezeTimeoutError and nothing changed). Reads are
   * never blocked. Enforced by privileges, not a session setting a client could undo.
   * Idempotent.
   */
  freeze(tenantId: string, placement: Placement, timeoutMs: number): Promise<void>;

  /** Give the tenant's role its writes back at `placement` (a move rolled back). Idempotent. */
  thaw(tenantId: string, placement: Placement): Promise<void>;

  /**
   * Remove the tenant's storage at `placement` — the source once a move is done, the
   * target when one is rolled back — in the placement's own terms (never the tenant row's).
   * Idempotent.
   */
  dropAt(tenantId: string, placement: Placement): Promise<void>;
}

/** A driver's `open` as a TenantStore (what probes and the documents service take). */
export function storeOf(driver: Pick<IsolationDriver, 'open'>): TenantStore {
  return { run: (tenant, fn) => driver.open(tenant, fn) };
}
