import { z } from 'zod';
import { publicProcedure, router } from '../trpc.js';

export const metaRouter = router({
  /** The OpenAPI 3.1 document of /v1, including this route (built once, at boot: app.ts). */
  openapi: publicProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/openapi.json',
        summary: 'This OpenAPI document',
        description: 'The OpenAPI 3.1 description of every REST route, generated from the same tRPC procedures that serve them.',
      },
    })
    .output(z.record(z.string(), z.unknown()))
    .query(({ ctx }) => ctx.deps.openApiDocument),
});
