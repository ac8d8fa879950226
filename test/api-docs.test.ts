import { execFile, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { appOpenApiDocument } from '@tenantry/api';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { EXAMPLES } from './api-docs/examples.js';
import { API_REFERENCE_PATH, generateApiReference } from './api-docs/generate.js';
import { type Snippets, operationsOf, responseKind, snippetsFor } from './api-docs/render.js';
import { PLATFORM_KEY } from './support/apps.js';
import { request, waitFor } from './support/http.js';
import { REPO_ROOT } from './support/process.js';
import { useStack } from './support/stack.js';
import { dropTenantDatabasesOf } from './support/tenant-databases.js';

const run = promisify(execFile);
const stack = useStack();
// The move example puts a tenant in a database of its own (server-wide): if a run stops half-way, it is left there.
afterAll(async () => {
  if (stack.database) await dropTenantDatabasesOf(stack.database.name);
});

/** A Python with `requests`: TEST_PYTHON, else python3, else Debian's (.ci/run installs python3-requests). */
async function pythonWithRequests(): Promise<string> {
  for (const candidate of [process.env.TEST_PYTHON, 'python3', '/usr/bin/python3'].filter((c): c is string => !!c)) {
    try {
      await run(candidate, ['-c', 'import requests']);
      return candidate;
    } catch {
      // try the next one
    }
  }
  throw new Error('no python3 with the requests package: install python3-requests (apt) or set TEST_PYTHON');
}

const RUN_DIR = new URL('./api-docs/.run/', import.meta.url);

/** The command that runs a snippet. */
function commandOf(language: keyof Snippets, code: string, python: string): [string, string[]] {
  if (language === 'curl') return ['bash', ['-c', code]];
  if (language === 'python') return [python, ['-c', code]];
  mkdirSync(RUN_DIR, { recursive: true });
  const file = new URL(`example-${Date.now()}-${Math.random().toString(36).slice(2)}.ts`, RUN_DIR);
  writeFileSync(file, code);
  // The SDK resolves to its source through the workspace condition; a user's install resolves to dist.
  return [process.execPath, ['--conditions=@tenantry/source', '--import', 'tsx', file.pathname]];
}

/** Run a snippet to its end; its output. */
async function runSnippet(language: keyof Snippets, code: string, env: Record<string, string>, python: string): Promise<string> {
  const options = { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env }, cwd: REPO_ROOT, timeout: 30_000 };
  const [command, args] = commandOf(language, code, python);
  return (await run(command, args, options)).stdout;
}

/**
 * Run a snippet that follows a stream (it never ends by itself, as a user's would not):
 * once it is listening, `trigger` makes something happen; its output is read until it
 * shows `expected`, then it is stopped.
 */
async function runStreamSnippet(language: keyof Snippets, code: string, env: Record<string, string>, python: string, trigger: () => Promise<unknown>, expected: string): Promise<string> {
  const [command, args] = commandOf(language, code, python);
  const child = spawn(command, args, { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env }, cwd: REPO_ROOT, detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  try {
    // Give it time to connect (the TypeScript one compiles first).
    await new Promise((resolve) => setTimeout(resolve, language === 'typescript' ? 3_000 : 1_500));
    await trigger();
    await waitFor(async () => (stdout.includes(expected) ? true : undefined), 15_000).catch(() => {
      throw new Error(`no "${expected}" in the output:\n${stdout}\n${stderr}`);
    });
    return stdout;
  } finally {
    process.kill(-child.pid!, 'SIGKILL');
  }
}

/** Record that a tenant was an active pro customer from 15 November 2026 (idempotent). */
async function customerSinceNovember(slug: string) {
  await sql`
    insert into tenant_billing_history (tenant_id, at, status, plan, plan_version)
    select t.id, '2026-11-15T00:00:00Z', 'active', 'pro', 1 from tenants t
    where t.slug = ${slug}
      and not exists (select 1 from tenant_billing_history h where h.tenant_id = t.id and h.at = '2026-11-15T00:00:00Z')`.execute(stack.database.db);
}

describe('docs/api.md', () => {
  it('is exactly what the api generates (regenerate with `pnpm docs:api`)', () => {
    expect(readFileSync(API_REFERENCE_PATH, 'utf8')).toBe(generateApiReference());
  });

  it('has an example for every operation of the OpenAPI document', () => {
    const ops = operationsOf(appOpenApiDocument() as never);
    expect(EXAMPLES.map((e) => e.operationId).sort()).toEqual([...ops.keys()].sort());
  });

  // One process per example (~60 of them; TypeScript compiles each): minutes under load, not seconds.
  it.each(['curl', 'python', 'typescript'] as const)('every %s example runs against a live api', async (language) => {
    const python = await pythonWithRequests();
    const ops = operationsOf(appOpenApiDocument() as never);
    const env: Record<string, string> = { TENANTRY_URL: stack.api.baseUrl, TENANTRY_PLATFORM_KEY: PLATFORM_KEY };
    for (const example of EXAMPLES) {
      // Acme has been a pro customer since 15 November, so that month has an invoice to show.
      if (example.operationId === 'invoices.close') await customerSinceNovember('acme-corp');
      const operation = ops.get(example.operationId)!;
      const code = snippetsFor(example, operation)[language];
      const kind = responseKind(operation.op);
      const fail = (err: Error & { stderr?: string; stdout?: string }) => {
        throw new Error(`${language} example ${example.operationId} failed: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
      };
      const text =
        kind === 'stream'
          ? await runStreamSnippet(
              language,
              code,
              env,
              python,
              () => request(stack.api.baseUrl, 'POST', '/v1/collections/notes/documents', { token: env.TENANTRY_TOKEN, body: { data: { title: 'Seen live' } } }),
              'document.created',
            ).catch(fail)
          : await runSnippet(language, code, env, python).catch(fail);
      const output = (kind === 'json' ? JSON.parse(text) : { text }) as Record<string, any>;

      // Carry what later examples need, and wait where the api works in the background.
      if (example.operationId === 'signup.create') {
        env.SIGNUP_ID = output.signupId;
        await waitFor(async () => ((await request(stack.api.baseUrl, 'GET', `/v1/signup/${output.signupId}`)).body.status === 'ready' ? true : undefined));
      }
      if (example.operationId === 'auth.login') env.TENANTRY_TOKEN = output.token;
      if (example.operationId === 'auth.me') expect(output.tenant.name).toBe('Acme Corp');
      if (example.operationId === 'tenants.create') {
        await waitFor(async () => ((await stack.admin('GET', '/v1/tenants/globex')).body.status === 'active' ? true : undefined));
      }
      if (example.operationId === 'tenants.list') expect(output.items.map((t: { slug: string }) => t.slug)).toContain('globex');
      if (example.operationId === 'tenants.suspend') expect(output.status).toBe('suspended');
      if (example.operationId === 'tenants.delete') expect(output.status).toBe('pending_deletion');
      if (example.operationId === 'tenants.restore') expect(output.status).toBe('active');
      if (example.operationId === 'moves.start') {
        expect(output.status).toBe('pending');
        env.MOVE_ID = output.moveId;
      }
      if (example.operationId === 'moves.get') {
        expect(output.moveId).toBe(env.MOVE_ID);
        // Let it finish, then move the tenant back, so the next language's examples can move it again.
        const done = async (moveId: string) =>
          waitFor(async () => ((await stack.admin('GET', `/v1/tenants/globex/moves/${moveId}`)).body.status === 'done' ? true : undefined), 60_000);
        await done(env.MOVE_ID!);
        const back = await stack.admin('POST', '/v1/tenants/globex/move', { body: { isolation: 'schema' } });
        expect(back.status).toBe(202);
        await done(back.body.moveId);
      }
      if (example.operationId === 'billing.update') expect(output.effective.limits.members).toBe(500);
      if (example.operationId === 'apiKeys.create') env.API_KEY_ID = output.id;
      if (example.operationId === 'documents.create') env.DOCUMENT_ID = output.id;
      if (example.operationId === 'documents.list') expect(output.items.length).toBeGreaterThan(0);
      if (example.operationId === 'documents.replace') expect(output.data.status).toBe('done');
      if (example.operationId === 'apiKeys.revoke') expect(output.revokedAt).not.toBeNull();
      if (example.operationId === 'audit.list') expect(output.items.length).toBeGreaterThan(0);
      if (example.operationId === 'pricing.estimate') expect(output.totalMinor).toBe(3766);
      if (example.operationId === 'webhooks.create') {
        expect(output.secret).toMatch(/^whsec_/);
        env.WEBHOOK_ID = output.id;
      }
      if (example.operationId === 'webhooks.list') expect(output.items.map((e: { id: string }) => e.id)).toContain(env.WEBHOOK_ID);
      if (example.operationId === 'webhooks.delete') expect(output.id).toBe(env.WEBHOOK_ID);
      if (example.operationId === 'meta.openapi') expect(output.openapi).toBe('3.1.0');
      if (example.operationId === 'invoices.close') expect(output).toMatchObject({ month: '2026-11', invoices: 1, failed: [] });
      if (example.operationId === 'invoices.list') {
        // The live one: the first run's, or the replacement an earlier language's void issued.
        const live = output.items.find((i: { status: string; voidedBy: string | null }) => i.status === 'finalized' && i.voidedBy === null);
        env.INVOICE_NUMBER = live.number;
      }
      if (example.operationId === 'invoices.get') expect(output).toMatchObject({ number: env.INVOICE_NUMBER, month: '2026-11', status: 'finalized' });
      if (example.operationId === 'invoices.upcoming') expect(output.status).toBe('draft');
      if (example.operationId === 'invoices.own') expect(output.items.map((i: { number: string }) => i.number)).toContain(env.INVOICE_NUMBER);
      if (example.operationId === 'invoices.ownGet') expect(output.number).toBe(env.INVOICE_NUMBER);
      if (example.operationId === 'invoices.void') expect(output).toMatchObject({ void: { voids: env.INVOICE_NUMBER }, replacement: { replaces: env.INVOICE_NUMBER } });
      if (example.operationId === 'realtime.subscribe') expect(output.text).toContain('Seen live');
      if (example.operationId === 'files.put') expect(output).toMatchObject({ key: 'reports/2026/q4.txt', contentType: 'text/plain', size: 30 });
      if (example.operationId === 'files.get') expect(output.text.trim()).toBe('Revenue');
      if (example.operationId === 'files.head') expect(output.text.toLowerCase()).toContain('etag');
      if (example.operationId === 'files.list') expect(output.items.map((f: { key: string }) => f.key)).toEqual(['reports/2026/q4.txt']);
    }
  }, 240_000);
});
