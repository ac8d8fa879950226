import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { appOpenApiDocument } from '@tenantry/api';
import { afterAll, describe, expect, it } from 'vitest';
import { EXAMPLES } from './api-docs/examples.js';
import { API_REFERENCE_PATH, generateApiReference } from './api-docs/generate.js';
import { type Snippets, operationsOf, snippetsFor } from './api-docs/render.js';
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

async function runSnippet(language: keyof Snippets, code: string, env: Record<string, string>, python: string): Promise<unknown> {
  const options = { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env }, cwd: REPO_ROOT, timeout: 30_000 };
  let stdout: string;
  if (language === 'curl') {
    ({ stdout } = await run('bash', ['-c', code], options));
  } else if (language === 'python') {
    ({ stdout } = await run(python, ['-c', code], options));
  } else {
    mkdirSync(RUN_DIR, { recursive: true });
    const file = new URL(`example-${Date.now()}-${Math.random().toString(36).slice(2)}.ts`, RUN_DIR);
    writeFileSync(file, code);
    // The SDK resolves to its source through the workspace condition; a user's install resolves to dist.
    ({ stdout } = await run(process.execPath, ['--conditions=@tenantry/source', '--import', 'tsx', file.pathname], options));
  }
  return JSON.parse(stdout);
}

describe('docs/api.md', () => {
  it('is exactly what the api generates (regenerate with `pnpm docs:api`)', () => {
    expect(readFileSync(API_REFERENCE_PATH, 'utf8')).toBe(generateApiReference());
  });

  it('has an example for every operation of the OpenAPI document', () => {
    const ops = operationsOf(appOpenApiDocument() as never);
    expect(EXAMPLES.map((e) => e.operationId).sort()).toEqual([...ops.keys()].sort());
  });

  it.each(['curl', 'python', 'typescript'] as const)('every %s example runs against a live api', async (language) => {
    const python = await pythonWithRequests();
    const ops = operationsOf(appOpenApiDocument() as never);
    const env: Record<string, string> = { TENANTRY_URL: stack.api.baseUrl, TENANTRY_PLATFORM_KEY: PLATFORM_KEY };
    for (const example of EXAMPLES) {
      const code = snippetsFor(example, ops.get(example.operationId)!)[language];
      const output = (await runSnippet(language, code, env, python).catch((err: Error & { stderr?: string; stdout?: string }) => {
        throw new Error(`${language} example ${example.operationId} failed: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
      })) as Record<string, any>;

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
    }
  });
});
