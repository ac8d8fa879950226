import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { type AnyRouter, isTrackedEnvelope } from '@trpc/server';
import { toWireError } from '../errors.js';
import { ValidationError, isFileDownload } from '@tenantry/domain';
import type { RawResponse } from '../trpc.js';
import { decodeComponent, readJsonBody, strictQueryPairs } from './body.js';
import { sendFile, sendJson } from './respond.js';
import { type RouteEntry, routeTable } from './route-table.js';

export interface RestHandlerOptions<TRouter extends AnyRouter> {
  router: TRouter;
  /** Mount point, e.g. "/v1": route paths in meta are relative to it. */
  prefix: string;
  /** A caller for this request; `signal` (event streams only) aborts when the client goes away, and the subscription ends with it. */
  createCaller: (req: IncomingMessage, res: ServerResponse, signal: AbortSignal | undefined) => Promise<Record<string, unknown>>;
  /** Headers the request's procedures asked for (see RequestContext.responseHeaders). */
  responseHeaders: (req: IncomingMessage) => Record<string, string>;
  /** The success status a procedure chose, if not its route's (see RequestContext.responseStatus). */
  responseStatus: (req: IncomingMessage) => number | undefined;
  maxBodyBytes: number;
  /** Event streams: a comment line this often, so proxies keep idle streams open. */
  heartbeatMs: number;
  /** Called with every error that becomes a 5xx, for logging. */
  onServerError: (error: unknown, procedurePath: string) => void;
  /**
   * A refusal known before any procedure runs (a tenant credential already over its rate
   * limit), answered as the procedure would answer it but without building a tRPC call:
   * a flooding tenant must cost this instance next to nothing.
   */
  refuseEarly?: (req: IncomingMessage, route: RouteEntry) => Promise<Error | undefined>;
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

/** Where a route's input comes from: the query string, or a JSON body. */
const inputFromQuery = (route: RouteEntry) =>
  route.rest.method === 'GET' || route.rest.method === 'HEAD' || route.rest.method === 'DELETE' || route.rest.requestBody === 'raw';

const EVENT_STREAM_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  // no-transform: a compressing proxy would hold events back.
  'cache-control': 'no-cache, no-transform',
  // nginx (and proxies that honour it) must pass each event on as it comes.
  'x-accel-buffering': 'no',
  connection: 'keep-alive',
};

/**
 * REST under /v1, generated from the same tRPC procedures (their `rest` meta): one source
 * of truth for validation, auth and errors. GET, HEAD and DELETE take their input from the
 * query string, POST/PUT/PATCH from a JSON body (or, for a raw body, from the query
 * string, the body going to the procedure as a stream); path parameters are merged over
 * either. Success is JSON, a raw stream, or Server-Sent Events, as the route's meta says;
 * a route that declares `files` sends a FileDownload answer as the file's bytes.
 * Errors are `{code, message, fields?}` with the status of the error's kind.
 */
export function createRestHandler<TRouter extends AnyRouter>(options: RestHandlerOptions<TRouter>) {
  // A literal segment beats a parameter: /tenants/{id}/usage/series before /tenants/{id}/usage/{month}.
  const routes = routeTable(options.router, options.prefix).sort((a, b) => a.params.length - b.params.length);

  return async function handleRest(req: IncomingMessage, res: ServerResponse, url: URL): Promise<string | undefined> {
    // As sent: URL parsing would resolve `a/../b` (and `%2e%2e`) before validation could refuse it.
    const path = req.url?.startsWith('/') ? req.url.split('?')[0]! : url.pathname;
    // The first route of this method whose pattern matches; only a miss tries the others (405 or 404).
    let hit: { route: RouteEntry; match: RegExpExecArray } | undefined;
    for (const route of routes) {
      if (route.rest.method !== req.method) continue;
      const match = route.pattern.exec(path);
      if (match) {
        hit = { route, match };
        break;
      }
    }
    if (!hit) {
      const candidates = routes.filter((route) => route.pattern.test(path));
      if (candidates.length > 0) {
        sendJson(res, 405, { code: 'method_not_allowed', message: `${req.method} is not allowed here` }, {
          allow: candidates.map((c) => c.rest.method).join(', '),
        });
        return candidates[0]?.template;
      }
      sendJson(res, 404, { code: 'not_found', message: 'No such route' });
      return undefined;
    }
    const { route, match } = hit;
    const responseHeaders = options.responseHeaders(req);
    // The client went away: a subscription ends. Only an event stream has a use for it (a raw
    // body's pipeline sees the close itself), and every other call would pay for the
    // controller and its signal (about 1% of a document read's api CPU, measured).
    const gone = route.rest.response === 'event-stream' ? new AbortController() : undefined;
    // Only when it left early: aborting builds a DOMException (a stack trace), which every
    // finished response would otherwise pay for.
    if (gone) {
      res.once('close', () => {
        if (!res.writableFinished) gone.abort();
      });
    }
    try {
      let input: Record<string, unknown> | undefined;
      if ((route.procedure._def.inputs as unknown[]).length > 0) {
        const base = inputFromQuery(route) ? queryInput(url.search) : await readJsonBody(req, options.maxBodyBytes);
        if (typeof base !== 'object' || base === null || Array.isArray(base)) {
          throw new ValidationError([{ field: '(body)', message: 'must be a JSON object' }]);
        }
        input = { ...(base as Record<string, unknown>) };
        route.params.forEach((name, i) => {
          input![name] = decodeComponent(match[i + 1] ?? '');
        });
        if (route.rest.response === 'event-stream') {
          const lastEventId = req.headers['last-event-id'];
          if (typeof lastEventId === 'string' && lastEventId !== '') input.lastEventId = lastEventId;
        }
      }
      const early = await options.refuseEarly?.(req, route);
      if (early) throw early;
      const caller = await options.createCaller(req, res, gone?.signal);
      const procedure = route.procedurePath.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], caller);
      const output = await (procedure as (input: unknown) => Promise<unknown>)(input);
      if (route.rest.response === 'raw') await sendRaw(res, output as RawResponse, responseHeaders);
      else if (route.rest.response === 'event-stream' && gone) await sendEvents(res, output as AsyncIterable<unknown>, responseHeaders, options.heartbeatMs, gone.signal);
      else if (route.rest.files && isFileDownload(output)) sendFile(res, options.responseStatus(req) ?? route.rest.successStatus ?? 200, output, responseHeaders);
      else sendSuccess(res, options.responseStatus(req) ?? route.rest.successStatus ?? 200, output, responseHeaders);
    } catch (error) {
      const wire = toWireError(error);
      if (wire.status >= 500) options.onServerError(error, route.procedurePath);
      // A refusal before the body was read leaves it unread: the connection cannot carry another request.
      const closing: Record<string, string> = route.rest.requestBody === 'raw' && !req.readableEnded ? { connection: 'close' } : {};
      if (res.headersSent) res.destroy();
      else sendJson(res, wire.status, wire.body, { ...responseHeaders, ...wire.headers, ...closing });
    }
    return route.template;
  };
}

/** A JSON answer, or none at all for 204. */
function sendSuccess(res: ServerResponse, status: number, output: unknown, headers: Record<string, string>): void {
  if (status !== 204) return sendJson(res, status, output, headers);
  res.writeHead(204, { 'cache-control': 'no-store', ...headers });
  res.end();
}

/** A raw answer: status and headers, then the body streamed with backpressure (a client that leaves stops the read). */
async function sendRaw(res: ServerResponse, answer: RawResponse, responseHeaders: Record<string, string>): Promise<void> {
  res.writeHead(answer.status, { 'cache-control': 'no-store', ...responseHeaders, ...answer.headers });
  if (!answer.body) {
    res.end();
    return;
  }
  try {
    await pipeline(answer.body, res);
  } catch {
    // The client went away, or the storage failed mid-stream: the status is sent, so the
    // only thing left to say is a cut connection (a client sees fewer bytes than Content-Length).
    answer.body.destroy();
    res.destroy();
  }
}

/**
 * Server-Sent Events from a subscription: headers flushed at once, each event as
 * `id:` (its tracked id), `event:` (its `type`) and one `data:` line of JSON (a tracked
 * `null` is a bare `id:`: a position), a comment every `heartbeatMs`. Writes wait for the socket to drain, so a slow client holds back
 * only its own stream (whose buffer the subscription bounds).
 */
async function sendEvents(res: ServerResponse, events: AsyncIterable<unknown>, responseHeaders: Record<string, string>, heartbeatMs: number, signal: AbortSignal): Promise<void> {
  res.writeHead(200, { ...responseHeaders, ...EVENT_STREAM_HEADERS });
  res.flushHeaders();
  // How long a client waits before reconnecting after the stream drops.
  res.write('retry: 1000\n\n');
  const heartbeat = setInterval(() => {
    if (!res.destroyed && res.writableLength === 0) res.write(': heartbeat\n\n');
  }, heartbeatMs);
  try {
    for await (const item of events) {
      if (signal.aborted) break;
      const [id, data] = isTrackedEnvelope(item) ? [item[0], item[1]] : [undefined, item];
      // A position without an event: an `id:` alone sets the client's Last-Event-ID and dispatches nothing.
      if (data === null && id !== undefined) {
        res.write(`id: ${id}\n\n`);
        continue;
      }
      const type = typeof data === 'object' && data !== null && typeof (data as { type?: unknown }).type === 'string' ? (data as { type: string }).type : 'message';
      const frame = `${id === undefined ? '' : `id: ${id}\n`}event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
      if (!res.write(frame)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
    }
    res.end();
  } finally {
    clearInterval(heartbeat);
  }
}
