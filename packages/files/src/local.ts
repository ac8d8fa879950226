import { type FileHandle, mkdir, open, rm, unlink } from 'node:fs/promises';
import path from 'node:path';
import { type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type ByteRange, type FileStorage, ObjectMissingError, assertStorageName } from './storage.js';

/**
 * Read buffers: a download reads its file in chunks of this size. 1 MiB chunks cut the api's
 * CPU per MiB served by about 40 % against 256 KiB (test/bench/files.ts: 1.1–1.3 → 0.6–0.8 ms),
 * but a slow client holds its chunk as long as it is slow, so the open reads of one storage
 * share READ_BUFFER_BUDGET: a read gets 1 MiB while the budget has it, else what is left,
 * never below 64 KiB. 1,000 slow downloads hold 32 MiB + 968 × 64 KiB, not 1,000 MiB.
 */
export const READ_BUFFER_MAX = 1024 * 1024;
export const READ_BUFFER_MIN = 64 * 1024;
const READ_BUFFER_BUDGET = 32 * READ_BUFFER_MAX;

/**
 * A write flushes what it has written so far to the disk every FLUSH_EVERY_BYTES, in the
 * background while the next bytes arrive, so the fsync that makes the file durable at the
 * end has only the last stretch left to write.
 */
export const FLUSH_EVERY_BYTES = 8 * 1024 * 1024;

/** What is left of `buffers` once their first `bytes` are written (a short write leaves a tail). */
function afterBytes(buffers: Buffer[], bytes: number): Buffer[] {
  let skip = bytes;
  const rest: Buffer[] = [];
  for (const buffer of buffers) {
    if (skip >= buffer.length) skip -= buffer.length;
    else {
      rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
      skip = 0;
    }
  }
  return rest;
}

/**
 * A file written from a stream and fsynced before it finishes (what `flush: true` does for
 * fs.createWriteStream), but with writeback started along the way: every FLUSH_EVERY_BYTES
 * an fdatasync of what is written so far runs on the thread pool while the body keeps
 * arriving (at most one at a time). Waiting for all of it at the end made an upload's time
 * the network's plus the disk's; now it is close to the larger of the two.
 */
class DurableFileWriter extends Writable {
  private written = 0;
  private flushedAt = 0;
  private flushing: Promise<void> | undefined;
  /**
   * A background flush's failure, kept to fail the write with: Linux reports a writeback
   * error to one fsync only, so a later fsync may succeed over pages that were never
   * written (Postgres' "fsyncgate"); a write that saw one is not stored.
   */
  private flushError: Error | undefined;

  constructor(private readonly handle: FileHandle) {
    super({ highWaterMark: 1024 * 1024 });
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.writeAll(chunks.map((c) => c.chunk)).then(() => callback(), callback);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeAll([chunk]).then(() => callback(), callback);
  }

  private async writeAll(buffers: Buffer[]): Promise<void> {
    let pending = buffers;
    while (pending.length > 0) {
      const { bytesWritten } = await this.handle.writev(pending);
      if (bytesWritten === 0) throw new Error('the file storage accepted no bytes');
      this.written += bytesWritten;
      pending = afterBytes(pending, bytesWritten);
    }
    if (this.flushError) throw this.flushError;
    if (!this.flushing && this.written - this.flushedAt >= FLUSH_EVERY_BYTES) {
      this.flushedAt = this.written;
      this.flushing = this.handle
        .datasync()
        .catch((err: Error) => {
          this.flushError ??= err;
        })
        .finally(() => (this.flushing = undefined));
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    Promise.resolve(this.flushing)
      .then(() => {
        if (this.flushError) throw this.flushError;
        return this.handle.sync();
      })
      .then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.handle.close().then(
      () => callback(error),
      (closeError: Error) => callback(error ?? closeError),
    );
  }
}

/**
 * Files on this machine's disk: `<root>/<tenant id>/<object id>`, a directory per tenant.
 * Every path is built from generated ids and still resolved and checked to stay inside
 * its tenant's directory. Writes are fsynced before they count as stored. Several api
 * instances need the directory shared (NFS, a volume), or the s3 driver.
 */
export class LocalFileStorage implements FileStorage {
  readonly driver = 'local';
  private readonly root: string;
  /** Read-buffer bytes of the reads open now (see READ_BUFFER_BUDGET). */
  private readBuffers = 0;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  private tenantDir(tenantId: string): string {
    assertStorageName('tenant', tenantId);
    const dir = path.resolve(this.root, tenantId);
    if (path.dirname(dir) !== this.root) throw new Error('tenant directory outside the file storage root');
    return dir;
  }

  private pathOf(tenantId: string, object: string): string {
    assertStorageName('object', object);
    const dir = this.tenantDir(tenantId);
    const file = path.resolve(dir, object);
    if (path.dirname(file) !== dir) throw new Error('object path outside its tenant directory');
    return file;
  }

  async write(tenantId: string, object: string, body: Readable, _size: number | undefined, _contentType: string): Promise<void> {
    const file = this.pathOf(tenantId, object);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    try {
      // wx: an object id is never reused; finding one there is a bug, not something to overwrite.
      // Fsynced before the write resolves, so a stored file survives a power cut.
      const handle = await open(file, 'wx', 0o600).catch((err: unknown) => {
        // As pipeline would have: a body nobody will read is let go.
        body.destroy();
        throw err;
      });
      await pipeline(body, new DurableFileWriter(handle));
    } catch (err) {
      await unlink(file).catch(() => undefined);
      throw err;
    }
  }

  async read(tenantId: string, object: string, range?: ByteRange): Promise<Readable> {
    // Opened before answering: a file removed after this (an overwrite committed) stays readable through the handle.
    const handle = await open(this.pathOf(tenantId, object), 'r').catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' ? new ObjectMissingError(object) : err;
    });
    const buffer = Math.min(READ_BUFFER_MAX, Math.max(READ_BUFFER_MIN, READ_BUFFER_BUDGET - this.readBuffers));
    const stream = handle.createReadStream({ ...(range ? { start: range.start, end: range.end } : {}), highWaterMark: buffer });
    this.readBuffers += buffer;
    stream.once('close', () => (this.readBuffers -= buffer));
    return stream;
  }

  async remove(tenantId: string, objects: readonly string[]): Promise<void> {
    for (const object of objects) {
      await unlink(this.pathOf(tenantId, object)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
  }

  async removeTenant(tenantId: string): Promise<void> {
    await rm(this.tenantDir(tenantId), { recursive: true, force: true });
  }

  async close(): Promise<void> {}
}
