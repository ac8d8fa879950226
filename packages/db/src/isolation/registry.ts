import type { Isolation } from '@tenantry/domain';
import type { Transaction } from 'kysely';
import type { Db } from '../client.js';
import type { Database } from '../schema.js';
import { ClusterDriver, type ClusterDriverOptions } from './cluster/driver.js';
import { DatabaseDriver, type DatabaseDriverOptions } from './database/driver.js';
import {
  type DriverContext,
  type IsolationDriver,
  type NullableTenantColumn,
  type StoreProbe,
  type TenantRef,
  type TenantStore,
  UnsupportedIsolationError,
} from './driver.js';
import { SchemaDriver } from './schema/driver.js';

export interface IsolationOptions extends Omit<DriverContext, 'db'> {
  database?: DatabaseDriverOptions | undefined;
  cluster?: ClusterDriverOptions | undefined;
}

/**
 * Every isolation model and how to build its driver: the one place that maps a model to
 * code. Keyed by the domain's Isolation, so a model added there without a driver here
 * does not compile; a new model is a folder beside schema/, database/ and cluster/ and one
 * line here.
 */
const DRIVERS: { readonly [M in Isolation]: (context: DriverContext, options: IsolationOptions) => IsolationDriver } = {
  schema: (context) => new SchemaDriver(context),
  database: (context, options) => new DatabaseDriver(context, options.database),
  cluster: (context, options) => new ClusterDriver(context, options.cluster),
};

/** The models this build has drivers for (the isolation suite runs for each). */
export const ISOLATION_MODELS = Object.keys(DRIVERS) as Isolation[];

/**
 * The drivers of one process, built once at boot (api and worker alike), chosen per
 * tenant from its row's `isolation`. As a TenantStore it routes each request to the
 * tenant's driver.
 */
export class IsolationRegistry implements TenantStore {
  private readonly byModel = new Map<string, IsolationDriver>();

  constructor(db: Db, options: IsolationOptions) {
    const context: DriverContext = { db, controlPlaneUrl: options.controlPlaneUrl, secretKey: options.secretKey, pools: options.pools, warn: options.warn };
    for (const model of ISOLATION_MODELS) this.byModel.set(model, DRIVERS[model](context, options));
  }

  get drivers(): IsolationDriver[] {
    return [...this.byModel.values()];
  }

  /** The driver of `model`; a model this build does not know (a newer row) is refused. */
  driver(model: Isolation): IsolationDriver {
    const driver = this.byModel.get(model);
    if (!driver) throw new UnsupportedIsolationError(`no store driver for ${model} isolation`);
    return driver;
  }

  run<T>(tenant: TenantRef, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    return this.driver(tenant.isolation).open(tenant, fn);
  }

  health(tenant: TenantRef): Promise<StoreProbe> {
    return this.driver(tenant.isolation).health(tenant);
  }

  /** Why new tenants of `model` are refused here, or undefined (see IsolationDriver.unavailable). */
  unavailable(model: Isolation): string | undefined {
    return this.driver(model).unavailable();
  }

  /** Every column any model records a placement in: what a purge clears. */
  get placementColumns(): NullableTenantColumn[] {
    return [...new Set(this.drivers.flatMap((d) => d.placementColumns))];
  }

  /** Close what the drivers hold open (per-tenant pools). */
  async close(): Promise<void> {
    await Promise.all(this.drivers.map((d) => d.close()));
  }
}

export function createIsolationRegistry(db: Db, options: IsolationOptions): IsolationRegistry {
  return new IsolationRegistry(db, options);
}
