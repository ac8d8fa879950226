import { EXAMPLES } from '../../api-docs/examples.js';
import { type JsonResponse, request } from '../../support/http.js';

/**
 * The injection corpus, driven by the api's own OpenAPI document: every string input of
 * every operation — path and query parameters, body fields at any depth, the keys and
 * values of free-form objects (`data`, `where`), array items, and the bearer token — is
 * found by walking the document, so a new route or field is covered without editing this
 * file. A route the suite has no valid baseline request for fails the suite instead of
 * being skipped.
 */

/** Classic injection payloads (quotes, comments, stacked queries, casts, unicode, JSON paths). */
export const PAYLOADS = [
  "'", "''", '"', '`', ';', '--', '/*', '*/', "' OR '1'='1", "' OR 1=1 --", '" OR ""="', "'); DROP TABLE tenants; --",
  "1; DROP SCHEMA public CASCADE", "' UNION SELECT * FROM users --", "' UNION SELECT password_hash FROM users --",
  "admin'--", "1' AND SLEEP(5)--", "1 AND pg_sleep(5)", "'; select pg_sleep(5); --", "$$; drop table audit_log; $$",
  "\\", "\\'", '%', '%%', '_', '%_%', "' || (select current_user) || '", "1::int", "'::regclass", "t_00000000000000000000000000000000",
  '../../etc/passwd', '..%2f..%2f', '%00', '\u0000', 'NULL', 'null', 'undefined', 'true', '[]', '{}', '{"$ne":null}',
  '\u202e', 'é', '𝕏', '<script>alert(1)</script>', "${7*7}", '{{7*7}}', "data->>'owner'", "data #>> '{owner}'",
  "') or ('a'='a", "x' and tenant_id is not null --", "set_config('app.tenant_id','x',false)", 'a'.repeat(300), "ten_' OR 1=1",
  "'; reset role; --", "'; set role postgres; --", "current_setting('app.tenant_id')", '00000000-0000-0000-0000-000000000000',
];

type JsonSchema = {
  type?: string;
  anyOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: JsonSchema | boolean;
  items?: JsonSchema;
  enum?: unknown[];
};

interface OpenApiParameter {
  in: 'path' | 'query';
  name: string;
  schema: JsonSchema;
}

interface OpenApiOperation {
  operationId: string;
  parameters?: OpenApiParameter[];
  /** JSON, or the raw content of a file upload (any media type), whose bytes are no string input. */
  requestBody?: { content: Record<string, { schema: JsonSchema }> };
  responses?: Record<string, { content?: Record<string, unknown> }>;
}

export interface OpenApiDocumentLike {
  paths: Record<string, Record<string, OpenApiOperation>>;
}

/**
 * One string input. `key` slots put the payload where a free-form object takes field
 * names; `item` slots into an array of strings; `value` slots replace a string value.
 */
export interface Slot {
  in: 'path' | 'query' | 'body' | 'header';
  /** Parameter name, or the body field path (`data.*` = any field of `data`). */
  name: string;
  kind: 'value' | 'key' | 'item';
}

export type Auth = 'none' | 'tenant' | 'platform';

export interface Operation {
  operationId: string;
  method: string;
  path: string;
  auth: Auth;
  slots: Slot[];
  /** It answers an event stream: the corpus reads its status, then hangs up. */
  stream: boolean;
}

/** A valid request of an operation; the corpus changes one input of it at a time. */
export interface Baseline {
  path?: Record<string, string>;
  query?: Record<string, string | Record<string, string>>;
  body?: Record<string, unknown>;
}

const isString = (schema: JsonSchema | undefined): boolean =>
  !!schema && (schema.type === 'string' || (schema.anyOf?.some(isString) ?? false));

/** The string inputs of a JSON body schema, depth first. An unknown shape throws: nothing is skipped silently. */
function bodySlots(schema: JsonSchema, path: string[]): Slot[] {
  const name = path.join('.');
  if (schema.anyOf) {
    const seen = new Map<string, Slot>();
    for (const option of schema.anyOf) for (const slot of bodySlots(option, path)) seen.set(`${slot.name}/${slot.kind}`, slot);
    return [...seen.values()];
  }
  switch (schema.type) {
    case 'string':
      return [{ in: 'body', name, kind: 'value' }];
    case 'number':
    case 'integer':
    case 'boolean':
    case 'null':
      return [];
    case 'array':
      if (isString(schema.items)) return [{ in: 'body', name, kind: 'item' }];
      if (schema.items?.type === 'number' || schema.items?.type === 'integer') return [];
      throw new Error(`injection corpus: no rule for an array of ${JSON.stringify(schema.items)} at ${name}`);
    case 'object': {
      const slots = Object.entries(schema.properties ?? {}).flatMap(([key, value]) => bodySlots(value, [...path, key]));
      // A free-form object (any field name): its keys and its values are inputs too.
      if (schema.additionalProperties !== undefined && schema.additionalProperties !== false) {
        slots.push({ in: 'body', name, kind: 'key' }, { in: 'body', name: `${name}.*`, kind: 'value' });
      }
      return slots;
    }
    case undefined:
      // `{}`: any JSON value — a string is one.
      return [{ in: 'body', name, kind: 'value' }];
    default:
      throw new Error(`injection corpus: no rule for type ${schema.type} at ${name}`);
  }
}

function parameterSlots(parameter: OpenApiParameter): Slot[] {
  if (parameter.schema.type === 'object') {
    return [
      { in: parameter.in, name: parameter.name, kind: 'key' },
      { in: parameter.in, name: parameter.name, kind: 'value' },
    ];
  }
  // On the wire every parameter is a string, numbers included (`limit=' OR 1=1`).
  return [{ in: parameter.in, name: parameter.name, kind: 'value' }];
}

/** Every operation of the document with its string inputs; who may call it comes from the docs' examples. */
export function operationsOf(document: OpenApiDocumentLike): Operation[] {
  const auth = new Map(EXAMPLES.map((e) => [e.operationId, e.auth]));
  const operations: Operation[] = [];
  for (const [path, methods] of Object.entries(document.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const who = auth.get(op.operationId);
      if (!who) throw new Error(`injection corpus: ${op.operationId} has no example in test/api-docs/examples.ts`);
      const slots = [
        ...(op.parameters ?? []).flatMap(parameterSlots),
        ...(op.requestBody?.content['application/json'] ? bodySlots(op.requestBody.content['application/json'].schema, []) : []),
      ];
      // The credential is an input of every authenticated route: one route per kind carries it.
      if (op.operationId === 'auth.me' || op.operationId === 'tenants.list') slots.push({ in: 'header', name: 'authorization', kind: 'value' });
      const stream = Object.values(op.responses ?? {}).some((r) => r.content?.['text/event-stream'] !== undefined);
      operations.push({ operationId: op.operationId, method: method.toUpperCase(), path, auth: who, slots, stream });
    }
  }
  return operations;
}

function setIn(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    node[key] = typeof node[key] === 'object' && node[key] !== null ? { ...(node[key] as object) } : {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

/** The baseline with one slot set to the payload. */
export function inject(baseline: Baseline, slot: Slot, payload: string): Baseline & { token?: string } {
  const out: Baseline & { token?: string } = {
    path: { ...baseline.path },
    query: { ...baseline.query },
    body: baseline.body === undefined ? undefined : structuredClone(baseline.body),
  };
  if (slot.in === 'header') {
    out.token = payload;
  } else if (slot.in === 'path') {
    out.path![slot.name] = payload;
  } else if (slot.in === 'query') {
    if (slot.kind === 'key') out.query![slot.name] = { [payload]: 'x' };
    else if (slot.kind === 'value' && typeof baseline.query?.[slot.name] === 'object') out.query![slot.name] = { field: payload };
    else out.query![slot.name] = payload;
  } else {
    out.body ??= {};
    const path = slot.name === '' ? [] : slot.name.split('.');
    if (slot.kind === 'key') setIn(out.body, [...path, payload], 'x');
    else if (slot.kind === 'item') setIn(out.body, path, [payload]);
    else setIn(out.body, path.map((p) => (p === '*' ? 'field' : p)), payload);
  }
  return out;
}

function urlOf(template: string, input: Baseline): string {
  const path = template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = input.path?.[name];
    if (value === undefined) throw new Error(`injection corpus: no value for path parameter ${name} of ${template}`);
    return encodeURIComponent(value);
  });
  const query: string[] = [];
  for (const [name, value] of Object.entries(input.query ?? {})) {
    if (typeof value === 'string') query.push(`${name}=${encodeURIComponent(value)}`);
    else for (const [key, v] of Object.entries(value)) query.push(`${name}[${encodeURIComponent(key)}]=${encodeURIComponent(v)}`);
  }
  return query.length > 0 ? `${path}?${query.join('&')}` : path;
}

export interface Attempt {
  operationId: string;
  slot: Slot;
  payload: string;
  res: JsonResponse;
}

/** A request whose answer may be JSON or raw bytes (a file): JSON is parsed, anything else kept as text. */
async function send(baseUrl: string, method: string, path: string, options: { token?: string | undefined; body?: unknown }): Promise<JsonResponse> {
  const res = await request(baseUrl, method, path, { ...options, token: options.token ?? undefined, headers: { accept: 'application/json' } }).catch(() => undefined);
  if (res) return res;
  // Not JSON (a file's content): compare it as text.
  const raw = await fetch(baseUrl + path, { method, headers: options.token ? { authorization: `Bearer ${options.token}` } : {} });
  return { status: raw.status, headers: raw.headers, body: await raw.text(), ms: 0 };
}

/** An event stream: its status, and for a refusal its JSON body; a stream that started is read for a moment, then dropped. */
async function openStream(baseUrl: string, path: string, token: string | undefined): Promise<JsonResponse> {
  const abort = new AbortController();
  const res = await fetch(baseUrl + path, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: abort.signal });
  if (res.status !== 200) return { status: res.status, headers: res.headers, body: JSON.parse(await res.text()), ms: 0 };
  const reader = res.body!.getReader();
  const first = await Promise.race([reader.read(), new Promise<undefined>((resolve) => setTimeout(resolve, 50))]);
  abort.abort();
  await reader.cancel().catch(() => undefined);
  return { status: 200, headers: res.headers, body: first?.value ? new TextDecoder().decode(first.value) : '', ms: 0 };
}

/** A header carries only visible ASCII: other payloads cannot even be sent as a token. */
const sendableAsHeader = (payload: string) => /^[\x21-\x7e]+$/.test(payload);

/**
 * Send every payload into every slot of `operations`. Per payload, operations run
 * concurrently (so lifecycle calls on one tenant race each other, as in production) and
 * the slots of one operation in order.
 */
export async function runCorpus(options: {
  baseUrl: string;
  operations: Operation[];
  baselines: Record<string, Baseline>;
  tokens: Record<Exclude<Auth, 'none'>, string>;
  payloads?: readonly string[];
  beforeEachPayload?: () => Promise<void>;
}): Promise<Attempt[]> {
  const attempts: Attempt[] = [];
  for (const payload of options.payloads ?? PAYLOADS) {
    await options.beforeEachPayload?.();
    await Promise.all(
      options.operations.map(async (op) => {
        const baseline = options.baselines[op.operationId];
        if (!baseline) throw new Error(`injection corpus: no baseline request for ${op.operationId}`);
        for (const slot of op.slots) {
          if (slot.in === 'header' && !sendableAsHeader(payload)) continue;
          const input = inject(baseline, slot, payload);
          const token = input.token ?? (op.auth === 'none' ? undefined : options.tokens[op.auth]);
          const res = op.stream ? await openStream(options.baseUrl, urlOf(op.path, input), token) : await send(options.baseUrl, op.method, urlOf(op.path, input), { token, body: input.body });
          attempts.push({ operationId: op.operationId, slot, payload, res });
        }
      }),
    );
  }
  return attempts;
}
