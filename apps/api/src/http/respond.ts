import type { FileDownload } from '@tenantry/domain';
import type { ServerResponse } from 'node:http';

/** Send a JSON response; a no-op once a response is under way (e.g. a timeout already answered). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(payload),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(payload);
}

/**
 * Send a file a procedure answered with (a FileDownload: an invoice as CSV or PDF) as its
 * bytes, with its own Content-Type and Content-Disposition.
 */
export function sendFile(res: ServerResponse, status: number, file: FileDownload, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const body = Buffer.from(file.base64, 'base64');
  res.writeHead(status, {
    'content-type': file.contentType,
    'content-disposition': file.contentDisposition,
    'content-length': body.length,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(body);
}

/**
 * Count the body bytes written to `res` from now on (what egressBytes meters): every
 * write and end, whoever makes it (our JSON, tRPC, a stream).
 */
export function countBodyBytes(res: ServerResponse): { bytes: number } {
  const counter = { bytes: 0 };
  const count = (chunk: unknown, encoding: unknown) => {
    if (typeof chunk === 'string') counter.bytes += Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
    else if (chunk instanceof Uint8Array) counter.bytes += chunk.byteLength;
  };
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    count(chunk, rest[0]);
    return write(chunk, ...rest);
  }) as ServerResponse['write'];
  res.end = ((chunk?: unknown, ...rest: unknown[]) => {
    if (typeof chunk !== 'function') count(chunk, rest[0]);
    return end(chunk, ...rest);
  }) as ServerResponse['end'];
  return counter;
}
