import type { IncomingMessage } from 'node:http';
import { BadRequestError, PayloadTooLargeError, RequestTimeoutError, UnsupportedMediaTypeError } from '@tenantry/domain';
import { parseStrictJsonBytes } from './strict-json.js';

const tooLarge = (limitBytes: number) => new PayloadTooLargeError('payload_too_large', `The body exceeds ${limitBytes} bytes`);

/**
 * The raw request body, at most `limitBytes` (refused early when Content-Length says so).
 * A client that hangs up or stalls until the server's request timeout is a 408 of its own
 * making, not a server error: it is logged and counted as a 4xx.
 */
export async function readBodyBytes(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limitBytes) throw tooLarge(limitBytes);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > limitBytes) throw tooLarge(limitBytes);
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof PayloadTooLargeError) throw err;
    throw new RequestTimeoutError('The request body did not arrive completely', { cause: err });
  }
  return Buffer.concat(chunks);
}

/** Read and parse a JSON request body of at most `limitBytes` (strictly: see strict-json.ts). Empty is `{}`. */
export async function readJsonBody(req: IncomingMessage, limitBytes: number): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(type)) {
    throw new UnsupportedMediaTypeError('The body must be JSON (Content-Type: application/json)');
  }
  const bytes = await readBodyBytes(req, limitBytes);
  return bytes.length === 0 ? {} : parseStrictJsonBytes(bytes);
}

/**
 * Decode one percent-encoded URL component strictly: invalid UTF-8 is refused, where
 * URLSearchParams would turn it into U+FFFD and the value would change silently.
 */
export function decodeComponent(raw: string, form = false): string {
  try {
    return decodeURIComponent(form ? raw.replaceAll('+', ' ') : raw);
  } catch {
    throw new BadRequestError('invalid_encoding', 'The URL holds invalid percent-encoding or invalid UTF-8');
  }
}

/** A query string's pairs, decoded strictly (see decodeComponent), in order. */
export function strictQueryPairs(search: string): Array<[string, string]> {
  const query = search.startsWith('?') ? search.slice(1) : search;
  if (query === '') return [];
  return query
    .split('&')
    .filter((part) => part !== '')
    .map((part) => {
      const eq = part.indexOf('=');
      return eq === -1 ? [decodeComponent(part, true), ''] : [decodeComponent(part.slice(0, eq), true), decodeComponent(part.slice(eq + 1), true)];
    });
}
