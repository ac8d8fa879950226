import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AnyRouter } from '@trpc/server';
import { toWireError } from '../errors.js';
import { ValidationError, isFileDownload } from '@tenantry/domain';
import { decodeComponent, readJsonBody, strictQueryPairs } from './body.js';
import { sendFile, sendJson } from './respond.js';
import { type RouteEntry, routeTable } from './route-table.js';

export interface RestHandlerOptions<TRouter extends AnyRouter> {
  router: TRouter;
  /** Mount point, e.g. "/v1": route paths in meta are relative to it. */
  prefix: string;
  createCaller: (req: IncomingMessage) => Promise<Record<string, unknown>>;
  /** Headers the request's procedures asked for (see RequestContext.responseHeaders). */
  responseHeaders: (req: IncomingMessage) => Record<string, string>;
  maxBodyBytes: number;
  /** Called with every error that becomes a 5xx, for logging. */
  onServerError: (error: unknown, procedurePath: string) => void;
}

/**
 * A query string as input: `a=1` → `{a: '1'}`, and one level of brackets for maps,
 * `where[status]=open` → `{where: {status: 'open'}}`. Anything else is kept as its
 * literal key, for the schema to refuse.
 */
function queryInput(search: string): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const [key, value] of strictQueryPairs(search)) {
    const nested = /^([A-Za-z_]\w*)\[([^[\]]*)\]$/.exec(key);
    if (nested) {
      const [, outer, inner] = nested as unknown as [string, string, string];
      const map = (input[outer] ??= Object.create(null)) as Record<string, unknown>;
      if (typeof map === 'object') map[inner] = value;
    } else {
      input[key] = value;
    }
  }
  return input;
}

/**
 * REST under /v1, generated from the same tRPC procedures (their `rest` meta): one source
 * of truth for validation, auth and errors. GET and DELETE take their input from the query
 * string, POST/PUT/PATCH from a JSON body; path parameters are merged over either.
 * Answers are JSON, except a file (FileDownload) from a route that declares `files`.
 * Errors are `{code, message, fields?}` with the status of the error's kind.
 */
export function createRestHandler<TRouter extends AnyRouter>(options: RestHandlerOptions<TRouter>) {
  // A literal segment beats a parameter: /tenants/{id}/usage/series before /tenants/{id}/usage/{month}.
  const routes = routeTable(options.router, options.prefix).sort((a, b) => a.params.length - b.params.length);

  return async function handleRest(req: IncomingMessage, res: ServerResponse, url: URL): Promise<string | undefined> {
    const candidates = routes
      .map((route) => ({ route, match: route.pattern.exec(url.pathname) }))
      .filter((c): c is { route: RouteEntry; match: RegExpExecArray } => c.match !== null);
    const hit = candidates.find((c) => c.route.rest.method === req.method);
    if (!hit) {
      if (candidates.length > 0) {
        sendJson(res, 405, { code: 'method_not_allowed', message: `${req.method} is not allowed here` }, {
          allow: candidates.map((c) => c.route.rest.method).join(', '),
        });
        return candidates[0]?.route.template;
      }
      sendJson(res, 404, { code: 'not_found', message: 'No such route' });
      return undefined;
    }
    const { route, match } = hit;
    const responseHeaders = options.responseHeaders(req);
    try {
      let input: Record<string, unknown> | undefined;
      if ((route.procedure._def.inputs as unknown[]).length > 0) {
        const base = req.method === 'GET' || req.method === 'DELETE' ? queryInput(url.search) : await readJsonBody(req, options.maxBodyBytes);
        if (typeof base !== 'object' || base === null || Array.isArray(base)) {
          throw new ValidationError([{ field: '(body)', message: 'must be a JSON object' }]);
        }
        input = { ...(base as Record<string, unknown>) };
        route.params.forEach((name, i) => {
          input![name] = decodeComponent(match[i + 1] ?? '');
        });
      }
      const caller = await options.createCaller(req);
      const procedure = route.procedurePath.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], caller);
      const output = await (procedure as (input: unknown) => Promise<unknown>)(input);
      if (route.rest.files && isFileDownload(output)) sendFile(res, route.rest.successStatus ?? 200, output, responseHeaders);
      else sendJson(res, route.rest.successStatus ?? 200, output, responseHeaders);
    } catch (error) {
      const wire = toWireError(error);
      if (wire.status >= 500) options.onServerError(error, route.procedurePath);
      sendJson(res, wire.status, wire.body, { ...responseHeaders, ...wire.headers });
    }
    return route.template;
  };
}
