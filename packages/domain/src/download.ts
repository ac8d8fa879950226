import { z } from 'zod';

/**
 * A procedure output that is a file rather than a JSON document (an invoice as CSV or PDF).
 * Over tRPC it arrives as this object, the bytes base64-encoded; the REST adapter
 * recognises it on routes that declare the content types they may answer with
 * (`rest.files`) and sends the bytes themselves, with these headers.
 */
export const FileDownload = z.object({
  contentType: z.string(),
  contentDisposition: z.string(),
  /** The file's bytes, base64-encoded. */
  base64: z.string(),
});
export type FileDownload = z.infer<typeof FileDownload>;

export function fileDownload(body: Buffer, headers: { contentType: string; contentDisposition: string }): FileDownload {
  return { contentType: headers.contentType, contentDisposition: headers.contentDisposition, base64: body.toString('base64') };
}

export function isFileDownload(value: unknown): value is FileDownload {
  return FileDownload.safeParse(value).success;
}
