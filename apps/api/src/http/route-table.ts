import type { AnyProcedure, AnyRouter } from '@trpc/server';
import type { RestMeta, RestRoute } from '../trpc.js';

/** Where REST routes are mounted; meta paths are relative to it. */
export const REST_PREFIX = '/v1';

/** One REST route: a procedure with `meta.rest`, and what its path template means. */
export interface RouteEntry {
  procedurePath: string;
  procedure: AnyProcedure;
  rest: RestRoute;
  /** The full path template, e.g. `/v1/collections/{collection}/documents`. */
  template: string;
  /** The `{name}` parameters of the template, in order. */
  params: string[];
  /** Matches a request path; group i is parameter i, still percent-encoded. */
  pattern: RegExp;
}

/**
 * The REST surface, read once from the router: the REST adapter routes from it and the
 * OpenAPI document describes it, so a path rule is written here and nowhere else. Sorted
 * by procedure path; two procedures claiming one method and path (`/a/{x}` and `/a/{y}`
 * are one route) is a programming error, thrown at boot.
 */
export function routeTable(router: AnyRouter, prefix = REST_PREFIX): RouteEntry[] {
  const procedures = router._def.procedures as Record<string, AnyProcedure>;
  const entries: RouteEntry[] = [];
  const claimed = new Map<string, string>();
  for (const procedurePath of Object.keys(procedures).sort()) {
    const procedure = procedures[procedurePath]!;
    const rest = (procedure._def.meta as RestMeta | undefined)?.rest;
    if (!rest) continue;
    const template = prefix + rest.path;
    const route = `${rest.method} ${template.replace(/\{\w+\}/g, '{}')}`;
    const previous = claimed.get(route);
    if (previous) throw new Error(`${procedurePath} and ${previous} are both ${rest.method} ${template}`);
    claimed.set(route, procedurePath);

    const params: string[] = [];
    const segments = template.split('/');
    const source = segments
      .map((segment, i) => {
        const param = /^\{(\w+)\}$/.exec(segment)?.[1];
        if (!param) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        params.push(param);
        return rest.lastParamSpansSegments && i === segments.length - 1 ? '(.+)' : '([^/]+)';
      })
      .join('/');
    entries.push({ procedurePath, procedure, rest, template, params, pattern: new RegExp(`^${source}/?$`) });
  }
  return entries;
}
