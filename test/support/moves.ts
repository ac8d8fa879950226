import { type Tenant, decryptSecret, parseSecretKey } from '@tenantry/db';
import { type Isolation, fromPublicId } from '@tenantry/domain';
import pg from 'pg';
import { expect } from 'vitest';
import { TENANT_SECRET_KEY } from './apps.js';
import { databaseUrl } from './env.js';
import { type JsonResponse, request, waitFor } from './http.js';
import type { Stack } from './stack.js';

/** A tenant made through the admin API, active, its owner signed in. */
export interface MoveTenant {
  /** `ten_…` */
  tenantId: string;
  /** The uuid. */
  id: string;
  slug: string;
  token: string;
  email: string;
  password: string;
}

const PASSWORD = 'violet-otter-stapler-42';
let counter = 0;

export async function createTenant(stack: Stack, options: { plan: string; isolation: Isolation; label?: string }, timeoutMs = 60_000): Promise<MoveTenant> {
  counter += 1;
  const label = options.label ?? `Move ${options.isolation} ${counter}`;
  const email = `move-${counter}-${process.pid}-${Date.now()}@example.com`;
  const created = await stack.admin('POST', '/v1/tenants', { body: { name: label, ownerEmail: email, ownerPassword: PASSWORD, plan: options.plan, isolation: options.isolation } });
  expect(created.status, JSON.stringify(created.body)).toBe(202);
  const tenantId: string = created.body.tenantId;
  const tenant = await waitFor(async () => {
    const res = await stack.admin('GET', `/v1/tenants/${tenantId}`);
    return res.body.status === 'active' ? res.body : undefined;
  }, timeoutMs);
  const login = await request(stack.api.baseUrl, 'POST', '/v1/auth/login', { body: { email, password: PASSWORD } });
  expect(login.status).toBe(200);
  return { tenantId, id: fromPublicId('ten', tenantId)!, slug: tenant.slug, token: login.body.token, email, password: PASSWORD };
}

export async function startMove(stack: Stack, tenant: MoveTenant, isolation: Isolation): Promise<string> {
  const res = await stack.admin('POST', `/v1/tenants/${tenant.tenantId}/move`, { body: { isolation } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  expect(res.body.status).toBe('pending');
  return res.body.moveId;
}

/** Poll the move until it is done or rolled back. */
export async function waitForMove(stack: Stack, tenant: MoveTenant, moveId: string, timeoutMs = 90_000): Promise<{ moveId: string; from: Isolation; to: Isolation; status: string; error?: string }> {
  return waitFor(async () => {
    const res = await stack.admin('GET', `/v1/tenants/${tenant.tenantId}/moves/${moveId}`);
    return res.body.status === 'done' || res.body.status === 'rolled_back' ? res.body : undefined;
  }, timeoutMs, 100);
}

export function tenantRow(stack: Stack, tenant: MoveTenant): Promise<Tenant> {
  return stack.database.db.selectFrom('tenants').selectAll().where('id', '=', tenant.id).executeTakeFirstOrThrow();
}

/**
 * A superuser connection to where a tenant row says its data lives (whatever model), so
 * tests can look at a store from outside the api. Superusers see every row.
 */
export async function connectToPlacement(row: Pick<Tenant, 'id' | 'isolation' | 'schema_name' | 'database_name' | 'cluster_port' | 'cluster_admin_password_enc'>, controlPlaneUrl: string): Promise<pg.Client> {
  const config: pg.ClientConfig =
    row.isolation === 'schema'
      ? { connectionString: controlPlaneUrl }
      : row.isolation === 'database'
        ? { connectionString: databaseUrl(row.database_name!) }
        : {
            host: '127.0.0.1',
            port: row.cluster_port!,
            database: 'tenant',
            user: 'postgres',
            password: decryptSecret(parseSecretKey(TENANT_SECRET_KEY), row.cluster_admin_password_enc!, row.id),
          };
  const client = new pg.Client(config);
  await client.connect();
  if (row.isolation === 'schema') await client.query(`set search_path to ${client.escapeIdentifier(row.schema_name!)}`);
  return client;
}

/** Every document of the tenant's current store, by id → data, read as a superuser. */
export async function storeDocuments(stack: Stack, tenant: MoveTenant): Promise<Map<string, Record<string, unknown>>> {
  const client = await connectToPlacement(await tenantRow(stack, tenant), stack.database.url);
  try {
    const { rows } = await client.query<{ id: string; data: Record<string, unknown> }>('select id::text as id, data from documents order by id');
    return new Map(rows.map((r) => [r.id, r.data]));
  } finally {
    await client.end();
  }
}

/**
 * Writes numbered documents through the api, `concurrency` at a time, until stopped. A
 * write that is not acknowledged (503 tenant_moving, or any other failure) is retried with
 * the same number until it is: `acked` maps each number to the id of its 2xx answer.
 */
export class NumberedWriter {
  readonly acked = new Map<number, string>();
  /** Answers by `<status>[ <code>]`. */
  readonly statuses = new Map<string, number>();
  /** The longest time from a write being sent to its acknowledgment (retries included). */
  longestWaitMs = 0;
  /** Each acknowledged write's [sent, acknowledged] (epoch ms, retries included). */
  readonly spans: Array<[number, number]> = [];
  private next = 0;
  private stopped = false;
  private lanes: Promise<void>[] = [];

  constructor(
    private readonly baseUrls: string[],
    private readonly token: string,
    private readonly collection = 'numbered',
  ) {}

  start(concurrency = 2): this {
    this.lanes = Array.from({ length: concurrency }, (_, lane) => this.lane(lane));
    return this;
  }

  /** Stop after the writes in flight are acknowledged. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.lanes);
  }

  private async lane(lane: number): Promise<void> {
    while (!this.stopped) {
      const n = this.next++;
      const started = Date.now();
      for (let attempt = 0; ; attempt++) {
        const baseUrl = this.baseUrls[(n + attempt) % this.baseUrls.length]!;
        const res: JsonResponse | undefined = await request(baseUrl, 'POST', `/v1/collections/${this.collection}/documents`, {
          token: this.token,
          body: { data: { n, lane } },
        }).catch(() => undefined);
        const status = res?.status ?? 0;
        const key = status === 201 ? '201' : `${status} ${res?.body?.code ?? 'no-answer'}`;
        this.statuses.set(key, (this.statuses.get(key) ?? 0) + 1);
        if (status === 201) {
          this.acked.set(n, res!.body.id);
          break;
        }
        const retryAfter = Number(res?.headers.get('retry-after') ?? 0);
        await new Promise((resolve) => setTimeout(resolve, retryAfter > 0 ? Math.min(retryAfter * 1000, 200) : 50));
      }
      this.longestWaitMs = Math.max(this.longestWaitMs, Date.now() - started);
      this.spans.push([started, Date.now()]);
    }
  }
}

/** Reads a collection through the api until stopped; counts answers by `<status>[ <code>]`. */
export class Reader {
  readonly statuses = new Map<string, number>();
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();

  constructor(
    private readonly baseUrls: string[],
    private readonly token: string,
    private readonly path: string,
  ) {}

  start(): this {
    this.loop = (async () => {
      let i = 0;
      while (!this.stopped) {
        const res = await request(this.baseUrls[i++ % this.baseUrls.length]!, 'GET', this.path, { token: this.token }).catch(() => undefined);
        const key = res?.status === 200 ? '200' : `${res?.status ?? 0} ${res?.body?.code ?? 'no-answer'}`;
        this.statuses.set(key, (this.statuses.get(key) ?? 0) + 1);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

/** The numbers of the documents of `collection` in the tenant's current store, with how often each occurs. */
export async function numberedCounts(stack: Stack, tenant: MoveTenant, collection: string): Promise<Map<number, number>> {
  const client = await connectToPlacement(await tenantRow(stack, tenant), stack.database.url);
  try {
    const { rows } = await client.query<{ n: number; count: number }>(
      `select (data->>'n')::int as n, count(*)::int as count from documents where collection = $1 group by 1`,
      [collection],
    );
    return new Map(rows.map((r) => [r.n, r.count]));
  } finally {
    await client.end();
  }
}

/**
 * Replaces and deletes documents of its own through the api until stopped (after creating
 * `count` of them): each acknowledged change is recorded, so `expected` is what the store
 * must hold afterwards (id → data; deleted ids absent). An unacknowledged change (503
 * tenant_moving) is retried as it was.
 */
export class Mutator {
  readonly expected = new Map<string, Record<string, unknown>>();
  readonly statuses = new Map<string, number>();
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();

  constructor(
    private readonly baseUrls: string[],
    private readonly token: string,
    private readonly collection: string,
  ) {}

  async start(count = 30): Promise<this> {
    for (let i = 0; i < count; i++) {
      const res = await this.send('POST', `/v1/collections/${this.collection}/documents`, { data: { version: 0, i } });
      this.expected.set(res.body.id, { version: 0, i });
    }
    this.loop = (async () => {
      let step = 0;
      while (!this.stopped && this.expected.size > 0) {
        step += 1;
        const ids = [...this.expected.keys()];
        const id = ids[(step * 7) % ids.length]!;
        if (step % 5 === 0) {
          await this.send('DELETE', `/v1/collections/${this.collection}/documents/${id}`);
          this.expected.delete(id);
        } else {
          const data = { ...this.expected.get(id)!, version: Number(this.expected.get(id)!.version) + 1 };
          await this.send('PUT', `/v1/collections/${this.collection}/documents/${id}`, { data });
          this.expected.set(id, data);
        }
      }
    })();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  /** Until acknowledged (2xx); every answer counted by `<status>[ <code>]`. */
  private async send(method: string, path: string, body?: unknown): Promise<JsonResponse> {
    for (let attempt = 0; ; attempt++) {
      const res = await request(this.baseUrls[attempt % this.baseUrls.length]!, method, path, { token: this.token, body }).catch(() => undefined);
      const status = res?.status ?? 0;
      const key = status >= 200 && status < 300 ? String(status) : `${status} ${res?.body?.code ?? 'no-answer'}`;
      this.statuses.set(key, (this.statuses.get(key) ?? 0) + 1);
      if (res && status >= 200 && status < 300) return res;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
