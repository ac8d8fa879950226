import type { S3Client } from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { type ByteRange, type FileStorage, ObjectMissingError, assertStorageName } from './storage.js';

export interface S3StorageOptions {
  bucket: string;
  /** Empty: AWS itself. */
  endpoint?: string | undefined;
  region: string;
  forcePathStyle: boolean;
  /** Empty: the SDK's default credential chain (env, profile, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string } | undefined;
  /** Objects go under `<prefix><tenant id>/`. */
  prefix: string;
}

/** Part size of uploads of unknown length: S3's minimum, so a streamed upload holds at most one part in memory. */
const PART_SIZE = 5 * 1024 * 1024;

type Sdk = typeof import('@aws-sdk/client-s3') & typeof import('@aws-sdk/lib-storage');
let sdk: Promise<Sdk> | undefined;
/**
 * The SDK, loaded when the first S3 storage is made: it costs about a quarter of a second
 * of CPU to load, which every start of an api or worker on the local driver (the default)
 * would otherwise pay.
 */
const loadSdk = () => (sdk ??= Promise.all([import('@aws-sdk/client-s3'), import('@aws-sdk/lib-storage')]).then(([s3, storage]) => ({ ...s3, ...storage })));

/**
 * Files in any S3-compatible store, through the AWS SDK for JavaScript v3: objects under
 * `<prefix><tenant id>/<object id>`. An upload of known length is one streaming PutObject
 * (nothing buffered); one of unknown length (chunked) is a multipart upload of 5 MiB parts,
 * one at a time. The SDK's own payload checksums are asked for only where S3 requires them:
 * we hash every upload ourselves (SHA-256, the ETag), and many S3-compatible servers do not
 * take the SDK's newer streaming-checksum encoding.
 */
export class S3FileStorage implements FileStorage {
  readonly driver = 's3';
  private readonly ready: Promise<{ sdk: Sdk; client: S3Client }>;

  constructor(private readonly options: S3StorageOptions) {
    this.ready = loadSdk().then((sdk) => ({
      sdk,
      client: new sdk.S3Client({
        region: options.region,
        forcePathStyle: options.forcePathStyle,
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        ...(options.endpoint ? { endpoint: options.endpoint } : {}),
        ...(options.credentials ? { credentials: options.credentials } : {}),
      }),
    }));
    // A failed load is every call's error; it must not also be an unhandled rejection.
    this.ready.catch(() => undefined);
  }

  private keyOf(tenantId: string, object: string): string {
    assertStorageName('tenant', tenantId);
    assertStorageName('object', object);
    return `${this.options.prefix}${tenantId}/${object}`;
  }

  async write(tenantId: string, object: string, body: Readable, size: number | undefined, contentType: string): Promise<void> {
    const Key = this.keyOf(tenantId, object);
    const { sdk, client } = await this.ready;
    const params = { Bucket: this.options.bucket, Key, Body: body, ContentType: contentType };
    if (size !== undefined) {
      await client.send(new sdk.PutObjectCommand({ ...params, ContentLength: size }));
      return;
    }
    // Parts of a failed upload are aborted here, so the error that stopped it is the one thrown.
    const upload = new sdk.Upload({ client, params, partSize: PART_SIZE, queueSize: 1, leavePartsOnError: true });
    try {
      await upload.done();
    } catch (err) {
      await upload.abort().catch(() => undefined);
      throw err;
    }
  }

  async read(tenantId: string, object: string, range?: ByteRange): Promise<Readable> {
    const { sdk, client } = await this.ready;
    try {
      const res = await client.send(
        new sdk.GetObjectCommand({ Bucket: this.options.bucket, Key: this.keyOf(tenantId, object), ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }),
      );
      return res.Body as Readable;
    } catch (err) {
      if (err instanceof sdk.NoSuchKey || (err instanceof sdk.S3ServiceException && err.$metadata.httpStatusCode === 404)) throw new ObjectMissingError(object);
      throw err;
    }
  }

  async remove(tenantId: string, objects: readonly string[]): Promise<void> {
    const { sdk, client } = await this.ready;
    for (let i = 0; i < objects.length; i += 1000) {
      const batch = objects.slice(i, i + 1000);
      const res = await client.send(
        new sdk.DeleteObjectsCommand({ Bucket: this.options.bucket, Delete: { Objects: batch.map((o) => ({ Key: this.keyOf(tenantId, o) })), Quiet: true } }),
      );
      const failed = (res.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (failed.length > 0) throw new Error(`S3 refused to delete ${failed.length} objects: ${failed[0]?.Code} ${failed[0]?.Message}`);
    }
  }

  async removeTenant(tenantId: string): Promise<void> {
    assertStorageName('tenant', tenantId);
    const Prefix = `${this.options.prefix}${tenantId}/`;
    const { sdk, client } = await this.ready;
    for (;;) {
      // Listing from the start each time: the page just deleted is gone, so this converges.
      const page = await client.send(new sdk.ListObjectsV2Command({ Bucket: this.options.bucket, Prefix, MaxKeys: 1000 }));
      const keys = (page.Contents ?? []).map((c) => c.Key!).filter(Boolean);
      if (keys.length === 0) return;
      await this.remove(tenantId, keys.map((k) => k.slice(Prefix.length)));
    }
  }

  async close(): Promise<void> {
    const loaded = await this.ready.catch(() => undefined);
    loaded?.client.destroy();
  }
}
