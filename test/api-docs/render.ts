import type { JsonSchema, OpenApiDocument, OpenApiOperation } from '../../apps/api/src/http/openapi.js';
import { EXAMPLES, type Example, type ExampleValue } from './examples.js';

/**
 * docs/api.md, rendered from the OpenAPI document (routes, parameters, fields, statuses)
 * and the worked examples. Nothing in it is written by hand, so it cannot drift: the docs
 * test regenerates it and compares.
 */

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete' | 'head';

export interface Operation {
  method: Method;
  path: string;
  op: OpenApiOperation;
}

export function operationsOf(doc: OpenApiDocument): Map<string, Operation> {
  const ops = new Map<string, Operation>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item) as Array<[Method, OpenApiOperation]>) ops.set(op.operationId, { method, path, op });
  }
  return ops;
}

function typeOf(schema: JsonSchema | undefined): string {
  if (!schema) return 'any';
  if (schema.$ref) return String(schema.$ref).split('/').at(-1)!;
  if (Array.isArray(schema.enum)) return (schema.enum as unknown[]).map((v) => `\`${JSON.stringify(v)}\``).join(' \\| ');
  if (Array.isArray(schema.anyOf)) return (schema.anyOf as JsonSchema[]).map(typeOf).join(' \\| ');
  if (schema.type === 'array') return `${typeOf(schema.items as JsonSchema)}[]`;
  if (Array.isArray(schema.type)) return (schema.type as string[]).join(' \\| ');
  return String(schema.type ?? 'any');
}

function constraints(schema: JsonSchema): string {
  const parts: string[] = [];
  if (schema.minLength !== undefined) parts.push(`min ${schema.minLength} chars`);
  if (schema.maxLength !== undefined) parts.push(`max ${schema.maxLength} chars`);
  if (schema.minimum !== undefined) parts.push(`≥ ${schema.minimum}`);
  if (schema.maximum !== undefined) parts.push(`≤ ${schema.maximum}`);
  if (schema.pattern !== undefined) parts.push(`pattern \`${schema.pattern}\``);
  if (schema.default !== undefined) parts.push(`default \`${JSON.stringify(schema.default)}\``);
  if (schema.format !== undefined) parts.push(`format ${schema.format}`);
  return parts.join(', ');
}

function fieldTable(schema: JsonSchema): string[] {
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((schema.required ?? []) as string[]);
  if (Object.keys(properties).length === 0) return ['(no fields)'];
  return [
    '| field | type | required | rules |',
    '|---|---|---|---|',
    ...Object.entries(properties).map(([name, s]) => `| \`${name}\` | ${typeOf(s)} | ${required.has(name) ? 'yes' : 'no'} | ${constraints(s)} |`),
  ];
}

// ---- snippets --------------------------------------------------------------------------

/** What a route answers on success: JSON, the raw content, an event stream, or nothing (HEAD, 204). */
export type ResponseKind = 'json' | 'raw' | 'stream' | 'none';

export function responseKind(op: OpenApiOperation): ResponseKind {
  const [, success] = Object.entries(op.responses).find(([status]) => status.startsWith('2'))!;
  const content = success.content ?? {};
  if (content['text/event-stream']) return 'stream';
  if (content['application/json']) return 'json';
  if (content['*/*']) return 'raw';
  return 'none';
}

/** Routes whose bytes are not JSON are REST only: their TypeScript example uses fetch, not the SDK. */
const restOnly = (op: OpenApiOperation) => responseKind(op) === 'raw' || op.requestBody?.content['*/*'] !== undefined || op.operationId === 'files.head';

function isEnv(value: ExampleValue): value is { env: string } {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length === 1 && 'env' in value;
}

function urlOf(example: Example, path: string, lang: 'sh' | 'py'): string {
  const filled = path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = example.path?.[name];
    if (value === undefined) throw new Error(`${example.operationId}: no example for path parameter ${name}`);
    if (isEnv(value)) return lang === 'sh' ? `$${value.env}` : `{os.environ['${value.env}']}`;
    return encodeURIComponent(String(value));
  });
  return lang === 'sh' ? `$TENANTRY_URL${filled}` : `{os.environ['TENANTRY_URL']}${filled}`;
}

const CREDENTIAL = { tenant: 'TENANTRY_TOKEN', platform: 'TENANTRY_PLATFORM_KEY' } as const;

function curlSnippet(example: Example, { method, path, op }: Operation): string {
  const query = queryString(example);
  const kind = responseKind(op);
  // -g: brackets in the query are literal, not curl's URL globbing. -N: print events as they come.
  // HEAD with --head (with -X HEAD curl would wait for a body that never comes).
  const verb = method === 'head' ? '--head' : `-X ${method.toUpperCase()}`;
  const lines = [`curl -sS --fail-with-body${kind === 'stream' ? ' -N' : ''}${query.includes('[') ? ' -g' : ''} ${verb} "${urlOf(example, path, 'sh')}${query}"`];
  if (example.auth !== 'none') lines.push(`  -H "Authorization: Bearer $${CREDENTIAL[example.auth]}"`);
  for (const [name, value] of Object.entries(example.headers ?? {})) lines.push(`  -H '${name}: ${value}'`);
  if (example.body) {
    lines.push(`  -H 'Content-Type: application/json'`);
    lines.push(`  -d '${JSON.stringify(example.body)}'`);
  }
  if (example.rawBody) {
    lines.push(`  -H 'Content-Type: ${example.rawBody.contentType}'`);
    lines.push(`  --data-binary '${example.rawBody.text}'`);
  }
  return lines.join(' \\\n');
}

/** Query parameters as the REST api reads them: one level of maps in brackets, `where[status]=open`. */
function flatQuery(query: Record<string, ExampleValue>): Record<string, ExampleValue> {
  const flat: Record<string, ExampleValue> = {};
  for (const [key, value] of Object.entries(query)) {
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && !isEnv(value)) {
      for (const [inner, v] of Object.entries(value)) flat[`${key}[${inner}]`] = v;
    } else {
      flat[key] = value;
    }
  }
  return flat;
}

function queryString(example: Example): string {
  if (!example.query) return '';
  const params = Object.entries(flatQuery(example.query)).map(([k, v]): [string, string] => [k, String(v)]);
  // Brackets stay readable in the docs; curl sends them as they are.
  return `?${new URLSearchParams(params).toString().replaceAll('%5B', '[').replaceAll('%5D', ']')}`;
}

function pyLiteral(value: ExampleValue): string {
  if (isEnv(value)) return `os.environ['${value.env}']`;
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (typeof value === 'number') return String(value);
  if (Array.isArray(value)) return `[${value.map(pyLiteral).join(', ')}]`;
  return `{${Object.entries(value)
    .map(([k, v]) => `${JSON.stringify(k)}: ${pyLiteral(v)}`)
    .join(', ')}}`;
}

function pythonSnippet(example: Example, { method, path, op }: Operation): string {
  const kind = responseKind(op);
  const args = [`f"${urlOf(example, path, 'py')}"`];
  if (example.query) args.push(`params=${pyLiteral(flatQuery(example.query))}`);
  if (example.body) args.push(`json=${pyLiteral(example.body)}`);
  if (example.rawBody) args.push(`data=${pyLiteral(example.rawBody.text)}.encode()`);
  const headers = [
    ...(example.auth !== 'none' ? [`"Authorization": f"Bearer {os.environ['${CREDENTIAL[example.auth]}']}"`] : []),
    ...Object.entries(example.headers ?? {}).map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`),
    ...(example.rawBody ? [`"Content-Type": ${JSON.stringify(example.rawBody.contentType)}`] : []),
  ];
  if (headers.length > 0) args.push(`headers={${headers.join(', ')}}`);
  if (kind === 'stream') {
    return [
      'import os, requests',
      '',
      '# Server-Sent Events: one "event:", "id:" and "data:" line per field, a blank line between events.',
      `with requests.get(${args.join(', ')}, stream=True, timeout=(10, None)) as response:`,
      '    response.raise_for_status()',
      '    for line in response.iter_lines(decode_unicode=True):',
      '        print(line, flush=True)',
    ].join('\n');
  }
  const output = {
    json: 'print(json.dumps(response.json(), indent=2))',
    raw: 'print(response.text)',
    none: method === 'head' ? 'print(json.dumps(dict(response.headers), indent=2))' : 'print(response.status_code)',
  }[kind];
  return ['import json, os, requests', '', `response = requests.${method}(${args.join(', ')}, timeout=10)`, 'response.raise_for_status()', output].join('\n');
}

function tsLiteral(value: ExampleValue): string {
  if (isEnv(value)) return `process.env.${value.env}!`;
  if (typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(tsLiteral).join(', ')}]`;
  return `{ ${Object.entries(value)
    .map(([k, v]) => `${/^[A-Za-z_]\w*$/.test(k) ? k : JSON.stringify(k)}: ${tsLiteral(v)}`)
    .join(', ')} }`;
}

/** A REST-only route from TypeScript: fetch. */
function fetchSnippet(example: Example, { method, path, op }: Operation): string {
  const url = `\`\${process.env.TENANTRY_URL}${path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = example.path?.[name];
    return isEnv(value!) ? `\${process.env.${value.env}}` : encodeURIComponent(String(value)).replaceAll('%2F', '/');
  })}${queryString(example)}\``;
  const headers = [
    ...(example.auth !== 'none' ? [`Authorization: \`Bearer \${process.env.${CREDENTIAL[example.auth]}}\``] : []),
    ...Object.entries(example.headers ?? {}).map(([k, v]) => `${/^[A-Za-z_]\w*$/.test(k) ? k : JSON.stringify(k)}: ${JSON.stringify(v)}`),
    ...(example.rawBody ? [`'Content-Type': ${JSON.stringify(example.rawBody.contentType)}`] : []),
  ];
  const init = [`method: '${method.toUpperCase()}'`, `headers: { ${headers.join(', ')} }`, ...(example.rawBody ? [`body: ${JSON.stringify(example.rawBody.text)}`] : [])];
  const kind = responseKind(op);
  const output = { json: 'await response.json()', raw: 'await response.text()', none: 'Object.fromEntries(response.headers)', stream: '' }[kind];
  return [
    '// Files are REST only (their bytes are not JSON): plain fetch, no SDK.',
    `const response = await fetch(${url}, { ${init.join(', ')} });`,
    'if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);',
    `console.log(${kind === 'raw' ? output : `JSON.stringify(${output})`});`,
  ].join('\n');
}

function typescriptSnippet(example: Example, operation: Operation): string {
  const { method, op } = operation;
  if (restOnly(op)) return fetchSnippet(example, operation);
  const client =
    example.auth === 'platform'
      ? `createAdminClient({ baseUrl: process.env.TENANTRY_URL!, platformKey: process.env.TENANTRY_PLATFORM_KEY! })`
      : example.auth === 'tenant'
        ? `createTenantClient({ baseUrl: process.env.TENANTRY_URL!, token: process.env.TENANTRY_TOKEN! })`
        : `createPublicClient({ baseUrl: process.env.TENANTRY_URL! })`;
  const factory = client.slice(0, client.indexOf('('));
  const input = { ...example.path, ...example.query, ...example.body };
  if (responseKind(op) === 'stream') {
    return [
      `import { ${factory} } from '@tenantry/sdk';`,
      '',
      `const client = ${client};`,
      '// Each event as it comes ({ id, data }); reconnects resume from the last id by themselves.',
      `client.${example.operationId}.subscribe(${tsLiteral(input)}, {`,
      '  onData: (event) => console.log(JSON.stringify(event)),',
      '  onError: (err) => console.error(err),',
      '});',
    ].join('\n');
  }
  const call = method === 'get' ? 'query' : 'mutate';
  const arg = Object.keys(input).length > 0 || call === 'mutate' ? tsLiteral(input) : '';
  const result = `await client.${example.operationId}.${call}(${arg})`;
  return [
    `import { ${factory} } from '@tenantry/sdk';`,
    '',
    `const client = ${client};`,
    responseKind(op) === 'none' ? `${result};\nconsole.log('done');` : `console.log(JSON.stringify(${result}));`,
  ].join('\n');
}

export interface Snippets {
  curl: string;
  typescript: string;
  python: string;
}

export function snippetsFor(example: Example, operation: Operation): Snippets {
  return { curl: curlSnippet(example, operation), typescript: typescriptSnippet(example, operation), python: pythonSnippet(example, operation) };
}

// ---- the page --------------------------------------------------------------------------

const WHO = { none: 'public', tenant: 'tenant session token', platform: 'platform API key' } as const;

export function renderApiReference(doc: OpenApiDocument): string {
  const ops = operationsOf(doc);
  const missing = [...ops.keys()].filter((id) => !EXAMPLES.some((e) => e.operationId === id));
  if (missing.length > 0) throw new Error(`operations without an example in test/api-docs/examples.ts: ${missing.join(', ')}`);

  const out: string[] = [
    '# API reference',
    '',
    '<!-- Generated by `npx -y pnpm@10.34.8 docs:api` from the OpenAPI document and test/api-docs/examples.ts. Do not edit by hand: the docs test fails when this file differs from what the api generates, and it runs every example below against a live api. -->',
    '',
    `REST under \`/v1\`, generated from the same procedures as the tRPC endpoint at \`/trpc\` (which the TypeScript SDK \`@tenantry/sdk\` uses). The machine-readable description is \`GET /v1/openapi.json\` (OpenAPI ${doc.openapi}).`,
    '',
    '**Errors** are an HTTP status and a JSON body `{ "code": "…", "message": "…" }`; validation errors (400, `validation_failed`) also list `fields: [{ "field", "message" }]`. Switch on `code`, not on `message`.',
    '',
    '**What a request may hold.** JSON is stored exactly as sent or refused with a 400 of its own code: a body over 1 MiB is 413 `payload_too_large`; nesting deeper than 64 levels is `json_too_deep`; invalid UTF-8 is `invalid_utf8`; a number a double cannot hold exactly (`1e400`, integers past 2^53 that would lose digits; send those as strings) is `number_not_exact`; a lone UTF-16 surrogate (`\\ud800`) is `invalid_string`; a `__proto__` key is `forbidden_key`; invalid percent-encoding in a path or query is `invalid_encoding`. A request that does not arrive within `REQUEST_TIMEOUT_MS` is 408 `request_timeout`; headers over 16 KiB are 431 `headers_too_large`. While Postgres or Redis cannot be reached, calls answer 503 `dependency_unavailable` with `Retry-After`.',
    '',
    '**tRPC batches** (`/trpc/a,b?batch=1`) hold at most 10 calls (400 `batch_too_large`), and each call meets every rate limit on its own.',
    '',
    '**Credentials**: `Authorization: Bearer <token>` — a tenant session token from `POST /v1/auth/login`, or a platform API key for the tenants routes. A missing or wrong credential is 401; a tenant token on a platform route is 403 `platform_key_required`.',
    '',
    'The examples assume these variables:',
    '',
    '```sh',
    'export TENANTRY_URL=http://127.0.0.1:3000',
    'export TENANTRY_PLATFORM_KEY=tpk_…   # printed once at first start, or set with PLATFORM_API_KEY',
    'export TENANTRY_TOKEN=tnt_s_…        # from POST /v1/auth/login',
    'export SIGNUP_ID=sgn_…               # from POST /v1/signup',
    'export API_KEY_ID=…                  # from POST /v1/api-keys',
    'export DOCUMENT_ID=…                 # from POST /v1/collections/notes/documents',
    'export WEBHOOK_ID=whe_…              # from POST /v1/webhooks',
    'export INVOICE_NUMBER=INV-…          # from GET /v1/tenants/{id}/invoices',
    '```',
    '',
    '## Routes',
    '',
    '| method | path | who | does |',
    '|---|---|---|---|',
  ];
  for (const example of EXAMPLES) {
    const operation = ops.get(example.operationId);
    if (!operation) throw new Error(`example for unknown operation ${example.operationId}`);
    out.push(`| ${operation.method.toUpperCase()} | \`/v1${operation.path.replace(/^\/v1/, '')}\` | ${WHO[example.auth]} | [${operation.op.summary}](#${anchor(example.operationId)}) |`);
  }
  for (const example of EXAMPLES) {
    const operation = ops.get(example.operationId)!;
    const { method, path, op } = operation;
    const [successStatus, success] = Object.entries(op.responses).find(([status]) => status.startsWith('2'))!;
    out.push('', `## ${example.operationId}`, '', `\`${method.toUpperCase()} ${path}\` — ${operation.op.summary}`, '', operation.op.description, '', `Who: ${WHO[example.auth]}. Success: **${successStatus}**.`);
    const params = op.parameters ?? [];
    if (params.length > 0) {
      out.push('', '**Parameters**', '', '| name | in | type | required | rules |', '|---|---|---|---|---|');
      for (const p of params) out.push(`| \`${p.name}\` | ${p.in} | ${typeOf(p.schema)} | ${p.required ? 'yes' : 'no'} | ${constraints(p.schema)} |`);
    }
    const jsonBody = op.requestBody?.content['application/json'];
    if (jsonBody) out.push('', '**Body** (JSON)', '', ...fieldTable(jsonBody.schema));
    else if (op.requestBody) out.push('', '**Body**: the content itself, of any media type (send its `Content-Type`); not JSON.');
    const kind = responseKind(op);
    if (kind === 'json') {
      out.push('', `**Response ${successStatus}**`, '', ...fieldTable(success.content!['application/json']!.schema));
      const files = Object.keys(success.content!).filter((type) => type !== 'application/json');
      if (files.length > 0) out.push('', `Or a file, as \`format\` asks: ${files.map((type) => `\`${type}\``).join(', ')}, with \`Content-Disposition: attachment\`.`);
    } else if (kind === 'raw') out.push('', `**Response ${successStatus}**: the content, with its \`Content-Type\`, \`Content-Length\`, \`ETag\` and \`Accept-Ranges\`.`);
    else if (kind === 'stream') out.push('', `**Response ${successStatus}**: \`text/event-stream\`; each event's \`data\`:`, '', ...eventTable(success.content!['text/event-stream']!.schema, doc));
    else out.push('', `**Response ${successStatus}**: no body${method === 'head' ? ' (the headers of a GET)' : ''}.`);
    const errors = Object.keys(op.responses).filter((s) => !s.startsWith('2'));
    out.push('', `**Errors**: ${errors.map((s) => `\`${s}\``).join(', ')} — see [errors](#api-reference).`);
    const snippets = snippetsFor(example, operation);
    out.push('', '```sh', snippets.curl, '```', '', '```ts', snippets.typescript, '```', '', '```python', snippets.python, '```');
  }
  out.push(
    '',
    '## Stripe webhook',
    '',
    '`POST /v1/billing/stripe/webhook` — for Stripe, not for people; it exists only when `STRIPE_WEBHOOK_SECRET` is set (404 otherwise), and is outside the OpenAPI document because its body must be verified byte for byte.',
    '',
    '- Verifies the `Stripe-Signature` header (5 minutes tolerance); a bad or missing signature is 400 `invalid_signature` and changes nothing.',
    '- Handles `customer.subscription.created|updated|deleted|paused|resumed|trial_will_end`. The tenant is `subscription.metadata.tenant_id` (`ten_…`); the plan is `metadata.plan`, else a single price `lookup_key` naming a plan.',
    '- `subscription.status` → subscription state: trialing → trial, active → active, past_due → grace, unpaid and canceled → expired, paused → suspended.',
    '- Idempotent by event id (a replay answers `{"received":true,"duplicate":true}` and changes nothing); an event older than the last one applied to the tenant changes nothing; a move the subscription state machine does not allow is recorded and ignored. Each event is recorded in `billing_events` with its outcome.',
    '- Subscribe the endpoint to the `customer.subscription.*` events only.',
  );
  return `${out.join('\n')}\n`;
}

/** The fields of each event type of a stream (its schema: a union of objects, maybe by reference). */
function eventTable(schema: JsonSchema, doc: OpenApiDocument): string[] {
  const resolve = (s: JsonSchema): JsonSchema => (typeof s.$ref === 'string' ? (doc.components.schemas[String(s.$ref).split('/').at(-1)!] ?? s) : s);
  const variants = ((resolve(schema).oneOf ?? resolve(schema).anyOf ?? [schema]) as JsonSchema[]).map(resolve);
  return variants.flatMap((variant) => {
    const type = ((variant.properties as Record<string, JsonSchema> | undefined)?.type ?? {}) as JsonSchema;
    const names = Array.isArray(type.enum) ? (type.enum as string[]) : type.const !== undefined ? [String(type.const)] : ['message'];
    return ['', `\`${names.join('` / `')}\``, '', ...fieldTable(variant)];
  });
}

function anchor(operationId: string): string {
  return operationId.toLowerCase().replace(/[^a-z0-9]+/g, '');
}
