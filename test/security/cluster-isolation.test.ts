import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CLUSTER_SUPERUSER, decryptSecret, isDns1123Label, parseSecretKey, renderCnpgCluster } from '@tenantry/db';
import { fromPublicId } from '@tenantry/domain';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TENANT_SECRET_KEY } from '../support/apps.js';
import { request, validSignup, waitFor } from '../support/http.js';
import { useStack } from '../support/stack.js';
import { destroyClusterRoot, makeClusterRoot, pgCtl } from '../support/tenant-clusters.js';

/**
 * Cluster isolation, driver local: a real, separate postmaster per tenant. At most two
 * instances exist at once in this file (the tenant under test, and the doomed one of the
 * compensation test); every one is stopped and its directory removed in afterAll.
 *
 * Unreplicated (TENANT_CLUSTER_REPLICAS=0): this file is about the one instance — its
 * isolation, restart by the health pass, compensation and purge. Replicas, failover and
 * their purge are test/faults/cluster-replicas.test.ts.
 */
const root = makeClusterRoot();
const stack = useStack({
  workerEnv: { TENANT_CLUSTER_DATA_DIR: root, TENANT_CLUSTER_SETTINGS: 'shared_buffers=8MB max_connections=20', TENANT_CLUSTER_REPLICAS: '0' },
});
const key = parseSecretKey(TENANT_SECRET_KEY);

afterAll(() => destroyClusterRoot(root));

interface ClusterTenant {
  tenantId: string;
  id: string;
  token: string;
  dataDir: string;
  port: number;
}

const PASSWORD = 'violet-otter-stapler-42';

async function createClusterTenant(label: string): Promise<ClusterTenant> {
  const email = `cluster-${label}-${process.pid}-${Date.now()}@example.com`;
  const created = await stack.admin('POST', '/v1/tenants', {
    body: { name: `Cluster ${label}`, ownerEmail: email, ownerPassword: PASSWORD, plan: 'enterprise', isolation: 'cluster' },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(202);
  const tenantId: string = created.body.tenantId;
  await waitFor(async () => ((await stack.admin('GET', `/v1/tenants/${tenantId}`)).body.status === 'active' ? true : undefined), 60_000);
  const login = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email, password: PASSWORD } });
  expect(login.status).toBe(200);
  const id = fromPublicId('ten', tenantId)!;
  const row = await stack.database.db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  return { tenantId, id, token: login.body.token, dataDir: row.cluster_data_dir!, port: row.cluster_port! };
}

async function rowOf(id: string) {
  return stack.database.db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

/** Connect to the tenant's own instance, as its superuser or as its tenant role. */
async function connectTo(id: string, as: 'admin' | 'tenant'): Promise<pg.Client> {
  const row = await rowOf(id);
  const client = new pg.Client({
    host: '127.0.0.1',
    port: row.cluster_port!,
    database: 'tenant',
    user: as === 'admin' ? CLUSTER_SUPERUSER : row.database_role!,
    password: decryptSecret(key, as === 'admin' ? row.cluster_admin_password_enc! : row.database_password_enc!, id),
  });
  await client.connect();
  return client;
}

const docs = (token: string, method: string, path: string, body?: unknown) => request(stack.api.baseUrl, method, `/v1/collections${path}`, { token, body });
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
const running = (dataDir: string) => pgCtl(['status', '-D', dataDir]).code === 0;

let a: ClusterTenant;
let schemaTenant: { tenantId: string; token: string };

beforeAll(async () => {
  [a, schemaTenant] = await Promise.all([createClusterTenant('a'), stack.signUpTenant()]);
});

describe('provisioning a cluster tenant through the api', () => {
  it('runs a dedicated postmaster, records the placement, and the documents API works end to end against it', async () => {
    const row = await rowOf(a.id);
    expect(row).toMatchObject({ isolation: 'cluster', status: 'active', plan: 'enterprise', schema_name: null, database_name: 'tenant' });
    expect(row.database_server).toBe(`127.0.0.1:${a.port}`);
    expect(row.database_role).toBe(`tr_${a.id.replaceAll('-', '')}`);
    expect(a.dataDir).toBe(path.join(root, `tc_${a.id.replaceAll('-', '')}`));

    // A real, separate process: pg_ctl status and its pid file, not the suite's server.
    expect(running(a.dataDir)).toBe(true);
    const pid = Number(readFileSync(path.join(a.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    expect(pid).toBeGreaterThan(0);
    expect(alive(pid)).toBe(true);
    const admin = await connectTo(a.id, 'admin');
    try {
      const { rows } = await admin.query<{ port: string; dir: string }>("select current_setting('port') as port, current_setting('data_directory') as dir");
      expect(rows[0]).toEqual({ port: String(a.port), dir: a.dataDir });
    } finally {
      await admin.end();
    }

    const created = await docs(a.token, 'POST', '/notes/documents', { data: { title: 'in my own cluster', n: 1 } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    await docs(a.token, 'POST', '/notes/documents', { data: { title: 'second', n: 2 } });
    const got = await docs(a.token, 'GET', `/notes/documents/${created.body.id}`);
    expect([got.status, got.body.data]).toEqual([200, { title: 'in my own cluster', n: 1 }]);
    const list = await docs(a.token, 'GET', '/notes/documents?limit=100');
    expect(list.body.items.map((d: { data: { title: string } }) => d.data.title).sort()).toEqual(['in my own cluster', 'second']);

    // The rows are in the dedicated instance.
    const check = await connectTo(a.id, 'admin');
    try {
      const { rows } = await check.query<{ tenant_id: string; n: string }>('select tenant_id::text, count(*)::text as n from documents group by 1');
      expect(rows).toEqual([{ tenant_id: a.id, n: '2' }]);
    } finally {
      await check.end();
    }
    const health = await stack.admin('GET', `/v1/tenants/${a.tenantId}/health`);
    expect(health.body).toMatchObject({ healthy: true, store: { ok: true } });
  });

  it('the tenant role has DML only: no TRUNCATE, not superuser; RLS is forced; no other database', async () => {
    const own = await connectTo(a.id, 'tenant');
    try {
      expect((await own.query('select count(*)::int as n from documents')).rows[0].n).toBe(0); // no app.tenant_id: RLS hides all
      await expect(own.query('truncate documents')).rejects.toMatchObject({ code: '42501' });
      await expect(own.query('create table t (x int)')).rejects.toMatchObject({ code: '42501' });
      const { rows } = await own.query('select rolsuper, rolbypassrls, rolcreatedb from pg_roles where rolname = current_user');
      expect(rows[0]).toEqual({ rolsuper: false, rolbypassrls: false, rolcreatedb: false });
    } finally {
      await own.end();
    }
    const row = await rowOf(a.id);
    const other = new pg.Client({ host: '127.0.0.1', port: a.port, database: 'postgres', user: row.database_role!, password: decryptSecret(key, row.database_password_enc!, a.id) });
    await expect(other.connect()).rejects.toMatchObject({ code: '42501' });
    await other.end().catch(() => undefined);
    // Host connections need the password (SCRAM): a wrong one is refused.
    const wrong = new pg.Client({ host: '127.0.0.1', port: a.port, database: 'tenant', user: CLUSTER_SUPERUSER, password: 'nope' });
    await expect(wrong.connect()).rejects.toMatchObject({ code: '28P01' });
    await wrong.end().catch(() => undefined);
  });

  it('cross-tenant: documents of the cluster tenant and of a schema tenant are 404 to each other', async () => {
    const mine = await docs(a.token, 'POST', '/x/documents', { data: { owner: 'cluster' } });
    const theirs = await docs(schemaTenant.token, 'POST', '/x/documents', { data: { owner: 'schema' } });
    expect([mine.status, theirs.status]).toEqual([201, 201]);
    for (const [token, id] of [
      [a.token, theirs.body.id],
      [schemaTenant.token, mine.body.id],
    ] as const) {
      for (const [method, body] of [['GET'], ['PUT', { data: { pwned: true } }], ['DELETE']] as const) {
        const res = await docs(token, method, `/x/documents/${id}`, body);
        expect([res.status, res.body.code], method).toEqual([404, 'document_not_found']);
      }
    }
    expect((await docs(a.token, 'GET', '/x/documents')).body.items.map((d: { data: unknown }) => d.data)).toEqual([{ owner: 'cluster' }]);
    expect((await docs(schemaTenant.token, 'GET', '/x/documents')).body.items.map((d: { data: unknown }) => d.data)).toEqual([{ owner: 'schema' }]);
  });

  it('the worker restarts a stopped cluster on its health pass, and the api serves again', async () => {
    expect(pgCtl(['stop', '-D', a.dataDir, '-m', 'fast', '-w']).code).toBe(0);
    expect(running(a.dataDir)).toBe(false);
    const down = await docs(a.token, 'GET', '/notes/documents');
    expect(down.status).toBeGreaterThanOrEqual(500);

    const pass = await stack.worker!.probeTenants();
    expect(pass.probed).toBeGreaterThanOrEqual(2);
    expect(running(a.dataDir)).toBe(true);
    const health = await stack.database.db.selectFrom('tenant_health').selectAll().where('tenant_id', '=', a.id).executeTakeFirstOrThrow();
    expect(health.consecutive_failures).toBe(0);
    const back = await waitFor(async () => {
      const res = await docs(a.token, 'GET', '/notes/documents?limit=100');
      return res.status === 200 ? res : undefined;
    }, 10_000);
    expect(back.body.items.length).toBe(2);
    // A second pass with everything up starts nothing.
    await stack.worker!.probeTenants();
    expect(running(a.dataDir)).toBe(true);
  });
});

describe('instances of tenants that are not served', () => {
  it('a suspended tenant whose instance went down has it started by the next health pass; unsuspending gives access at once', async () => {
    expect((await stack.admin('POST', `/v1/tenants/${a.tenantId}/suspend`, { body: { reason: 'maintenance window' } })).status).toBe(200);
    expect(pgCtl(['stop', '-D', a.dataDir, '-m', 'fast', '-w']).code).toBe(0);
    await stack.worker!.probeTenants();
    expect(running(a.dataDir)).toBe(true);
    expect((await stack.admin('POST', `/v1/tenants/${a.tenantId}/unsuspend`, { body: {} })).status).toBe(200);
    const list = await docs(a.token, 'GET', '/notes/documents?limit=100');
    expect(list.status, JSON.stringify(list.body)).toBe(200);
    expect(list.body.items).toHaveLength(2);
  });
});

describe('plan capability and refused paths', () => {
  it('cluster on a plan without isolation.cluster → 403 capability_missing; public signup → 400', async () => {
    for (const plan of ['pro', 'trial']) {
      const res = await stack.admin('POST', '/v1/tenants', { body: { name: 'No Cluster', ownerEmail: `nocl-${plan}-${process.pid}@example.com`, plan, isolation: 'cluster' } });
      expect([res.status, res.body.code], plan).toEqual([403, 'capability_missing']);
    }
    const signup = await request(stack.api.baseUrl, 'POST', '/v1/signup', { body: validSignup({ isolation: 'cluster' }) });
    expect([signup.status, signup.body.code]).toEqual([400, 'validation_failed']);
    expect(signup.body.fields.map((f: { field: string }) => f.field)).toContain('isolation');
  });
});

describe('compensation and purge', () => {
  it('a step failing for good after the instance started → compensation stops it and removes its directory', async () => {
    await sql`
      create function test_refuse_billing() returns trigger language plpgsql as $$
      begin raise exception 'billing store refuses writes (injected)'; end $$`.execute(stack.database.db);
    await sql`create trigger refuse_billing before insert on billing_states for each row execute function test_refuse_billing()`.execute(stack.database.db);
    try {
      const email = `doomed-cluster-${process.pid}@example.com`;
      const created = await stack.admin('POST', '/v1/tenants', {
        body: { name: 'Doomed Cluster', ownerEmail: email, ownerPassword: PASSWORD, plan: 'enterprise', isolation: 'cluster' },
      });
      expect(created.status).toBe(202);
      const id = fromPublicId('ten', created.body.tenantId)!;
      const dir = path.join(root, `tc_${id.replaceAll('-', '')}`);
      const signup = await waitFor(async () => {
        const row = await stack.database.db.selectFrom('signups').selectAll().where('email', '=', email).executeTakeFirst();
        return row?.status === 'failed' ? row : undefined;
      }, 60_000);
      expect(signup.last_error).toContain('billing store refuses writes');
      expect(existsSync(dir)).toBe(false);
      expect(existsSync(`${dir}.init`)).toBe(false);
      expect(await stack.database.db.selectFrom('tenants').select('id').where('id', '=', id).execute()).toHaveLength(0);
    } finally {
      await sql`drop trigger refuse_billing on billing_states`.execute(stack.database.db);
      await sql`drop function test_refuse_billing()`.execute(stack.database.db);
    }
  });

  it('purge stops the postmaster and removes the data directory; a second pass is a no-op', async () => {
    const pid = Number(readFileSync(path.join(a.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    expect((await stack.admin('DELETE', `/v1/tenants/${a.tenantId}`)).status).toBe(200);
    const later = new Date(Date.now() + 365 * 86_400_000);
    expect(await stack.worker!.purge(later)).toBeGreaterThanOrEqual(1);
    expect(existsSync(a.dataDir)).toBe(false);
    // Gone (a zombie not yet reaped by init counts as gone: it runs nothing).
    await waitFor(async () => (alive(pid) ? undefined : true), 5_000);
    const row = await rowOf(a.id);
    expect(row).toMatchObject({
      status: 'deleted',
      database_server: null,
      database_password_enc: null,
      cluster_data_dir: null,
      cluster_port: null,
      cluster_admin_password_enc: null,
    });
    expect(await stack.worker!.purge(later)).toBe(0);
    expect((await docs(schemaTenant.token, 'GET', '/x/documents')).status).toBe(200);
  });
});

describe('driver kubernetes: CloudNativePG manifests', () => {
  it('renders a valid Cluster and its basic-auth Secret; the password appears only base64 in the Secret', () => {
    const tenantId = '0b6f3a52-9c1e-4d7a-8f00-1234567890ab';
    const password = 'Sup3r-s3cret-generated-password-xyz';
    const { secret, cluster } = renderCnpgCluster(tenantId, { password }, { namespace: 'tenantry-tenants', replicas: 2, storageSize: '5Gi' });

    expect(cluster).toMatchObject({ apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', metadata: { name: 'tc-0b6f3a529c1e4d7a8f001234567890ab', namespace: 'tenantry-tenants' } });
    // A primary and its standbys, one of which acknowledges every commit (as the local driver).
    expect(cluster.spec.instances).toBe(3);
    expect(cluster.spec.postgresql).toEqual({ synchronous: { method: 'first', number: 1, dataDurability: 'preferred' } });
    expect(cluster.spec.postgresql!.synchronous.number).toBeLessThan(cluster.spec.instances);
    expect(renderCnpgCluster(tenantId, { password }, { namespace: 'x' }).cluster.spec).toMatchObject({ instances: 2, postgresql: { synchronous: { number: 1 } } });
    expect(renderCnpgCluster(tenantId, { password }, { namespace: 'x', replicas: 1, synchronous: false }).cluster.spec.postgresql).toBeUndefined();
    expect(renderCnpgCluster(tenantId, { password }, { namespace: 'x', replicas: 0 }).cluster.spec).not.toHaveProperty('postgresql');
    expect(() => renderCnpgCluster(tenantId, { password }, { namespace: 'x', replicas: 9 })).toThrow(/replicas/);
    expect(cluster.spec.storage.size).toBe('5Gi');
    expect(cluster.spec.bootstrap.initdb).toMatchObject({ database: 'tenant', owner: 'tenant' });
    for (const name of [cluster.metadata.name, secret.metadata.name, cluster.metadata.namespace]) expect(isDns1123Label(name), name).toBe(true);

    // The Secret the Cluster references exists, in the same namespace, of the type CNPG expects.
    expect(cluster.spec.bootstrap.initdb.secret.name).toBe(secret.metadata.name);
    expect(secret).toMatchObject({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/basic-auth', metadata: { namespace: cluster.metadata.namespace } });
    expect(Buffer.from(secret.data.username, 'base64').toString()).toBe('tenant');
    expect(Buffer.from(secret.data.password, 'base64').toString()).toBe(password);

    // No plaintext password anywhere: not in the Cluster, not outside the Secret's data.
    expect(JSON.stringify(cluster)).not.toContain(password);
    expect(JSON.stringify({ ...secret, data: undefined })).not.toContain(password);
    expect(JSON.stringify(secret)).not.toContain(password);
    expect(() => renderCnpgCluster(tenantId, { password }, { namespace: 'Not_Valid' })).toThrow(/DNS-1123/);
  });
});
