import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { CLUSTER_SUPERUSER, decryptSecret, parseSecretKey } from '@tenantry/db';
import { fromPublicId } from '@tenantry/domain';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_KEY, type RunningApi, TENANT_SECRET_KEY, startApi } from '../support/apps.js';
import { request, waitFor } from '../support/http.js';
import { useStack } from '../support/stack.js';
import { destroyClusterRoot, makeClusterRoot, pgCtl } from '../support/tenant-clusters.js';

/**
 * Replicated cluster tenants with real postmasters: a primary and a synchronous streaming
 * standby, the worker's failover when the primary is SIGKILLed under a writer, fencing of
 * the old primary, the rebuild of a lost standby, and a purge that leaves nothing. Two api
 * instances serve the tenant, to show that every one follows the routing switch.
 */
const root = makeClusterRoot();
const stack = useStack({
  workerEnv: { TENANT_CLUSTER_DATA_DIR: root, TENANT_CLUSTER_SETTINGS: 'shared_buffers=8MB max_connections=20', TENANT_CLUSTER_WATCH_INTERVAL_MS: '500' },
});
const key = parseSecretKey(TENANT_SECRET_KEY);
let api2: RunningApi;

afterAll(async () => {
  await api2?.close();
  destroyClusterRoot(root);
});

const PASSWORD = 'violet-otter-stapler-42';

interface ClusterTenant {
  tenantId: string;
  id: string;
  token: string;
}

async function createClusterTenant(label: string): Promise<ClusterTenant> {
  const email = `replicas-${label}-${process.pid}-${Date.now()}@example.com`;
  const created = await stack.admin('POST', '/v1/tenants', {
    body: { name: `Replicated ${label}`, ownerEmail: email, ownerPassword: PASSWORD, plan: 'enterprise', isolation: 'cluster' },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(202);
  const tenantId: string = created.body.tenantId;
  await waitFor(async () => ((await stack.admin('GET', `/v1/tenants/${tenantId}`)).body.status === 'active' ? true : undefined), 90_000);
  const login = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email, password: PASSWORD } });
  expect(login.status).toBe(200);
  return { tenantId, id: fromPublicId('ten', tenantId)!, token: login.body.token };
}

const tenantRow = (id: string) => stack.database.db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const instances = (id: string) => stack.database.db.selectFrom('cluster_instances').selectAll().where('tenant_id', '=', id).orderBy('generation').execute();
const running = (dir: string) => existsSync(path.join(dir, 'PG_VERSION')) && pgCtl(['status', '-D', dir]).code === 0;
const postmasterPid = (dir: string) => Number(readFileSync(path.join(dir, 'postmaster.pid'), 'utf8').split('\n')[0]);

/** A client on one of the tenant's instances: as its superuser, or as a tenant role (its own, or another tenant's). */
async function connect(port: number, as: { tenant: string; who: 'admin' | 'role' }, database = 'tenant'): Promise<pg.Client> {
  const row = await tenantRow(as.tenant);
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    database,
    user: as.who === 'admin' ? CLUSTER_SUPERUSER : row.database_role!,
    password: decryptSecret(key, as.who === 'admin' ? row.cluster_admin_password_enc! : row.database_password_enc!, as.tenant),
    connectionTimeoutMillis: 3_000,
  });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function onAdmin<T>(tenant: string, port: number, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(port, { tenant, who: 'admin' });
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

const write = (baseUrl: string, token: string, n: number) =>
  request(baseUrl, 'POST', '/v1/collections/seq/documents', { token, body: { data: { n } } }).catch(() => ({ status: 0, body: undefined }) as const);

let a: ClusterTenant;
let b: ClusterTenant;

beforeAll(async () => {
  api2 = await startApi({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix });
  [a, b] = await Promise.all([createClusterTenant('a'), createClusterTenant('b')]);
}, 180_000);

describe('shape of a replicated cluster tenant', () => {
  it('comes up with 2 postmasters; the standby streams synchronously; the health route shows both', async () => {
    const rows = await instances(a.id);
    expect(rows.map((r) => [r.generation, r.role, r.state])).toEqual([
      [0, 'primary', 'active'],
      [1, 'standby', 'active'],
    ]);
    for (const r of rows) expect(running(r.data_dir), r.data_dir).toBe(true);
    expect(new Set(rows.map((r) => postmasterPid(r.data_dir))).size).toBe(2);
    const tenant = await tenantRow(a.id);
    expect(tenant.cluster_port).toBe(rows[0]!.port);
    expect(tenant.cluster_replicas).toBe(1);
    expect(tenant.cluster_replication_password_enc).toBeInstanceOf(Buffer);

    const replication = await onAdmin(a.id, rows[0]!.port, async (c) => (await c.query('select application_name, state, sync_state from pg_stat_replication')).rows);
    expect(replication).toEqual([{ application_name: 'standby_1', state: 'streaming', sync_state: 'sync' }]);
    expect(await onAdmin(a.id, rows[1]!.port, async (c) => (await c.query('select pg_is_in_recovery() as r')).rows[0].r)).toBe(true);
    // No replication password in the standby's data directory: it streams over the primary's socket, peer-authenticated.
    const auto = readFileSync(path.join(rows[1]!.data_dir, 'postgresql.auto.conf'), 'utf8');
    expect(auto).toContain(rows[0]!.data_dir);
    expect(auto).not.toMatch(/password\s*=/i);

    // A write acknowledged through the api is on the standby too.
    const doc = await write(stack.api.baseUrl, a.token, -1);
    expect(doc.status).toBe(201);
    const onStandby = await onAdmin(a.id, rows[1]!.port, async (c) => (await c.query('select count(*)::int as n from documents where id = $1', [doc.body.id])).rows[0].n);
    expect(onStandby).toBe(1);

    const health = await waitFor(async () => {
      const res = await stack.admin('GET', `/v1/tenants/${a.tenantId}/health`);
      // Provisioning records the standby as streaming when it starts; the rest is what the watch observed.
      const [primary, standby] = res.body.replication?.instances ?? [];
      return primary?.state === 'running' && standby?.state === 'streaming' && standby?.synchronous !== null ? res : undefined;
    }, 10_000);
    expect(health.body.replication.instances).toMatchObject([
      { generation: 0, role: 'primary', state: 'running', lagBytes: null },
      { generation: 1, role: 'standby', state: 'streaming', synchronous: true, lagBytes: expect.any(Number), lagSeconds: expect.any(Number) },
    ]);
    expect(health.body.replication.lastFailover).toBeNull();
  });

  it("another tenant's role cannot connect to either instance", async () => {
    for (const r of await instances(a.id)) {
      for (const database of ['tenant', 'postgres']) {
        await expect(connect(r.port, { tenant: b.id, who: 'role' }, database)).rejects.toMatchObject({ code: '28P01' });
      }
      // Nor the replication role over TCP without its password.
      const repl = new pg.Client({ host: '127.0.0.1', port: r.port, user: 'tenantry_replicator', password: 'guess', database: 'replication', connectionTimeoutMillis: 3_000 });
      await expect(repl.connect()).rejects.toMatchObject({ code: '28P01' });
      await repl.end().catch(() => undefined);
    }
  });
});

describe('failover', () => {
  let oldPrimary: { dir: string; port: number };

  it('SIGKILL of the primary under a writer: writes succeed again within 30 s on both apis, every acknowledged write exactly once, a new standby streams within 60 s', async () => {
    const [primary] = await instances(a.id);
    oldPrimary = { dir: primary!.data_dir, port: primary!.port };
    // Both apis hold a pool to the primary before it dies.
    expect((await write(stack.api.baseUrl, a.token, -2)).status).toBe(201);
    expect((await write(api2.baseUrl, a.token, -3)).status).toBe(201);

    const acknowledged: number[] = [];
    let firstSuccessAfterKill: number | undefined;
    let killedAt = 0;
    let stop = false;
    let n = 0;
    const writer = (async () => {
      while (!stop) {
        const i = n++;
        const res = await write(stack.api.baseUrl, a.token, i);
        if (res.status === 201) {
          acknowledged.push(i);
          if (killedAt && firstSuccessAfterKill === undefined) firstSuccessAfterKill = Date.now() - killedAt;
        } else {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    })();
    await waitFor(async () => (acknowledged.length >= 20 ? true : undefined), 20_000, 20);
    killedAt = Date.now();
    process.kill(postmasterPid(oldPrimary.dir), 'SIGKILL');

    const failover = await waitFor(async () => {
      const row = await stack.database.db.selectFrom('cluster_failovers').selectAll().where('tenant_id', '=', a.id).executeTakeFirst();
      return row?.switched_at ? row : undefined;
    }, 30_000, 50);
    // The second api follows the switch on its next request: within 1 s, without a restart.
    const switchedAt = new Date(failover.switched_at!).getTime();
    const follow = await waitFor(async () => ((await write(api2.baseUrl, a.token, -4)).status === 201 ? Date.now() : undefined), 5_000, 20);
    expect(follow - Math.max(switchedAt, Date.now() - 5_000)).toBeLessThan(1_000);

    await waitFor(async () => (firstSuccessAfterKill !== undefined ? true : undefined), 30_000, 50);
    expect(firstSuccessAfterKill!).toBeLessThan(30_000);
    const countAfter = acknowledged.length;
    await waitFor(async () => (acknowledged.length >= countAfter + 10 ? true : undefined), 10_000, 20);

    // A new standby (generation 2) streams from the new primary within 60 s of the kill.
    await waitFor(async () => {
      const rows = await instances(a.id);
      return rows.some((r) => r.generation === 2 && r.role === 'standby' && r.state === 'active' && r.observed_state === 'streaming') ? true : undefined;
    }, Math.max(1_000, 60_000 - (Date.now() - killedAt)), 100);
    stop = true;
    await writer;

    const rows = await instances(a.id);
    expect(rows.map((r) => [r.generation, r.role, r.state])).toEqual([
      [0, 'primary', 'fenced'],
      [1, 'primary', 'active'],
      [2, 'standby', 'active'],
    ]);
    const tenant = await tenantRow(a.id);
    expect([tenant.cluster_port, tenant.cluster_data_dir, tenant.database_server]).toEqual([rows[1]!.port, rows[1]!.data_dir, `127.0.0.1:${rows[1]!.port}`]);
    // Every write that got a 201 is there exactly once.
    const counts = await onAdmin(a.id, rows[1]!.port, async (c) => {
      const { rows: found } = await c.query<{ n: number; copies: number }>("select (data->>'n')::int as n, count(*)::int as copies from documents where collection = 'seq' group by 1");
      return new Map(found.map((f) => [f.n, f.copies]));
    });
    for (const i of acknowledged) expect(counts.get(i), `write ${i}`).toBe(1);
    expect(acknowledged.length).toBeGreaterThan(30);

    const audit = await stack.database.db.selectFrom('audit_log').select(['action', 'data']).where('tenant_id', '=', a.id).where('action', '=', 'tenant.cluster_failover').execute();
    expect(audit).toHaveLength(1);
    // The watch may see the new standby streaming a moment before the failover records its
    // last step (the rebuild returns once the standby is made, then the step is written).
    const done = await waitFor(async () => {
      const row = await stack.database.db.selectFrom('cluster_failovers').selectAll().where('tenant_id', '=', a.id).executeTakeFirstOrThrow();
      return row.step === 'done' ? row : undefined;
    }, 10_000, 50);
    expect(done.step).toBe('done');
    // Done means synchronous again: commits wait for the new standby.
    const replication = await onAdmin(a.id, rows[1]!.port, async (c) => (await c.query('select application_name, state, sync_state from pg_stat_replication')).rows);
    expect(replication).toEqual([{ application_name: 'standby_2', state: 'streaming', sync_state: 'sync' }]);

    const health = await stack.admin('GET', `/v1/tenants/${a.tenantId}/health`);
    expect(health.body.healthy).toBe(true);
    expect(health.body.replication.lastFailover).toMatchObject({ step: 'done', fromGeneration: 0, toGeneration: 1, detectionSeconds: expect.any(Number), promotionSeconds: expect.any(Number) });
    expect(health.body.replication.lastFailover.detectionSeconds).toBeGreaterThanOrEqual(10);
    const metrics = await (await fetch(`http://127.0.0.1:${stack.worker!.metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/tenantry_cluster_failovers_total\{outcome="completed"\} 1/);
    expect(metrics).not.toContain(a.id);
  }, 120_000);

  it('fencing: the old primary started again comes up read-only, refuses the tenant role, and the worker stops it', async () => {
    expect(running(oldPrimary.dir)).toBe(false);
    const started = pgCtl(['start', '-w', '-D', oldPrimary.dir, '-l', path.join(oldPrimary.dir, 'server.log'), '-o', `-p ${oldPrimary.port} -k ${oldPrimary.dir} -c listen_addresses=127.0.0.1`]);
    expect(started.code, started.out).toBe(0);
    try {
      await expect(connect(oldPrimary.port, { tenant: a.id, who: 'role' })).rejects.toMatchObject({ code: '28000' });
      const row = await tenantRow(a.id);
      const local = new pg.Client({ host: oldPrimary.dir, port: oldPrimary.port, database: 'tenant', user: CLUSTER_SUPERUSER, password: decryptSecret(key, row.cluster_admin_password_enc!, a.id) });
      await local.connect();
      try {
        expect((await local.query('select pg_is_in_recovery() as r')).rows[0].r).toBe(true);
        await expect(local.query("insert into documents (tenant_id, collection, data) values (gen_random_uuid(), 'x', '{}')")).rejects.toMatchObject({ code: '25006' });
      } finally {
        await local.end().catch(() => undefined);
      }
      // The tenant's clients keep writing to the new primary.
      const doc = await write(stack.api.baseUrl, a.token, -5);
      expect(doc.status).toBe(201);
      expect((await request(api2.baseUrl, 'GET', `/v1/collections/seq/documents/${doc.body.id}`, { token: a.token })).status).toBe(200);
      // And the watch stops the fenced instance again.
      await waitFor(async () => (running(oldPrimary.dir) ? undefined : true), 15_000, 100);
    } finally {
      if (running(oldPrimary.dir)) pgCtl(['stop', '-D', oldPrimary.dir, '-m', 'immediate', '-w']);
    }
  }, 60_000);
});

describe('rebuild', () => {
  it("a standby SIGKILLed with its data directory removed is rebuilt; the primary's slot and WAL stay bounded meanwhile", async () => {
    const before = await instances(a.id);
    const primary = before.find((r) => r.role === 'primary' && r.state === 'active')!;
    const standby = before.find((r) => r.role === 'standby')!;
    process.kill(postmasterPid(standby.data_dir), 'SIGKILL');
    rmSync(standby.data_dir, { recursive: true, force: true });

    // Writes go on (the primary stops waiting for a standby that is gone).
    const writeSoon = await waitFor(async () => ((await write(stack.api.baseUrl, a.token, -6)).status === 201 ? true : undefined), 20_000, 100);
    expect(writeSoon).toBe(true);

    const rebuilt = await waitFor(async () => {
      const rows = await instances(a.id);
      return rows.find((r) => r.role === 'standby' && r.generation > standby.generation && r.state === 'active' && r.observed_state === 'streaming');
    }, 60_000, 100);
    expect(rebuilt.generation).toBe(standby.generation + 1);
    const { slots, wal } = await onAdmin(a.id, primary.port, async (c) => ({
      slots: (await c.query("select slot_name, active, wal_status from pg_replication_slots order by 1")).rows,
      wal: Number((await c.query("select coalesce(sum(size), 0)::bigint::text as n from pg_ls_waldir()")).rows[0].n),
    }));
    // Only the new standby's slot: the lost one's was dropped, so it holds no WAL back.
    expect(slots).toEqual([{ slot_name: `standby_${rebuilt.generation}`, active: true, wal_status: 'reserved' }]);
    expect(wal).toBeLessThan(1024 * 1024 * 1024);
    expect(existsSync(standby.data_dir)).toBe(false);
    const audit = await stack.database.db.selectFrom('audit_log').select('action').where('tenant_id', '=', a.id).where('action', 'in', ['tenant.cluster_standby_removed', 'tenant.cluster_standby_created']).execute();
    expect(audit.length).toBeGreaterThanOrEqual(3);
  }, 90_000);
});

describe('purge', () => {
  it('removes every instance of the tenant: primary, standby, fenced old primary; nothing left running or on disk', async () => {
    const rows = await instances(a.id);
    expect(rows.length).toBeGreaterThanOrEqual(3);
    const pids = rows.filter((r) => running(r.data_dir)).map((r) => postmasterPid(r.data_dir));
    expect(pids.length).toBe(2);
    expect((await stack.admin('DELETE', `/v1/tenants/${a.tenantId}`)).status).toBe(200);
    expect(await stack.worker!.purge(new Date(Date.now() + 365 * 86_400_000))).toBeGreaterThanOrEqual(1);
    const prefix = `tc_${a.id.replaceAll('-', '')}`;
    expect(readdirSync(root).filter((e) => e.startsWith(prefix))).toEqual([]);
    for (const pid of pids) {
      await waitFor(async () => {
        try {
          const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
          return stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z' ? true : undefined;
        } catch {
          return true;
        }
      }, 10_000);
    }
    expect(await instances(a.id)).toEqual([]);
    // The other tenant is untouched.
    expect((await request(stack.api.baseUrl, 'GET', '/v1/collections/seq/documents', { token: b.token })).status).toBe(200);
    expect(PLATFORM_KEY).toBeTruthy();
  }, 60_000);
});
