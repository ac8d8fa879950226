import { FilePage, FileRequest, FileView, ListFilesRequest, NotFoundError } from '@tenantry/domain';
import { z } from 'zod';
import type { RequestContext } from '../context.js';
import { type RawResponse, router, tenantProcedure } from '../trpc.js';

const KEY_RULES = 'Keys are 1–512 characters of `A-Z a-z 0-9 . _ / -`, `/`-separated, with no empty, `.` or `..` segment and no leading `/` (anything else is 400); write the `/` as it is or as `%2F`.';

/** Bytes travel over REST only: tRPC speaks JSON, and a file is not JSON. */
function restOnly(ctx: RequestContext): NonNullable<RequestContext['http']> {
  if (!ctx.http) throw new NotFoundError('This procedure over tRPC (files are read and written over REST: /v1/files/{key})', 'rest_only');
  return ctx.http;
}

const download = (ctx: RequestContext & { principal: { tenantId: string } }, key: string, head: boolean): Promise<RawResponse> => {
  const { req } = restOnly(ctx);
  const header = (name: string) => (typeof req.headers[name] === 'string' ? (req.headers[name] as string) : undefined);
  return ctx.deps.files.download(ctx.principal.tenantId, key, { range: header('range'), ifRange: header('if-range'), ifNoneMatch: header('if-none-match') }, head);
};

/** The tenant's files (capability `files`). Uploads and downloads are REST only; list and delete also over tRPC. */
export const filesRouter = router({
  put: tenantProcedure
    .meta({
      rest: {
        method: 'PUT',
        path: '/files/{key}',
        lastParamSpansSegments: true,
        requestBody: 'raw',
        successStatus: 201,
        responses: {
          200: 'An existing file was replaced',
          402: 'The upload does not fit in the tenant\'s `fileStorageBytes` (code `quota_exceeded`, `resource: "fileStorageBytes"`)',
          413: "The file is over the plan's `fileBytes` (code `file_too_large`): refused as soon as Content-Length says so, else when the stream crosses it",
        },
        summary: 'Upload a file',
        description: `Stores the request body, streamed, as the file \`key\` of the caller's tenant, with its \`Content-Type\` (default \`application/octet-stream\`): 201 for a new key, 200 when it replaces one (the old content stays readable until the new one is complete). The bytes are reserved against the tenant's \`fileStorageBytes\` before any is stored, so concurrent uploads never overshoot it (402 \`quota_exceeded\`); one file over \`fileBytes\` is 413 \`file_too_large\`. An upload that fails or is cut off stores nothing. ${KEY_RULES} REST only (not over tRPC).`,
        auth: 'tenant',
      },
      requires: 'files',
    })
    .input(FileRequest)
    .output(FileView)
    .mutation(async ({ ctx, input }) => {
      const { req } = restOnly(ctx);
      const { file, created } = await ctx.deps.files.put(ctx.principal.tenantId, input.key, req, ctx.entitlements.limits);
      if (!created) ctx.responseStatus.value = 200;
      return file;
    }),

  get: tenantProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/files/{key}',
        lastParamSpansSegments: true,
        response: 'raw',
        responses: {
          206: 'The one range asked for (`Range: bytes=start-end`), with `Content-Range`',
          304: '`If-None-Match` has the current ETag',
          416: 'The range starts past the end of the file (`Content-Range: bytes */size`)',
        },
        summary: 'Download a file',
        description: `Streams the file's content with its \`Content-Type\`, \`Content-Length\` and \`ETag\` (its SHA-256, quoted). One \`Range\` (\`bytes=0-99\`, \`bytes=100-\`, \`bytes=-100\`) answers 206; several ranges are ignored (200, the whole file); a range past the end is 416. The bytes sent count toward the tenant's \`egressBytes\`. Another tenant's key is 404, as is an unknown one. REST only.`,
        auth: 'tenant',
      },
      requires: 'files',
    })
    .input(FileRequest)
    .output(z.custom<RawResponse>())
    .query(({ ctx, input }) => download(ctx, input.key, false)),

  head: tenantProcedure
    .meta({
      rest: {
        method: 'HEAD',
        path: '/files/{key}',
        lastParamSpansSegments: true,
        response: 'raw',
        responses: { 206: 'The headers of a range', 304: '`If-None-Match` has the current ETag', 416: 'The range starts past the end of the file' },
        summary: "A file's headers",
        description: 'The headers a GET of the file would answer (`Content-Type`, `Content-Length`, `ETag`, `Accept-Ranges`, `Last-Modified`), without the content. REST only.',
        auth: 'tenant',
      },
      requires: 'files',
    })
    .input(FileRequest)
    .output(z.custom<RawResponse>())
    .query(({ ctx, input }) => download(ctx, input.key, true)),

  delete: tenantProcedure
    .meta({
      rest: {
        method: 'DELETE',
        path: '/files/{key}',
        lastParamSpansSegments: true,
        successStatus: 204,
        summary: 'Delete a file',
        description: "Deletes the file; its bytes leave the tenant's `fileStorageBytes` at once. Allowed whatever the quota says, so a tenant over its `fileStorageBytes` can always get back under it.",
        auth: 'tenant',
      },
      requires: 'files',
    })
    .input(FileRequest)
    .output(z.void())
    .mutation(({ ctx, input }) => ctx.deps.files.delete(ctx.principal.tenantId, input.key)),

  list: tenantProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/files',
        summary: 'List files',
        description: "The tenant's files in key order (bytewise), optionally only those whose key starts with `prefix`, with keyset pagination (`nextCursor`).",
        auth: 'tenant',
      },
      requires: 'files',
    })
    .input(ListFilesRequest)
    .output(FilePage)
    .query(({ ctx, input }) => ctx.deps.files.list(ctx.principal.tenantId, input)),
});
