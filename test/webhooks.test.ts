import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { fromPublicId } from '@tenantry/domain';
import type { WorkerInstance } from '@tenantry/worker';
import pino from 'pino';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningApi, startApi, startWorker } from './support/apps.js';
import { request, waitFor } from './support/http.js';
import { freePort } from './support/ports.js';
import { REPO_ROOT } from './support/process.js';
import { deleteRedisKeys } from './support/redis.js';
import { useStack } from './support/stack.js';

/** Everything the api and the worker log in this file, at trace level: a secret must never appear in it. */
const logLines: string[] = [];
const captureLogger = (name: string) =>
  pino(
    { level: 'trace', name },
    new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    }),
  );

/** Every signing secret handed out in this file. */
const issuedSecrets: string[] = [];

const WEBHOOK_ENV = { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOK_BACKOFF_MS: '200', WEBHOOK_ATTEMPTS: '6', WEBHOOK_TIMEOUT_MS: '700' };
const stack = useStack({ worker: false, api: WEBHOOK_ENV, apiOptions: { logger: captureLogger('api') } });
let worker: WorkerInstance;
const startOurWorker = () => startWorker({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix, ...WEBHOOK_ENV }, { logger: captureLogger('worker') });

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

type Behaviour = 'ok' | 500 | 'hang' | 'redirect';

/** A billing system's receiver: records what it gets, answers as told (per path, in order, then 'ok'). */
class Receiver {
  server!: Server;
  port = 0;
  received: Received[] = [];
  plans = new Map<string, Behaviour[]>();

  async start(port = 0): Promise<this> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        const path = req.url ?? '/';
        this.received.push({ path, headers: req.headers, body });
        const behaviour = this.plans.get(path)?.shift() ?? 'ok';
        if (behaviour === 'hang') return; // never answers
        if (behaviour === 'redirect') {
          res.writeHead(307, { location: `http://127.0.0.1:${this.port}/elsewhere` }).end();
          return;
        }
        res.writeHead(behaviour === 'ok' ? 204 : behaviour).end();
      });
    });
    this.server.listen(port, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  at(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }
}

let receiver: Receiver;
beforeAll(async () => {
  receiver = await new Receiver().start();
  worker = await startOurWorker();
});
afterAll(async () => {
  await worker?.close();
  await receiver?.stop();
});

async function register(path: string, body: Record<string, unknown> = {}) {
  const res = await stack.admin('POST', '/v1/webhooks', { body: { url: receiver.url(path), ...body } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  issuedSecrets.push(res.body.secret);
  return res.body as { id: string; secret: string; url: string };
}

/** A tenant created by an operator and provisioned by the worker: its activation is an event too. */
async function activeTenant(name: string): Promise<string> {
  const accepted = await stack.admin('POST', '/v1/tenants', { body: { name, ownerEmail: `${name.toLowerCase().replace(/\W/g, '')}-${Date.now()}@example.com`, plan: 'pro' } });
  expect(accepted.status).toBe(202);
  await waitFor(async () => ((await stack.admin('GET', `/v1/tenants/${accepted.body.tenantId}`)).body.status === 'active' ? true : undefined), 20_000);
  return accepted.body.tenantId;
}

const waitForDeliveries = (path: string, n: number, timeoutMs = 15_000) => waitFor(async () => (receiver.at(path).length >= n ? receiver.at(path) : undefined), timeoutMs);

function verify(secret: string, r: Received) {
  return new Webhook(secret).verify(r.body, {
    'webhook-id': String(r.headers['webhook-id']),
    'webhook-timestamp': String(r.headers['webhook-timestamp']),
    'webhook-signature': String(r.headers['webhook-signature']),
  }) as { type: string; timestamp: string; data: Record<string, any> };
}

const attemptsOf = async (deliveryUuid: string) =>
  stack.database.db.selectFrom('webhook_attempts').select(['attempt', 'status_code', 'error', 'duration_ms']).where('delivery_id', '=', deliveryUuid).orderBy('attempt').execute();

const deliveryUuidOf = (r: Received) => fromPublicId('msg', String(r.headers['webhook-id']))!;

describe('registering endpoints', () => {
  it('201 with the signing secret once; listed without it; stored sealed; audited without it', async () => {
    const res = await stack.admin('POST', '/v1/webhooks', { body: { url: receiver.url('/crud'), events: ['tenant.suspended'], description: 'Billing' } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ url: receiver.url('/crud'), events: ['tenant.suspended'], description: 'Billing', status: 'enabled', failingSince: null });
    expect(res.body.id).toMatch(/^whe_[0-9a-f]{32}$/);
    expect(res.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const secret: string = res.body.secret;
    issuedSecrets.push(secret);

    const list = await stack.admin('GET', '/v1/webhooks');
    expect(list.status).toBe(200);
    expect(list.body.items.map((e: { id: string }) => e.id)).toContain(res.body.id);
    expect(JSON.stringify(list.body)).not.toContain(secret.slice(6));
    expect(list.body.items[0]).not.toHaveProperty('secret');

    const row = await stack.database.db.selectFrom('webhook_endpoints').selectAll().where('id', '=', fromPublicId('whe', res.body.id)!).executeTakeFirstOrThrow();
    const secretBytes = Buffer.from(secret.slice(6), 'base64');
    expect(row.secret_enc.includes(secretBytes)).toBe(false);
    expect(row.secret_enc.toString('latin1')).not.toContain(secret.slice(6));

    const audit = await stack.database.db.selectFrom('audit_log').select(['action', 'actor', 'data']).where('action', 'like', 'webhook.%').execute();
    expect(audit).toContainEqual(expect.objectContaining({ action: 'webhook.created', actor: 'platform:env:1' }));
    expect(JSON.stringify(audit)).not.toContain(secret.slice(6));

    const deleted = await stack.admin('DELETE', `/v1/webhooks/${res.body.id}`);
    expect([deleted.status, deleted.body.id]).toEqual([200, res.body.id]);
    expect((await stack.admin('DELETE', `/v1/webhooks/${res.body.id}`)).body.code).toBe('webhook_not_found');
    const deletedAudit = await stack.database.db.selectFrom('audit_log').select('data').where('action', '=', 'webhook.deleted').execute();
    expect(deletedAudit).toHaveLength(1);
  });

  it('bad input is 400 and changes nothing; a tenant credential or none is refused', async () => {
    const before = await stack.database.db.selectFrom('webhook_endpoints').select('id').execute();
    for (const body of [
      {},
      { url: 'not a url' },
      { url: 'ftp://billing.example.com/hook' },
      { url: receiver.url('/x'), events: ['tenant.exploded'] },
      { url: receiver.url('/x'), events: [] },
      { url: receiver.url('/x'), extra: 1 },
      { url: `https://user:pw@billing.example.com/hook` },
    ]) {
      const res = await stack.admin('POST', '/v1/webhooks', { body });
      expect([res.status, res.body.code], JSON.stringify(body)).toEqual([400, 'validation_failed']);
    }
    for (const id of ['nope', 'whe_123', "whe_' OR 1=1"]) expect((await stack.admin('DELETE', `/v1/webhooks/${encodeURIComponent(id)}`)).status).toBe(400);
    expect((await request(stack.api.baseUrl, 'GET', '/v1/webhooks')).status).toBe(401);
    const { token } = await stack.signUpTenant({ orgName: 'Nosy Tenant' });
    const asTenant = await request(stack.api.baseUrl, 'POST', '/v1/webhooks', { token, body: { url: receiver.url('/tenant') } });
    expect([401, 403]).toContain(asTenant.status);
    expect(await stack.database.db.selectFrom('webhook_endpoints').select('id').execute()).toEqual(before);
  });
});

describe('events, signed and delivered', () => {
  it('tenant.provisioned (worker), tenant.suspended and tenant.deleted (api): verified with the standardwebhooks library', async () => {
    const all = await register('/all');
    const deletesOnly = await register('/deletes', { events: ['tenant.deleted'] });
    const tenantId = await activeTenant('Webhook Co');

    const [provisioned] = await waitForDeliveries('/all', 1);
    const event = verify(all.secret, provisioned!);
    expect(event).toMatchObject({ type: 'tenant.provisioned', data: { tenant: { id: tenantId, status: 'active', plan: 'pro' } } });
    expect(provisioned!.headers['webhook-id']).toMatch(/^msg_[0-9a-f]{32}$/);
    expect(provisioned!.headers['content-type']).toBe('application/json');

    expect((await stack.admin('POST', `/v1/tenants/${tenantId}/suspend`, { body: { reason: 'unpaid' } })).status).toBe(200);
    expect((await stack.admin('DELETE', `/v1/tenants/${tenantId}`)).status).toBe(200);
    const received = await waitForDeliveries('/all', 3);
    const types = received.map((r) => verify(all.secret, r).type);
    expect(types.sort()).toEqual(['tenant.deleted', 'tenant.provisioned', 'tenant.suspended']);
    const suspended = received.map((r) => verify(all.secret, r)).find((e) => e.type === 'tenant.suspended')!;
    expect(suspended.data).toMatchObject({ tenant: { id: tenantId, status: 'suspended' }, previousStatus: 'active', reason: 'unpaid' });

    // Subscribed to deletions only: exactly that one, signed with its own secret.
    const [deletion] = await waitForDeliveries('/deletes', 1);
    expect(verify(deletesOnly.secret, deletion!)).toMatchObject({ type: 'tenant.deleted', data: { tenant: { id: tenantId, status: 'pending_deletion' } } });
    expect(() => verify(all.secret, deletion!)).toThrow();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(receiver.at('/deletes')).toHaveLength(1);

    // Every delivery recorded one successful attempt.
    const attempts = await attemptsOf(deliveryUuidOf(deletion!));
    expect(attempts).toEqual([expect.objectContaining({ attempt: 1, status_code: 204, error: null })]);
    for (const path of ['/all', '/deletes']) await stack.admin('DELETE', `/v1/webhooks/${(path === '/all' ? all : deletesOnly).id}`);
  });

  it('restore and purge are announced too: tenant.purged says the data is gone for good', async () => {
    const endpoint = await register('/endings', { events: ['tenant.restored', 'tenant.purged'] });
    const tenantId = await activeTenant('Ending Co');
    expect((await stack.admin('DELETE', `/v1/tenants/${tenantId}`)).status).toBe(200);
    expect((await stack.admin('POST', `/v1/tenants/${tenantId}/restore`, { body: {} })).status).toBe(200);
    expect((await stack.admin('DELETE', `/v1/tenants/${tenantId}`)).status).toBe(200);
    // Past the retention (30 days): the worker purges it.
    expect(await worker.purge(new Date(Date.now() + 31 * 86_400_000))).toBeGreaterThanOrEqual(1);
    // Other tenants deleted earlier in this file are purged by the same pass: look at this one's.
    const events = await waitFor(async () => {
      const mine = receiver.at('/endings').map((r) => verify(endpoint.secret, r)).filter((e) => e.data.tenant.id === tenantId);
      return mine.length >= 2 ? mine : undefined;
    });
    expect(events.map((e) => [e.type, e.data.tenant.id, e.data.tenant.status])).toEqual([
      ['tenant.restored', tenantId, 'active'],
      ['tenant.purged', tenantId, 'deleted'],
    ]);
    await stack.admin('DELETE', `/v1/webhooks/${endpoint.id}`);
  });

  it('a change that fails (an illegal transition) announces nothing', async () => {
    const rollback = await register('/rollback');
    const tenantId = await activeTenant('Rollback Co');
    await waitForDeliveries('/rollback', 1);
    const before = await stack.database.db.selectFrom('webhook_events').select('id').execute();
    const res = await stack.admin('POST', `/v1/tenants/${tenantId}/unsuspend`, { body: {} });
    expect([res.status, res.body.code]).toEqual([409, 'illegal_transition']);
    expect(await stack.database.db.selectFrom('webhook_events').select('id').execute()).toEqual(before);
    await stack.admin('DELETE', `/v1/webhooks/${rollback.id}`);
  });
});

describe('retries', () => {
  it('a receiver answering 500 gets the same webhook-id again until it answers 2xx; each attempt is recorded', async () => {
    const endpoint = await register('/flaky');
    receiver.plans.set('/flaky', [500, 500]);
    const tenantId = await activeTenant('Flaky Co');
    const received = await waitForDeliveries('/flaky', 3);
    expect(new Set(received.map((r) => r.headers['webhook-id'])).size).toBe(1);
    // The same event each time (signed afresh, with the attempt's own timestamp).
    expect(received.map((r) => verify(endpoint.secret, r).data.tenant.id)).toEqual([tenantId, tenantId, tenantId]);
    const attempts = await waitFor(async () => {
      const rows = await attemptsOf(deliveryUuidOf(received[0]!));
      return rows.length === 3 ? rows : undefined;
    });
    expect(attempts.map((a) => [a.attempt, a.status_code, a.error])).toEqual([
      [1, 500, 'answered 500'],
      [2, 500, 'answered 500'],
      [3, 204, null],
    ]);
    const delivery = await stack.database.db.selectFrom('webhook_deliveries').selectAll().where('id', '=', deliveryUuidOf(received[0]!)).executeTakeFirstOrThrow();
    expect(delivery).toMatchObject({ status: 'delivered', attempts: 3 });
    // Succeeded in the end: the endpoint is not failing.
    expect((await stack.admin('GET', '/v1/webhooks')).body.items.find((e: { id: string }) => e.id === endpoint.id)).toMatchObject({ status: 'enabled', failingSince: null });
    await stack.admin('DELETE', `/v1/webhooks/${endpoint.id}`);
  });

  it('a receiver that does not answer in time: the attempt times out and is retried; a redirect is not followed', async () => {
    const hang = await register('/hang');
    const redirect = await register('/redirect');
    receiver.plans.set('/hang', ['hang']);
    receiver.plans.set('/redirect', ['redirect']);
    await activeTenant('Slow Co');
    const received = await waitForDeliveries('/hang', 2);
    const attempts = await waitFor(async () => {
      const rows = await attemptsOf(deliveryUuidOf(received[0]!));
      return rows.length === 2 ? rows : undefined;
    });
    expect(attempts[0]).toMatchObject({ attempt: 1, status_code: null, error: 'no answer within 700 ms' });
    expect(attempts[0]!.duration_ms).toBeGreaterThanOrEqual(650);
    expect(attempts[1]).toMatchObject({ attempt: 2, status_code: 204 });
    expect(received[1]!.headers['webhook-id']).toBe(received[0]!.headers['webhook-id']);

    const redirected = await waitForDeliveries('/redirect', 2);
    expect(receiver.at('/elsewhere')).toHaveLength(0);
    const redirectAttempts = await waitFor(async () => {
      const rows = await attemptsOf(deliveryUuidOf(redirected[0]!));
      return rows.length === 2 ? rows : undefined;
    });
    expect(redirectAttempts[0]).toMatchObject({ status_code: 307, error: 'answered 307: redirects are not followed' });
    for (const e of [hang, redirect]) await stack.admin('DELETE', `/v1/webhooks/${e.id}`);
  });

  it('a receiver that is down while the worker restarts gets the event later, with the same webhook-id', async () => {
    const down = await new Receiver().start();
    const port = down.port;
    const res = await stack.admin('POST', '/v1/webhooks', { body: { url: down.url('/down') } });
    const secret = res.body.secret as string;
    issuedSecrets.push(secret);
    await down.stop();

    const tenantId = await activeTenant('Down Co');
    const delivery = await waitFor(async () => {
      const row = await stack.database.db
        .selectFrom('webhook_deliveries')
        .selectAll()
        .where('endpoint_id', '=', fromPublicId('whe', res.body.id)!)
        .where('attempts', '>=', 1)
        .executeTakeFirst();
      return row;
    });
    expect((await attemptsOf(delivery.id))[0]!.error).toMatch(/ECONNREFUSED/);

    await worker.close();
    const back = await new Receiver().start(port);
    try {
      worker = await startOurWorker();
      const [got] = await waitFor(async () => (back.at('/down').length > 0 ? back.at('/down') : undefined), 20_000);
      expect(got!.headers['webhook-id']).toBe(`msg_${delivery.id.replaceAll('-', '')}`);
      expect(verify(secret, got!)).toMatchObject({ type: 'tenant.provisioned', data: { tenant: { id: tenantId } } });
    } finally {
      await back.stop();
      await stack.admin('DELETE', `/v1/webhooks/${res.body.id}`);
    }
  });

  it('deliveries whose jobs were lost (Redis flushed) are re-enqueued by the reconciler', async () => {
    const endpoint = await register('/flushed', { events: ['tenant.suspended'] });
    await worker.close();
    const tenantId = await activeTenantWithoutWorker('Flushed Co');
    // The api enqueued the suspension's delivery; the queue's keys vanish.
    expect((await stack.admin('POST', `/v1/tenants/${tenantId}/suspend`, { body: { reason: 'flush test' } })).status).toBe(200);
    await deleteRedisKeys(`${stack.prefix}:webhooks`);
    worker = await startOurWorker();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(receiver.at('/flushed')).toHaveLength(0);
    expect(await worker.reconcileWebhooks(0)).toBeGreaterThanOrEqual(1);
    const [got] = await waitForDeliveries('/flushed', 1);
    expect(verify(endpoint.secret, got!)).toMatchObject({ type: 'tenant.suspended', data: { tenant: { id: tenantId } } });
    await stack.admin('DELETE', `/v1/webhooks/${endpoint.id}`);
  });

  it('an endpoint that has failed without a break for a day is disabled, audited, and its pending deliveries cancelled', async () => {
    const endpoint = await register('/broken');
    const uuid = fromPublicId('whe', endpoint.id)!;
    // It has been failing since yesterday (set in the database: a day is long for a test).
    await stack.database.db.updateTable('webhook_endpoints').set({ failing_since: new Date(Date.now() - 25 * 3_600_000) }).where('id', '=', uuid).execute();
    receiver.plans.set('/broken', [500, 500, 500, 500]);
    await activeTenant('Broken Co');
    const listed = await waitFor(async () => {
      const item = (await stack.admin('GET', '/v1/webhooks')).body.items.find((e: { id: string }) => e.id === endpoint.id);
      return item?.status === 'disabled' ? item : undefined;
    });
    expect(listed.disabledReason).toMatch(/^every attempt failed since .* \(last: answered 500\)$/);
    expect(receiver.at('/broken')).toHaveLength(1);
    const deliveries = await stack.database.db.selectFrom('webhook_deliveries').select('status').where('endpoint_id', '=', uuid).execute();
    expect(deliveries.map((d) => d.status)).toEqual(['cancelled']);
    const audit = await stack.database.db.selectFrom('audit_log').select(['actor', 'data']).where('action', '=', 'webhook.disabled').execute();
    expect(audit).toEqual([{ actor: 'system:worker', data: expect.objectContaining({ endpointId: endpoint.id }) }]);

    // A disabled endpoint gets nothing new.
    await activeTenant('After Broken Co');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(receiver.at('/broken')).toHaveLength(1);
    await stack.admin('DELETE', `/v1/webhooks/${endpoint.id}`);
  });
});

/** Provisioning needs a worker: start one briefly when the main one is stopped. */
async function activeTenantWithoutWorker(name: string): Promise<string> {
  const temporary = await startOurWorker();
  try {
    return await activeTenant(name);
  } finally {
    await temporary.close();
  }
}

describe('docs/billing.md', () => {
  it('its TypeScript receiver verifies and accepts a real delivery', async () => {
    const docs = readFileSync(new URL('../docs/billing.md', import.meta.url), 'utf8');
    const code = /### Receiving: TypeScript[\s\S]*?```ts\n([\s\S]*?)```/.exec(docs)?.[1];
    expect(code).toBeDefined();
    const dir = new URL('./api-docs/.run/', import.meta.url);
    mkdirSync(dir, { recursive: true });
    const file = new URL(`receiver-${Date.now()}.ts`, dir);
    writeFileSync(file, code!);

    const port = await freePort();
    const endpoint = await stack.admin('POST', '/v1/webhooks', { body: { url: `http://127.0.0.1:${port}/`, events: ['tenant.suspended'] } });
    issuedSecrets.push(endpoint.body.secret);
    const child = spawn(process.execPath, ['--import', 'tsx', file.pathname], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', PORT: String(port), TENANTRY_WEBHOOK_SECRET: endpoint.body.secret },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: '{}' }).then((r) => r.status === 400)) || undefined, 20_000);
      const tenantId = await activeTenant('Docs Receiver Co');
      expect((await stack.admin('POST', `/v1/tenants/${tenantId}/suspend`, { body: { reason: 'docs' } })).status).toBe(200);
      await waitFor(async () => (output.includes(`tenant.suspended ${tenantId}`) ? true : undefined), 15_000);
      // The receiver prints the event before it answers, and the worker records the
      // delivery only once the answer is in: wait for the record to leave `pending`.
      const status = await waitFor(async () => {
        const delivery = await stack.database.db.selectFrom('webhook_deliveries').select(['status']).where('endpoint_id', '=', fromPublicId('whe', endpoint.body.id)!).executeTakeFirstOrThrow();
        return delivery.status === 'pending' ? undefined : delivery.status;
      }, 15_000);
      expect(status).toBe('delivered');
    } finally {
      child.kill();
      await stack.admin('DELETE', `/v1/webhooks/${endpoint.body.id}`);
    }
  });
});

describe('without WEBHOOK_ALLOW_PRIVATE_TARGETS', () => {
  let strict: RunningApi;
  beforeAll(async () => {
    strict = await startApi({ DATABASE_URL: stack.database.url, REDIS_PREFIX: `${stack.prefix}-strict` });
  });
  afterAll(async () => strict?.close());

  it.each([
    'http://billing.example.com/hook',
    'https://127.0.0.1/hook',
    'https://10.0.0.8/hook',
    'https://169.254.169.254/latest/meta-data/',
    'https://100.64.1.1/hook',
    'https://[::1]/hook',
    'https://[fc00::1]/hook',
    'https://[::ffff:10.0.0.1]/hook',
    'https://localhost/hook',
    'https://api.localhost/hook',
  ])('registering %s is refused (400)', async (url) => {
    const res = await request(strict.baseUrl, 'POST', '/v1/webhooks', { token: 'tpk_test-platform-key-for-the-suite', body: { url } });
    expect([res.status, res.body.code, res.body.fields?.[0]?.field]).toEqual([400, 'validation_failed', 'url']);
  });

  it('an https URL on a public name is accepted (its addresses are checked at delivery)', async () => {
    const res = await request(strict.baseUrl, 'POST', '/v1/webhooks', { token: 'tpk_test-platform-key-for-the-suite', body: { url: 'https://billing.example.com/hooks/tenantry', events: ['invoice.finalized'] } });
    expect(res.status).toBe(201);
    await request(strict.baseUrl, 'DELETE', `/v1/webhooks/${res.body.id}`, { token: 'tpk_test-platform-key-for-the-suite' });
  });
});

describe('secrets stay secret', () => {
  it('no signing secret ever reached the logs (api and worker at trace level)', async () => {
    const secrets = issuedSecrets;
    expect(secrets.length).toBeGreaterThan(3);
    expect(logLines.length).toBeGreaterThan(10);
    const logs = logLines.join('\n');
    for (const secret of secrets) {
      expect(logs).not.toContain(secret);
      expect(logs).not.toContain(secret.slice(6));
    }
  });
});
