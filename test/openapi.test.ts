import { type ValidationResult, compileErrors, validate } from '@readme/openapi-parser';
import { ROUTER_TAGS, appRouter } from '@tenantry/api';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpenApiDocument, type OpenApiOperation, createOpenApiDocument } from '../apps/api/src/http/openapi.js';
import { type RunningApi, startApi } from './support/apps.js';
import { type TestDatabase, createTestDatabase } from './support/database.js';
import { request, validSignup } from './support/http.js';
import { REPO_ROOT } from './support/process.js';
import { deleteRedisKeys, redisPrefix } from './support/redis.js';

const run = promisify(execFile);

let database: TestDatabase;
let api: RunningApi;
let doc: OpenApiDocument;
let docText: string;
const prefix = redisPrefix();
const SIGNUP_LIMIT = 2;

/** JSON Schema validation of bodies against the document's own schemas (draft 2020-12). */
let ajv: Ajv2020;

interface RestProcedure {
  path: string;
  method: string;
  restPath: string;
}

/** Every procedure of the real app router that is exposed over REST. */
function restProcedures(): RestProcedure[] {
  const procedures = appRouter._def.procedures as unknown as Record<string, { _def: { meta?: { rest?: { method: string; path: string } } } }>;
  return Object.entries(procedures).flatMap(([path, procedure]) => {
    const rest = procedure._def.meta?.rest;
    return rest ? [{ path, method: rest.method.toLowerCase(), restPath: rest.path }] : [];
  });
}

function operation(method: string, path: string): OpenApiOperation {
  const op = (doc.paths[path] as Record<string, OpenApiOperation> | undefined)?.[method];
  if (!op) throw new Error(`no ${method} ${path} in the document`);
  return op;
}

/** A JSON pointer into the document, as a URI fragment ajv can resolve. */
const pointer = (...tokens: string[]) => tokens.map((t) => '/' + encodeURIComponent(t.replaceAll('~', '~0').replaceAll('/', '~1'))).join('');

function schemaAt(...tokens: string[]): ValidateFunction {
  return ajv.compile({ $ref: `openapi.json#${pointer(...tokens)}` });
}

/** The validator of the documented response body for `status` (or `default`). */
function responseValidator(method: string, path: string, status: number): ValidateFunction {
  const key = String(status) in operation(method, path).responses ? String(status) : 'default';
  return schemaAt('paths', path, method, 'responses', key, 'content', 'application/json', 'schema');
}

function expectConforms(validator: ValidateFunction, body: unknown) {
  const ok = validator(body);
  expect(ok, `${JSON.stringify(body)}: ${ajv.errorsText(validator.errors)}`).toBe(true);
}

beforeAll(async () => {
  database = await createTestDatabase();
  api = await startApi({
    DATABASE_URL: database.url,
    REDIS_PREFIX: prefix,
    SIGNUP_RATE_LIMIT_PER_HOUR: String(SIGNUP_LIMIT),
    TRUST_PROXY: '1',
  });
  const res = await fetch(`${api.baseUrl}/v1/openapi.json`);
  expect(res.status).toBe(200);
  docText = await res.text();
  doc = JSON.parse(docText) as OpenApiDocument;
  // Not strict: the document root (openapi, paths, …) is not JSON Schema; the schemas in it are
  // checked against the 2020-12 meta-schema one by one below.
  ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
  ajv.addSchema(doc, 'openapi.json');
});

afterAll(async () => {
  await api?.close();
  await database?.drop();
  await deleteRedisKeys(prefix);
});

describe('the OpenAPI document', () => {
  it('is served at /v1/openapi.json as valid OpenAPI 3.1', async () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info.title).toBe('Tenantry API');
    // The parser dereferences (and mutates) what it is given.
    let result: ValidationResult;
    try {
      result = await validate(structuredClone(doc) as Parameters<typeof validate>[0]);
    } catch (err) {
      throw new Error(`validator threw: ${String(err)}`);
    }
    expect(result.valid, result.valid ? '' : compileErrors(result)).toBe(true);
    expect(result.warnings).toEqual([]);
  });

  it('embeds only valid draft 2020-12 schemas whose refs resolve', () => {
    const locations: string[][] = Object.keys(doc.components.schemas).map((name) => ['components', 'schemas', name]);
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item as Record<string, OpenApiOperation>)) {
        op.parameters?.forEach((_, i) => locations.push(['paths', path, method, 'parameters', String(i), 'schema']));
        // Every media type: JSON, a file's raw content, an event stream.
        for (const type of Object.keys(op.requestBody?.content ?? {})) locations.push(['paths', path, method, 'requestBody', 'content', type, 'schema']);
        for (const [status, response] of Object.entries(op.responses)) {
          for (const type of Object.keys(response.content ?? {})) locations.push(['paths', path, method, 'responses', status, 'content', type, 'schema']);
          for (const header of Object.keys(response.headers ?? {})) {
            locations.push(['paths', path, method, 'responses', status, 'headers', header, 'schema']);
          }
        }
      }
    }
    for (const location of locations) {
      const schema = location.reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], doc);
      expect(ajv.validateSchema(schema as object), `${location.join(' › ')}: ${ajv.errorsText()}`).toBe(true);
      expect(JSON.stringify(schema), location.join(' › ')).not.toContain('"$schema"');
      expect(() => schemaAt(...location), location.join(' › ')).not.toThrow();
    }
    expect(locations.length).toBeGreaterThan(20);
  });

  it('has an operation for every procedure with rest meta, and nothing else', () => {
    const procedures = restProcedures();
    expect(procedures.map((p) => p.path)).toEqual(expect.arrayContaining(['signup.create', 'signup.status', 'auth.login', 'auth.me', 'meta.openapi']));
    for (const procedure of procedures) {
      const op = operation(procedure.method, `/v1${procedure.restPath}`);
      expect(op.operationId).toBe(procedure.path);
      expect(op.tags).toEqual([procedure.path.split('.')[0]]);
    }
    const documented = Object.values(doc.paths).flatMap((item) => Object.values(item as Record<string, OpenApiOperation>).map((op) => op.operationId));
    expect(documented.sort()).toEqual(procedures.map((p) => p.path).sort());
  });

  it('describes signup.create: 202, a JSON body with email/password/orgName required, 400, 429 with Retry-After', () => {
    const op = operation('post', '/v1/signup');
    expect(op.operationId).toBe('signup.create');
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['202', '400', '429', '500']));
    expect(op.responses['200']).toBeUndefined();
    expect(op.security).toEqual([]);
    expect(op.requestBody?.required).toBe(true);
    const body = op.requestBody!.content['application/json']!.schema;
    expect(body.type).toBe('object');
    expect(body.required).toEqual(expect.arrayContaining(['email', 'password', 'orgName']));
    expect(body.required).not.toContain('isolation');
    expect(Object.keys(body.properties as object)).toEqual(['email', 'password', 'orgName', 'isolation']);
    expect(op.responses['429']!.headers?.['Retry-After']?.required).toBe(true);
    expect(op.responses['400']!.content!['application/json']!.schema).toEqual({ $ref: '#/components/schemas/Error' });
    // Public and without path parameters: no 401/403/404.
    expect(op.responses['401']).toBeUndefined();
    expect(op.responses['403']).toBeUndefined();
    expect(op.responses['404']).toBeUndefined();
  });

  it('describes auth: login is public and rate limited; me needs a bearer token', () => {
    const login = operation('post', '/v1/auth/login');
    expect(login.security).toEqual([]);
    expect(login.responses['429']).toBeDefined();
    const me = operation('get', '/v1/me');
    expect(me.operationId).toBe('auth.me');
    expect(me.security).toEqual([{ bearerAuth: [] }]);
    expect(me.responses['401']).toBeDefined();
    expect(me.responses['403']).toBeDefined();
    expect(me.requestBody).toBeUndefined();
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  it('puts path parameters in the path (required, with the input schema) and answers 404 for them', () => {
    const op = operation('get', '/v1/signup/{signupId}');
    expect(op.parameters).toEqual([{ name: 'signupId', in: 'path', required: true, schema: { type: 'string', maxLength: 64 } }]);
    expect(op.responses['404']).toBeDefined();
    expect(op.requestBody).toBeUndefined();
  });

  it('is deterministic: the same document whatever the order procedures are registered in', () => {
    const procedures = appRouter._def.procedures as Record<string, unknown>;
    const reversed = { _def: { procedures: Object.fromEntries(Object.entries(procedures).reverse()) } } as unknown as Parameters<typeof createOpenApiDocument>[0];
    const version = doc.info.version;
    expect(JSON.stringify(createOpenApiDocument(reversed, { version, tags: ROUTER_TAGS }))).toBe(docText);
    expect(JSON.stringify(createOpenApiDocument(appRouter, { version, tags: ROUTER_TAGS }))).toBe(docText);
    const withServer = createOpenApiDocument(appRouter, { version, tags: ROUTER_TAGS, serverUrl: 'https://api.example.com' });
    expect(withServer.servers).toEqual([{ url: 'https://api.example.com', description: 'The api that serves this document' }]);
    expect(Object.keys(withServer).slice(0, 3)).toEqual(['openapi', 'info', 'servers']);
  });
});

describe('the document passes the common OpenAPI linters', () => {
  const lint = async (command: string, args: string[]) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tenantry-openapi-'));
    const file = path.join(dir, 'openapi.json');
    writeFileSync(file, docText);
    try {
      const { stdout } = await run(path.join(REPO_ROOT, 'test/node_modules/.bin', command), [...args, file], { cwd: path.join(REPO_ROOT, 'test'), maxBuffer: 32 * 1024 * 1024 }).catch(
        (err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }),
      );
      return stdout;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('Redocly (recommended rules): zero errors, zero warnings', { timeout: 60_000 }, async () => {
    const report = JSON.parse(await lint('redocly', ['lint', '--config', 'openapi/redocly.yaml', '--format=json'])) as {
      totals: { errors: number; warnings: number };
      problems: Array<{ ruleId: string; message: string }>;
    };
    expect(report.problems.map((p) => `${p.ruleId}: ${p.message}`)).toEqual([]);
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
  });

  it('Spectral (spectral:oas): no finding of any severity', { timeout: 60_000 }, async () => {
    const output = await lint('spectral', ['lint', '--ruleset', 'openapi/spectral.yaml', '--format', 'json', '--fail-severity', 'hint']);
    const findings = JSON.parse(output.slice(output.indexOf('['), output.lastIndexOf(']') + 1)) as Array<{ code: string; message: string; path: string[] }>;
    expect(findings.map((f) => `${f.code}: ${f.message} at ${f.path.join('.')}`)).toEqual([]);
  });

  it('every operation has a summary and a description; public ones say they need no credential', () => {
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item as Record<string, OpenApiOperation>)) {
        expect(op.summary, `${method} ${path}`).toMatch(/\S/);
        expect(op.description, `${method} ${path}`).toMatch(/\S/);
        expect(op.security, `${method} ${path}`).toBeDefined();
      }
    }
    expect(operation('post', '/v1/signup').security).toEqual([]);
  });

  it('a route that may answer with a file lists its types beside JSON; its JSON is the document, never the file wrapper', () => {
    for (const path of ['/v1/tenants/{id}/invoices/{number}', '/v1/invoices/{number}']) {
      const ok = operation('get', path).responses['200']!;
      expect(Object.keys(ok.content ?? {}), path).toEqual(['application/json', 'text/csv', 'application/pdf']);
      expect(ok.content?.['application/pdf']?.schema).toEqual({ type: 'string', contentMediaType: 'application/pdf' });
      expect(ok.headers?.['Content-Disposition']?.required, path).toBe(false);
      expect(JSON.stringify(ok.content?.['application/json']?.schema), path).not.toContain('base64');
    }
    expect(Object.keys(operation('get', '/v1/me').responses['200']!.content ?? {})).toEqual(['application/json']);
  });

  it('a map in the query (where[field]=value) is a deepObject parameter, as the api reads it', () => {
    const where = operation('get', '/v1/collections/{collection}/documents').parameters!.find((p) => p.name === 'where');
    expect(where).toMatchObject({ in: 'query', style: 'deepObject', explode: true });
  });
});

describe('live responses conform to the document', () => {
  const from = (ip: string) => ({ 'x-forwarded-for': ip });

  it('a bad signup is a 400 matching the Error schema; the document agrees the input is bad', async () => {
    const bad = { email: 'not-an-email', password: 'short' };
    const res = await request(api.baseUrl, 'POST', '/v1/signup', { body: bad, headers: from('198.51.100.1') });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    expect(res.body.fields.length).toBeGreaterThan(0);
    expectConforms(responseValidator('post', '/v1/signup', 400), res.body);
    expectConforms(schemaAt('components', 'schemas', 'Error'), res.body);
    const requestSchema = schemaAt('paths', '/v1/signup', 'post', 'requestBody', 'content', 'application/json', 'schema');
    expect(requestSchema(bad)).toBe(false);
    expect(responseValidator('post', '/v1/signup', 400)({ code: 'x' })).toBe(false);
  });

  it('a good signup is accepted as documented (request and 202 body), and its status reads as documented', async () => {
    const body = validSignup();
    expectConforms(schemaAt('paths', '/v1/signup', 'post', 'requestBody', 'content', 'application/json', 'schema'), body);
    const res = await request(api.baseUrl, 'POST', '/v1/signup', { body, headers: from('198.51.100.2') });
    expect(res.status).toBe(202);
    expectConforms(responseValidator('post', '/v1/signup', 202), res.body);

    expectConforms(schemaAt('paths', '/v1/signup/{signupId}', 'get', 'parameters', '0', 'schema'), res.body.signupId);
    const status = await request(api.baseUrl, 'GET', `/v1/signup/${res.body.signupId}`);
    expect(status.status).toBe(200);
    expectConforms(responseValidator('get', '/v1/signup/{signupId}', 200), status.body);

    const missing = await request(api.baseUrl, 'GET', `/v1/signup/sgn_${'0'.repeat(32)}`);
    expect(missing.status).toBe(404);
    expectConforms(responseValidator('get', '/v1/signup/{signupId}', 404), missing.body);
  });

  it('/v1/me without a token is a documented 401', async () => {
    const res = await request(api.baseUrl, 'GET', '/v1/me');
    expect(res.status).toBe(401);
    expectConforms(responseValidator('get', '/v1/me', 401), res.body);
  });

  it('over the signup limit is a documented 429 with Retry-After', async () => {
    const ip = '198.51.100.3';
    for (let i = 0; i < SIGNUP_LIMIT; i++) {
      expect((await request(api.baseUrl, 'POST', '/v1/signup', { body: validSignup(), headers: from(ip) })).status).toBe(202);
    }
    const res = await request(api.baseUrl, 'POST', '/v1/signup', { body: validSignup(), headers: from(ip) });
    expect(res.status).toBe(429);
    expectConforms(responseValidator('post', '/v1/signup', 429), res.body);
    const retryAfter = Number(res.headers.get('retry-after'));
    expectConforms(schemaAt('paths', '/v1/signup', 'post', 'responses', '429', 'headers', 'Retry-After', 'schema'), retryAfter);
  });

  it('the document itself conforms to its own 200 schema', () => {
    expectConforms(responseValidator('get', '/v1/openapi.json', 200), doc);
  });
});
