import { z } from 'zod';
import { createOpenApiDocument } from '../http/openapi.js';
import { publicProcedure, router } from '../trpc.js';

/** info.version of the document: the REST surface is /v1. */
const API_VERSION = '1.0.0';

let document: Promise<Record<string, unknown>> | undefined;

/**
 * The document describes the whole app router, which imports this file: load it lazily
 * (on the first request, when ./index.js is fully evaluated) and build the document once.
 */
function openApiDocument(): Promise<Record<string, unknown>> {
  document ??= import('./index.js').then(
    ({ appRouter }) => createOpenApiDocument(appRouter, { version: API_VERSION }) as unknown as Record<string, unknown>,
  );
  return document;
}

export const metaRouter = router({
  /** The OpenAPI 3.1 document of /v1, including this route. */
  openapi: publicProcedure
    .meta({ rest: { method: 'GET', path: '/openapi.json' } })
    .output(z.record(z.string(), z.unknown()))
    .query(() => openApiDocument()),
});
