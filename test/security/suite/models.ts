import { CLUSTER_SUPERUSER, DATA_ROLE, ISOLATION_MODELS, type Tenant, decryptSecret, parseSecretKey } from '@tenantry/db';
import type { Isolation } from '@tenantry/domain';
import pg from 'pg';
import { TENANT_SECRET_KEY } from '../../support/apps.js';
import { databaseUrl } from '../../support/env.js';
import { destroyClusterRoot, makeClusterRoot } from '../../support/tenant-clusters.js';
import { dropTenantDatabasesOf } from '../../support/tenant-databases.js';

/**
 * What the isolation suite needs to know about each isolation model that the api does not
 * tell it: how to set up and clean up after its tenants, and how to look at a tenant's
 * store from outside (as a superuser, who sees every row whatever the policies say).
 */
export interface SuiteModel {
  /** The cheapest plan that allows the model (and API keys, which the corpus needs). */
  plan: string;
  provisionTimeoutMs: number;
  /** Worker env for the file's stack, and what to remove after it (called with the file's control-plane database name). */
  environment(): { workerEnv: Record<string, string>; cleanup(controlPlaneDatabase: string | undefined): Promise<unknown> | void };
  /** A superuser connection to where the tenant's rows live (`controlPlaneUrl`: the file's own database). */
  connectToStore(row: Tenant, controlPlaneUrl: string): Promise<pg.Client>;
  /** The schemas that hold the tenant's tables in that store. */
  namespaces(client: pg.Client, row: Tenant): Promise<string[]>;
  /** The role the tenant's requests must run as. */
  dataRole(tenantId: string): string;
  /**
   * Tenants of this model get a database and a login role of their own: the SQLSTATEs
   * Postgres may answer when B's role tries to connect to A's database.
   */
  ownDatabase?: { foreignRoleRefused: string[] };
}

const key = () => parseSecretKey(TENANT_SECRET_KEY);
const tenantRole = (tenantId: string) => `tr_${tenantId.replaceAll('-', '')}`;

async function connected(config: pg.ClientConfig): Promise<pg.Client> {
  const client = new pg.Client(config);
  await client.connect();
  return client;
}

/** Every non-system schema of a tenant's own database. */
async function userSchemas(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ nspname: string }>(`select nspname from pg_namespace where nspname not like 'pg\\_%' and nspname <> 'information_schema'`);
  return rows.map((r) => r.nspname);
}

/** Keyed by the domain's models: a model added there without an entry here does not compile. */
export const SUITE_MODELS: { [M in Isolation]: SuiteModel } = {
  schema: {
    plan: 'pro',
    provisionTimeoutMs: 20_000,
    environment: () => ({ workerEnv: {}, cleanup: () => undefined }),
    async connectToStore(row, controlPlaneUrl) {
      const client = await connected({ connectionString: controlPlaneUrl });
      await client.query(`set search_path to ${client.escapeIdentifier(row.schema_name!)}`);
      return client;
    },
    namespaces: async (_client, row) => [row.schema_name!],
    dataRole: () => DATA_ROLE,
  },
  database: {
    plan: 'pro',
    provisionTimeoutMs: 30_000,
    environment: () => ({
      workerEnv: {},
      // Tenant databases and roles are server-wide: the test database's drop does not take them.
      cleanup: (controlPlaneDatabase) => (controlPlaneDatabase ? dropTenantDatabasesOf(controlPlaneDatabase) : undefined),
    }),
    connectToStore: (row) => connected({ connectionString: databaseUrl(row.database_name!) }),
    namespaces: (client) => userSchemas(client),
    dataRole: tenantRole,
    // The role exists on the shared server and is refused CONNECT.
    ownDatabase: { foreignRoleRefused: ['42501'] },
  },
  cluster: {
    plan: 'enterprise',
    provisionTimeoutMs: 60_000,
    environment: () => {
      const root = makeClusterRoot();
      return {
        workerEnv: { TENANT_CLUSTER_DATA_DIR: root, TENANT_CLUSTER_SETTINGS: 'shared_buffers=8MB max_connections=20' },
        cleanup: () => destroyClusterRoot(root),
      };
    },
    connectToStore: (row) =>
      connected({
        host: '127.0.0.1',
        port: row.cluster_port!,
        database: 'tenant',
        user: CLUSTER_SUPERUSER,
        password: decryptSecret(key(), row.cluster_admin_password_enc!, row.id),
      }),
    namespaces: (client) => userSchemas(client),
    dataRole: tenantRole,
    // B's role does not exist in A's instance at all.
    ownDatabase: { foreignRoleRefused: ['28P01', '28000'] },
  },
};

/** The suite's knowledge of `model`; a model of the registry without it fails the file, loudly. */
export function suiteModel(model: string): SuiteModel {
  if (!(ISOLATION_MODELS as string[]).includes(model)) throw new Error(`${model} is not an isolation model of the registry (${ISOLATION_MODELS.join(', ')})`);
  const fixture = (SUITE_MODELS as Record<string, SuiteModel | undefined>)[model];
  if (!fixture) throw new Error(`the isolation suite has no fixture for the ${model} model: add one to test/security/suite/models.ts`);
  return fixture;
}
