import type { Readable } from 'node:stream';

/** A byte range of an object, both ends inclusive (as in HTTP). */
export interface ByteRange {
  start: number;
  end: number;
}

/** The object is not in the storage (removed meanwhile, or never completed). */
export class ObjectMissingError extends Error {
  constructor(object: string) {
    super(`object ${object} is not in the file storage`);
  }
}

/**
 * Where files' bytes live, behind one interface: a directory per tenant (`local`) or an
 * S3-compatible bucket (`s3`). A stored object is immutable and named by a generated id
 * (the upload's), never by the tenant's key: keys are metadata in Postgres, so no key can
 * reach a path, and an overwrite is a new object that a commit points the key at.
 */
export interface FileStorage {
  readonly driver: 'local' | 's3';
  /**
   * Store `body` as the tenant's object, streaming (never the whole body in memory);
   * resolves once it is durable. `size`: the exact length when known up front. On error
   * (the body failed, the store refused) what was written is removed, best effort.
   */
  write(tenantId: string, object: string, body: Readable, size: number | undefined, contentType: string): Promise<void>;
  /** A stream of the object (or of `range` of it); ObjectMissingError when it is not there. */
  read(tenantId: string, object: string, range?: ByteRange): Promise<Readable>;
  /** Remove objects of a tenant; ones already gone are fine. */
  remove(tenantId: string, objects: readonly string[]): Promise<void>;
  /** Remove everything of a tenant (its purge). Idempotent. */
  removeTenant(tenantId: string): Promise<void>;
  close(): Promise<void>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Tenant ids and object names are generated uuids; anything else reaching a driver is a bug, refused before it can name a path. */
export function assertStorageName(kind: 'tenant' | 'object', value: string): void {
  if (!UUID.test(value)) throw new Error(`invalid ${kind} name for the file storage: ${JSON.stringify(value)}`);
}
