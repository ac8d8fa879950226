import { STATUS_CODES } from 'node:http';
import { FileDownload } from '@tenantry/domain';
import type { AnyRouter } from '@trpc/server';
import { z } from 'zod';
import { REST_PREFIX, type RouteEntry, routeTable } from './route-table.js';

/**
 * The OpenAPI 3.1 document of the REST surface, generated from the same tRPC procedures
 * (their `rest` meta and zod schemas) that http/rest.ts routes from: there is no second
 * description of the api to drift. JSON Schemas come from zod's own `z.toJSONSchema`
 * (draft 2020-12, which is the dialect OpenAPI 3.1 schema objects use).
 *
 * Mirrors rest.ts (both read http/route-table.ts): GET/HEAD/DELETE (and raw-body routes)
 * read their input from the query string, POST/PUT/PATCH from a JSON body; path
 * parameters are merged over either; success is `successStatus ?? 200`, as JSON, as the
 * raw content, or as an event stream; errors are `{code, message, fields?}`.
 */

/** A JSON Schema (2020-12) object, as embedded in the document. */
export type JsonSchema = { [keyword: string]: unknown };

export interface OpenApiParameter {
  name: string;
  in: 'path' | 'query';
  required: boolean;
  description?: string;
  style?: 'form' | 'deepObject';
  explode?: boolean;
  schema: JsonSchema;
}

export interface OpenApiResponse {
  description: string;
  headers?: Record<string, { description: string; required: boolean; schema: JsonSchema }>;
  /**
   * JSON for most routes (a route that declares `files` lists those types too); the file's
   * own type for raw downloads; text/event-stream for event streams; none for HEAD or 204.
   */
  content?: Record<string, { schema: JsonSchema }>;
}

export interface OpenApiOperation {
  operationId: string;
  summary: string;
  description: string;
  tags: string[];
  security?: Array<Record<string, string[]>>;
  parameters?: OpenApiParameter[];
  requestBody?: { required: true; description?: string; content: Record<string, { schema: JsonSchema }> };
  responses: Record<string, OpenApiResponse>;
}

type HttpMethod = 'get' | 'put' | 'post' | 'delete' | 'head' | 'patch';

export interface OpenApiDocument {
  openapi: '3.1.0';
  info: {
    title: string;
    version: string;
    description: string;
    contact: { name: string; url: string };
    license: { name: string; identifier: string };
  };
  servers: Array<{ url: string; description: string }>;
  tags: Array<{ name: string; description: string }>;
  paths: Record<string, Partial<Record<HttpMethod, OpenApiOperation>>>;
  components: {
    schemas: Record<string, JsonSchema>;
    securitySchemes: Record<string, { type: 'http'; scheme: 'bearer'; description: string }>;
  };
}

export interface OpenApiOptions {
  /** Base URL of the api; default `/`: clients resolve paths against the document's own origin. */
  serverUrl?: string;
  version: string;
  /** A description of each tag (each first-level router: routers/index.ts); a tag without one is an error. */
  tags: Readonly<Record<string, string>>;
}

/** Operation order inside a path item: the order the OpenAPI spec lists them in. */
const METHOD_ORDER: HttpMethod[] = ['get', 'put', 'post', 'delete', 'head', 'patch'];

/** The wire error of errors.ts (`WireError['body']`), as the one shared error schema. */
const WireErrorBody = z.object({
  code: z.string().describe('Machine-readable error code, e.g. validation_failed, rate_limited'),
  message: z.string().describe('Human-readable description'),
  fields: z
    .array(z.object({ field: z.string(), message: z.string() }))
    .optional()
    .describe('On validation_failed: one entry per invalid field (dotted path, or "(body)")'),
  resource: z.string().optional().describe('On quota_exceeded: the limit that was reached, e.g. storageBytes'),
});

const ERROR_REF = { $ref: '#/components/schemas/Error' };

const isRecord = (value: unknown): value is JsonSchema => typeof value === 'object' && value !== null && !Array.isArray(value);

const isZodSchema = (value: unknown): value is z.ZodType => isRecord(value) && '_zod' in value;

/** A valid component name (`^[a-zA-Z0-9.\-_]+$`) that is also safe inside a JSON pointer. */
const componentName = (name: string) => name.replace(/[^a-zA-Z0-9._-]/g, '_');

/** Key order of nested values is zod's (deterministic); this only compares for equality. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    isRecord(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );

/** zod → plain JSON Schema data (the result carries a non-enumerable `~standard`; drop it). */
function zodToJsonSchema(schema: unknown, io: 'input' | 'output'): JsonSchema {
  // A non-zod validator (any Standard Schema) has no converter here: document it as "any".
  if (!isZodSchema(schema)) return {};
  const json = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' });
  return JSON.parse(JSON.stringify(json)) as JsonSchema;
}

class SchemaComponents {
  readonly schemas = new Map<string, JsonSchema>();

  add(name: string, schema: JsonSchema): void {
    const existing = this.schemas.get(name);
    if (existing && canonical(existing) !== canonical(schema)) {
      throw new Error(`OpenAPI: two different schemas want the component name "${name}"`);
    }
    this.schemas.set(name, schema);
  }
}

/**
 * Make a standalone zod JSON Schema embeddable: drop `$schema`/`$id` (an `$id` would change
 * the base URI its refs resolve against), hoist `$defs` (recursive or `.meta({id})` schemas)
 * into components, and point `#/$defs/…` and root `#` refs at those components — inside the
 * document, `#` means the OpenAPI document itself.
 */
function embed(raw: JsonSchema, name: string, io: 'input' | 'output', components: SchemaComponents): JsonSchema {
  const { $schema: _schema, $id: _id, $defs, ...root } = raw;
  const defs = isRecord($defs) ? $defs : {};
  // zod names anonymous extracted schemas `__schema0`…: scope those to this schema. Named
  // ones (`.meta({ id })`) are shared, but an input and an output rendering of the same
  // schema differ (defaults, transforms, additionalProperties), so inputs get a suffix.
  const defName = (key: string) =>
    componentName(key.startsWith('__schema') ? `${name}.${key.slice(2)}` : io === 'input' ? `${key}.input` : key);
  let rootReferenced = false;
  const rewrite = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(rewrite);
    if (!isRecord(node)) return node;
    const out: JsonSchema = {};
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') {
        if (value === '#') {
          rootReferenced = true;
          out[key] = `#/components/schemas/${componentName(name)}`;
        } else if (value.startsWith('#/$defs/')) {
          out[key] = `#/components/schemas/${defName(value.slice('#/$defs/'.length))}`;
        } else {
          out[key] = value;
        }
      } else {
        out[key] = rewrite(value);
      }
    }
    return out;
  };
  const embedded = rewrite(root) as JsonSchema;
  for (const [key, def] of Object.entries(defs)) components.add(defName(key), rewrite(def) as JsonSchema);
  if (rootReferenced) components.add(componentName(name), embedded);
  return embedded;
}

interface ObjectParts {
  properties: Record<string, JsonSchema>;
  required: string[];
}

/** The properties of an object schema (or an `allOf` of them), or null for anything else. */
function objectParts(schema: JsonSchema): ObjectParts | null {
  if (Array.isArray(schema.allOf) && !('properties' in schema)) {
    const parts = schema.allOf.map((branch) => (isRecord(branch) ? objectParts(branch) : null));
    if (parts.some((p) => p === null)) return null;
    return {
      properties: Object.assign({}, ...parts.map((p) => p!.properties)) as Record<string, JsonSchema>,
      required: [...new Set(parts.flatMap((p) => p!.required))],
    };
  }
  if (schema.type !== 'object' || 'anyOf' in schema || 'oneOf' in schema) return null;
  const properties = isRecord(schema.properties) ? (schema.properties as Record<string, JsonSchema>) : {};
  const required = Array.isArray(schema.required) ? schema.required.filter((k): k is string => typeof k === 'string') : [];
  return { properties, required };
}

/** The schema without some keys (path parameters, which the adapter takes from the path). */
function withoutKeys(schema: JsonSchema, keys: string[]): JsonSchema {
  if (keys.length === 0) return schema;
  const out: JsonSchema = { ...schema };
  if (isRecord(out.properties)) {
    out.properties = Object.fromEntries(Object.entries(out.properties).filter(([k]) => !keys.includes(k)));
  }
  if (Array.isArray(out.required)) {
    const required = out.required.filter((k) => !keys.includes(k as string));
    if (required.length > 0) out.required = required;
    else delete out.required;
  }
  for (const combinator of ['allOf', 'anyOf', 'oneOf']) {
    const branches = out[combinator];
    if (Array.isArray(branches)) out[combinator] = branches.map((b) => (isRecord(b) ? withoutKeys(b, keys) : b));
  }
  return out;
}

const json = (schema: JsonSchema) => ({ 'application/json': { schema } });

const errorResponse = (description: string): OpenApiResponse => ({ description, content: json(ERROR_REF) });

/**
 * The JSON answer of a route that may also answer with a file: its output schema without
 * the FileDownload branch (the REST adapter sends that as bytes, never as JSON).
 */
function jsonBranch(output: unknown): unknown {
  if (!(output instanceof z.ZodUnion)) return output;
  const json = (output.options as readonly z.ZodType[]).filter((option) => option !== FileDownload);
  return json.length === 1 ? json[0] : z.union(json as [z.ZodType, z.ZodType, ...z.ZodType[]]);
}

/**
 * The success response of a route: JSON by its output schema (or, for a route that
 * declares `files`, JSON or one of those files), the raw content, or an event stream.
 */
function successResponse(route: RouteEntry, components: SchemaComponents): OpenApiResponse {
  const { procedurePath, procedure, rest } = route;
  const def = procedure._def as RouteEntry['procedure']['_def'] & { output?: unknown };
  const success = rest.successStatus ?? 200;
  const description = STATUS_CODES[success] ?? 'Success';
  if (rest.response === 'raw') {
    const headers: OpenApiResponse['headers'] = {
      ETag: { description: 'The SHA-256 of the content, quoted', required: true, schema: { type: 'string' } },
      'Content-Length': { description: 'Bytes of this answer (of the range, for 206)', required: true, schema: { type: 'integer', minimum: 0 } },
      'Accept-Ranges': { description: '`bytes`: single ranges are served', required: true, schema: { type: 'string' } },
    };
    // HEAD has the headers of a GET and no content.
    return rest.method === 'HEAD' ? { description, headers } : { description, headers, content: { '*/*': { schema: {} } } };
  }
  if (rest.response === 'event-stream') {
    const events = rest.events ? embed(zodToJsonSchema(rest.events, 'output'), `${procedurePath}.event`, 'output', components) : {};
    return {
      description: 'A stream of Server-Sent Events: `id:` (resume with `Last-Event-ID`), `event:` (the type) and `data:` (one JSON object, described here)',
      content: { 'text/event-stream': { schema: events } },
    };
  }
  if (success === 204) return { description };
  const outputSchema = rest.files ? jsonBranch(def.output) : def.output;
  const output = outputSchema === undefined ? {} : embed(zodToJsonSchema(outputSchema, 'output'), `${procedurePath}.output`, 'output', components);
  const content: Record<string, { schema: JsonSchema }> = json(output);
  if (!rest.files) return { description, content };
  // The bytes themselves, not the FileDownload object tRPC clients get.
  for (const type of rest.files) content[type] = { schema: { type: 'string', contentMediaType: type } };
  return {
    description,
    content,
    headers: {
      'Content-Disposition': { description: 'For a file: `attachment` and its file name; JSON is `inline`', required: false, schema: { type: 'string' } },
    },
  };
}

function buildOperation(route: RouteEntry, components: SchemaComponents): OpenApiOperation {
  const { procedurePath, procedure, rest, params: pathParams } = route;
  const def = procedure._def as RouteEntry['procedure']['_def'];
  const auth = rest.auth ?? 'public';

  // Several `.input()`s are each validated against the whole input: an `allOf`.
  const inputSchemas = (def.inputs as unknown[]).map((schema, i) =>
    embed(zodToJsonSchema(schema, 'input'), `${procedurePath}.input${i === 0 ? '' : i}`, 'input', components),
  );
  const input: JsonSchema | undefined = inputSchemas.length === 0 ? undefined : inputSchemas.length === 1 ? inputSchemas[0] : { allOf: inputSchemas };
  const inputParts = input ? objectParts(input) : null;

  const parameters: OpenApiParameter[] = pathParams.map((name) => ({
    name,
    in: 'path',
    required: true,
    // Path values arrive as strings; a procedure without that input key still gets one.
    schema: inputParts?.properties[name] ?? { type: 'string' },
  }));

  let requestBody: OpenApiOperation['requestBody'];
  if (rest.requestBody === 'raw') {
    // The content itself, of any media type (its Content-Type is kept); not JSON.
    requestBody = { required: true, description: 'The content, as bytes of any media type; its `Content-Type` is kept', content: { '*/*': { schema: {} } } };
  }
  if (input && (rest.method === 'GET' || rest.method === 'HEAD' || rest.method === 'DELETE' || rest.requestBody === 'raw')) {
    if (inputParts) {
      for (const [name, schema] of Object.entries(inputParts.properties)) {
        if (pathParams.includes(name)) continue;
        const parameter: OpenApiParameter = { name, in: 'query', required: inputParts.required.includes(name), schema };
        if (typeof schema.description === 'string') parameter.description = schema.description;
        // A map in the query string is written `where[field]=value` (rest.ts): deepObject.
        if (schema.type === 'object') Object.assign(parameter, { style: 'deepObject', explode: true });
        parameters.push(parameter);
      }
    } else {
      // Not a plain object (a union, say): the query string is the object, form-exploded.
      parameters.push({ name: 'query', in: 'query', required: false, style: 'form', explode: true, schema: withoutKeys(input, pathParams) });
    }
  } else if (input) {
    // Required: the adapter wants `Content-Type: application/json` even for an empty body.
    requestBody = { required: true, content: json(withoutKeys(input, pathParams)) };
  }

  const success = rest.successStatus ?? 200;
  const responses: Record<number, OpenApiResponse> = {
    [success]: successResponse(route, components),
    400: errorResponse('The input is invalid (code `validation_failed`, with `fields`), or the body is not JSON'),
    500: errorResponse('Internal server error (code `internal_error`)'),
  };
  if (auth !== 'public') {
    responses[401] = errorResponse('No bearer token, or one that is invalid or expired');
    responses[403] = errorResponse('The token is valid but does not allow this (e.g. its tenant is suspended)');
  }
  if (pathParams.length > 0) responses[404] = errorResponse('What the path names does not exist');
  for (const [status, description] of Object.entries(rest.responses ?? {})) {
    // Other successes (an overwrite's 200, a range's 206) carry what the success does; 304 nothing; errors the error body.
    const code = Number(status);
    responses[code] = code < 300 ? { ...successResponse(route, components), description } : code < 400 ? { description } : errorResponse(description);
  }
  if (rest.rateLimited) {
    responses[429] = {
      description: 'Too many requests (code `rate_limited`)',
      headers: {
        'Retry-After': { description: 'Seconds until a retry may succeed', required: true, schema: { type: 'integer', minimum: 1 } },
      },
      content: json(ERROR_REF),
    };
  }
  const ordered: Record<string, OpenApiResponse> = {};
  for (const status of Object.keys(responses).map(Number).sort((a, b) => a - b)) ordered[status] = responses[status]!;
  ordered.default = errorResponse('Any other error, with the same body (e.g. 401 on a wrong password, 409, 413, 415, 503)');

  return {
    operationId: procedurePath,
    summary: rest.summary,
    description: rest.description,
    tags: [procedurePath.split('.')[0]!],
    // Public operations say so explicitly: no credential at all.
    security: auth === 'public' ? [] : [{ bearerAuth: [] }],
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(requestBody ? { requestBody } : {}),
    responses: ordered,
  } satisfies OpenApiOperation;
}

/**
 * The OpenAPI 3.1 document for every procedure of `router` that has `meta.rest`. Output is
 * deterministic (paths, methods, responses and components in a fixed order), so it can be
 * snapshotted. Throws when two procedures claim the same route.
 */
export function createOpenApiDocument(router: AnyRouter, options: OpenApiOptions): OpenApiDocument {
  const components = new SchemaComponents();
  components.add('Error', embed(zodToJsonSchema(WireErrorBody, 'output'), 'Error', 'output', components));

  const operations = new Map<string, Map<HttpMethod, OpenApiOperation>>();
  const tags = new Set<string>();
  for (const route of routeTable(router, REST_PREFIX)) {
    const operation = buildOperation(route, components);
    tags.add(operation.tags[0]!);
    if (!operations.has(route.template)) operations.set(route.template, new Map());
    operations.get(route.template)!.set(route.rest.method.toLowerCase() as HttpMethod, operation);
  }
  for (const tag of tags) if (!options.tags[tag]) throw new Error(`OpenAPI: the tag "${tag}" has no description (routers/index.ts)`);

  const paths: OpenApiDocument['paths'] = {};
  for (const path of [...operations.keys()].sort()) {
    const byMethod = operations.get(path)!;
    const item: Partial<Record<HttpMethod, OpenApiOperation>> = {};
    for (const method of METHOD_ORDER) {
      const operation = byMethod.get(method);
      if (operation) item[method] = operation;
    }
    paths[path] = item;
  }

  return {
    openapi: '3.1.0',
    info: {
      title: 'Tenantry API',
      version: options.version,
      description:
        'REST surface of the Tenantry control plane, generated from its tRPC procedures (also served at `/trpc`). ' +
        'Errors are `{code, message, fields?}` with a machine-readable `code`.',
      contact: { name: 'Tenantry', url: 'https://github.com/tenantry/tenantry' },
      license: { name: 'Apache 2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: options.serverUrl ?? '/', description: 'The api that serves this document' }],
    tags: [...tags].sort().map((name) => ({ name, description: options.tags[name]! })),
    paths,
    components: {
      schemas: Object.fromEntries([...components.schemas.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          description: 'A tenant session token from POST /v1/auth/login or a tenant API key (tenant routes), or a platform key (platform routes)',
        },
      },
    },
  };
}
