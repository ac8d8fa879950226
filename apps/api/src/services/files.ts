import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import {
  type Db,
  type FileRow,
  UploadExpiredError,
  abortFileUpload,
  commitFileUpload,
  deleteFile,
  forgetTrashedObjects,
  getFile,
  listFiles,
  reserveFileBytes,
  touchFileUpload,
} from '@tenantry/db';
import { BadRequestError, ConflictError, ContentType, type FileView, type Limits, NotFoundError, PayloadTooLargeError, QuotaExceededError, RequestTimeoutError } from '@tenantry/domain';
import { type ByteRange, type FileStorage, ObjectMissingError } from '@tenantry/files';
import type { Logger } from 'pino';
import type { ApiMetrics } from '../metrics.js';
import type { RawResponse } from '../trpc.js';

/**
 * An upload of unknown length (chunked) reserves quota in steps of this, as its bytes
 * arrive: it can never hold more than one step beyond what it has stored.
 */
const RESERVATION_STEP = 64 * 1024 * 1024;

const view = (row: FileRow): FileView => ({ key: row.key, size: row.size, contentType: row.contentType, sha256: row.sha256, createdAt: row.createdAt.toISOString() });

const notFound = () => new NotFoundError('File', 'file_not_found');

const tooLarge = (limit: number) => new PayloadTooLargeError('file_too_large', `A file may be at most ${limit} bytes (the plan's fileBytes)`);

function overQuota(limit: number, used: number, wanted: number): QuotaExceededError {
  return new QuotaExceededError(
    'fileStorageBytes',
    'payment_required',
    `The tenant's files use ${used} of its ${limit} bytes of fileStorageBytes; ${wanted} more do not fit: downloads and deletes still work; delete files or raise the limit`,
  );
}

/** The `bytes=` range of a Range header, resolved against `size`: a range, 'unsatisfiable', or undefined (no single valid range: send it all). */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  // Several ranges, another unit or nonsense: RFC 9110 lets us ignore the header.
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    return size === 0 ? 'unsatisfiable' : { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

export interface PutResult {
  file: FileView;
  created: boolean;
}

/**
 * The tenant's files: bytes in the file storage (local directory or S3), metadata and the
 * quota counters in the control plane (db/files.ts).
 *
 * An upload streams from the request to the storage through a hash and a byte count; it
 * never holds more than the streams' buffers. Before it is accepted its bytes are reserved
 * against `fileStorageBytes` (all of Content-Length, or step by step for a chunked body);
 * `fileBytes` refuses it at once when Content-Length says so, else when the count crosses
 * it. A committed upload converts its reservation; one that fails releases it and removes
 * what it stored; one whose api died is released by the worker once its reservation expires.
 */
export class FilesService {
  constructor(
    private readonly db: Db,
    private readonly storage: FileStorage,
    private readonly reservationTtlMs: number,
    private readonly metrics: ApiMetrics,
    private readonly logger: Logger,
  ) {}

  async put(tenantId: string, key: string, req: IncomingMessage, limits: Limits): Promise<PutResult> {
    const contentType = req.headers['content-type'] ?? 'application/octet-stream';
    if (!ContentType.safeParse(contentType).success) throw new BadRequestError('invalid_content_type', 'The Content-Type header is not a media type (like text/plain)');
    const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
    if (declared !== undefined && declared > limits.fileBytes) {
      this.metrics.quotaExceeded.inc({ resource: 'fileBytes' });
      throw tooLarge(limits.fileBytes);
    }

    const uploadId = randomUUID();
    let reserved = declared ?? Math.min(RESERVATION_STEP, limits.fileBytes);
    const first = await reserveFileBytes(this.db, { tenantId, uploadId, key, bytes: reserved, limit: limits.fileStorageBytes, ttlMs: this.reservationTtlMs, first: true });
    if (!first.ok) {
      this.metrics.quotaExceeded.inc({ resource: 'fileStorageBytes' });
      throw overQuota(limits.fileStorageBytes, first.used, reserved);
    }

    const hash = createHash('sha256');
    let size = 0;
    // Keeps the reservation alive while bytes flow; a stalled client meets the request timeout.
    const keepAlive = setInterval(() => {
      void touchFileUpload(this.db, tenantId, uploadId, this.reservationTtlMs).catch(() => undefined);
    }, Math.max(1_000, this.reservationTtlMs / 3));
    const counter = new Transform({
      highWaterMark: 1024 * 1024,
      transform: (chunk: Buffer, _encoding, done: TransformCallback) => {
        size += chunk.length;
        if (size > limits.fileBytes) {
          this.metrics.quotaExceeded.inc({ resource: 'fileBytes' });
          return done(tooLarge(limits.fileBytes));
        }
        hash.update(chunk);
        if (size <= reserved) return done(null, chunk);
        // A chunked body passed its reservation: reserve the next step before storing more.
        const step = Math.min(RESERVATION_STEP, limits.fileBytes - reserved);
        reserveFileBytes(this.db, { tenantId, uploadId, key, bytes: step, limit: limits.fileStorageBytes, ttlMs: this.reservationTtlMs, first: false }).then(
          (more) => {
            if (!more.ok) {
              this.metrics.quotaExceeded.inc({ resource: 'fileStorageBytes' });
              return done(overQuota(limits.fileStorageBytes, more.used, step));
            }
            reserved += step;
            done(null, chunk);
          },
          (err: unknown) => done(err as Error),
        );
      },
    });
    // The counter can fail (a limit crossed) before the storage's pipeline listens to it, when
    // the body arrives faster than the storage opens: that error is read from `counter.errored`
    // below, never left to crash the process as an unhandled 'error' event.
    counter.on('error', () => undefined);
    const clientGone = (err?: Error) => counter.destroy(err ?? new RequestTimeoutError('The upload did not arrive completely'));
    const closed = () => {
      if (!req.complete) clientGone();
    };
    // The socket's close too: a client that vanishes mid-body does not always close the request itself.
    req.once('error', clientGone);
    req.once('close', closed);
    req.socket.once('close', closed);
    req.pipe(counter);

    try {
      await this.storage.write(tenantId, uploadId, counter, declared, contentType);
      if (declared !== undefined && size !== declared) throw new RequestTimeoutError('The upload did not arrive completely');
    } catch (thrown) {
      // Why the body stream failed (a limit, the client) says more than how the storage noticed.
      const err = counter.errored ?? thrown;
      clearInterval(keepAlive);
      await this.discard(tenantId, uploadId);
      if (err instanceof PayloadTooLargeError || err instanceof QuotaExceededError || err instanceof RequestTimeoutError) throw err;
      // The client hung up or stalled: its own doing, not a server error.
      if (req.errored || req.destroyed || !req.complete) throw new RequestTimeoutError('The upload did not arrive completely', { cause: err });
      throw err;
    } finally {
      req.off('error', clientGone);
      req.off('close', closed);
      req.socket.off('close', closed);
    }
    clearInterval(keepAlive);

    let committed: Awaited<ReturnType<typeof commitFileUpload>>;
    try {
      committed = await commitFileUpload(this.db, { tenantId, uploadId, key, size, contentType, sha256: hash.digest('hex') });
    } catch (err) {
      await this.discard(tenantId, uploadId);
      if (err instanceof UploadExpiredError) throw new ConflictError('upload_expired', 'The upload took longer than its reservation lives without progress; send it again');
      throw err;
    }
    if (committed.replaced) await this.dispose(tenantId, [committed.replaced.object]);
    return { file: view(committed.file), created: committed.replaced === undefined };
  }

  /**
   * A download: 200 with the whole file, 206 with one range, 416 for a range past its end,
   * 304 when If-None-Match has its ETag. `head`: the same headers, no body opened.
   */
  async download(tenantId: string, key: string, headers: { range?: string | undefined; ifRange?: string | undefined; ifNoneMatch?: string | undefined }, head: boolean): Promise<RawResponse> {
    for (let attempt = 0; ; attempt++) {
      const row = await getFile(this.db, tenantId, key);
      if (!row) throw notFound();
      const etag = `"${row.sha256}"`;
      const common: Record<string, string> = {
        etag,
        'accept-ranges': 'bytes',
        'last-modified': row.createdAt.toUTCString(),
        // Tenant content is never run as a page of this origin.
        'x-content-type-options': 'nosniff',
        'content-security-policy': "default-src 'none'; sandbox",
      };
      if (headers.ifNoneMatch && headers.ifNoneMatch.split(',').some((t) => t.trim() === etag || t.trim() === '*')) {
        return { status: 304, headers: common };
      }
      // If-Range: the range applies only to the content the client has.
      const range = headers.ifRange && headers.ifRange !== etag ? undefined : parseRange(headers.range, row.size);
      if (range === 'unsatisfiable') {
        return { status: 416, headers: { ...common, 'content-range': `bytes */${row.size}`, 'content-type': 'application/json; charset=utf-8' }, body: undefined };
      }
      const length = range ? range.end - range.start + 1 : row.size;
      const answer: RawResponse = {
        status: range ? 206 : 200,
        headers: { ...common, 'content-type': row.contentType, 'content-length': String(length), ...(range ? { 'content-range': `bytes ${range.start}-${range.end}/${row.size}` } : {}) },
      };
      if (head) return answer;
      try {
        // An empty range of an empty file has nothing to read.
        answer.body = row.size === 0 ? undefined : await this.storage.read(tenantId, row.object, range);
        return answer;
      } catch (err) {
        // Overwritten or deleted between the row and the read: look again, once.
        if (err instanceof ObjectMissingError && attempt === 0) continue;
        throw err;
      }
    }
  }

  async delete(tenantId: string, key: string): Promise<void> {
    const row = await deleteFile(this.db, tenantId, key);
    if (!row) throw notFound();
    await this.dispose(tenantId, [row.object]);
  }

  async list(tenantId: string, input: { prefix?: string | undefined; limit: number; cursor?: string | undefined }) {
    let after: string | undefined;
    if (input.cursor !== undefined) {
      after = Buffer.from(input.cursor, 'base64url').toString('utf8');
      if (Buffer.from(after, 'utf8').toString('base64url') !== input.cursor || after === '') {
        throw new BadRequestError('invalid_cursor', 'The cursor is not one this api issued');
      }
    }
    const rows = await listFiles(this.db, tenantId, { prefix: input.prefix ?? '', after, limit: input.limit + 1 });
    const page = rows.slice(0, input.limit);
    const last = page.at(-1);
    return { items: page.map(view), nextCursor: rows.length > input.limit && last ? Buffer.from(last.key, 'utf8').toString('base64url') : null };
  }

  /** Give back a failed upload's reservation and remove what it stored (the worker retries what fails here). */
  private async discard(tenantId: string, uploadId: string): Promise<void> {
    try {
      await this.storage.remove(tenantId, [uploadId]);
      await abortFileUpload(this.db, tenantId, uploadId);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, tenantId }, 'an aborted upload could not be cleaned up now; its reservation expires and the worker removes it');
    }
  }

  /** Remove retired objects now; what fails stays in the trash for the worker. */
  private async dispose(tenantId: string, objects: string[]): Promise<void> {
    try {
      await this.storage.remove(tenantId, objects);
      await forgetTrashedObjects(this.db, tenantId, objects);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, tenantId }, 'retired file objects could not be removed now; the worker will');
    }
  }
}
