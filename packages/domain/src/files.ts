import { z } from 'zod';
import { envBoolean, envPositiveInt, plainAbsolutePath } from './env.js';
import { pageLimit } from './paging.js';

/** Longest file key. */
export const MAX_FILE_KEY_LENGTH = 512;

/**
 * A file key: 1–512 of `[A-Za-z0-9._/-]`, `/`-separated segments, none empty, `.` or `..`
 * and no leading `/`. Keys are names inside the tenant's own namespace, never paths: a
 * key that could be read as a path leaving it (or as two names for one file: `a//b`,
 * `a/./b`) is refused, whatever the driver would make of it.
 */
export const FileKey = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_FILE_KEY_LENGTH, `must be at most ${MAX_FILE_KEY_LENGTH} characters`)
  .regex(/^[A-Za-z0-9._/-]+$/, 'must be made of A-Z a-z 0-9 . _ / -')
  .refine((key) => key.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..'), {
    message: 'must not start or end with "/", nor hold an empty, "." or ".." segment',
  });

export const FileView = z.object({
  key: z.string(),
  /** Bytes. */
  size: z.number().int().nonnegative(),
  /** As the upload's Content-Type said (default application/octet-stream). */
  contentType: z.string(),
  /** Lower-case hex SHA-256 of the content; also the download's ETag. */
  sha256: z.string(),
  /** When this content was stored (an overwrite stores new content). */
  createdAt: z.string(),
});
export type FileView = z.infer<typeof FileView>;

export const FileRequest = z.strictObject({ key: FileKey });

export const ListFilesRequest = z.strictObject({
  /** Only keys starting with this. */
  prefix: z.string().max(MAX_FILE_KEY_LENGTH).regex(/^[A-Za-z0-9._/-]*$/, 'must be made of A-Z a-z 0-9 . _ / -').optional(),
  limit: pageLimit(1000, 100),
  /** The `nextCursor` of the previous page. */
  cursor: z.string().max(MAX_FILE_KEY_LENGTH + 16).optional(),
});

export const FilePage = z.object({ items: z.array(FileView), nextCursor: z.string().nullable() });

/** Content types are kept as sent, within reason: a header value, not a place for anything else. */
export const ContentType = z
  .string()
  .max(255)
  .regex(/^[\x21-\x7e]+\/[\x20-\x7e]+$/, 'must be a media type like text/plain');

/** File storage settings, shared by the api (uploads, downloads) and the worker (purge, expired uploads). */
export const filesEnv = {
  /** `local` (a directory per tenant under FILE_STORAGE_DIR) or `s3` (any S3-compatible store). */
  FILE_STORAGE_DRIVER: z.enum(['local', 's3']).default('local'),
  /** local: the directory (default <TENANTRY_DATA_DIR>/files). */
  FILE_STORAGE_DIR: plainAbsolutePath.optional(),
  /** s3: the bucket, its endpoint (empty: AWS), region, and credentials (empty: the SDK's default chain). */
  S3_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name').optional(),
  S3_ENDPOINT: z.url().optional(),
  S3_REGION: z.string().min(1).default('us-east-1'),
  S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  /** Path-style URLs (bucket in the path): most S3-compatible servers want them. */
  S3_FORCE_PATH_STYLE: envBoolean.default(true),
  /** Objects under this prefix in the bucket (several installations may share one). */
  S3_PREFIX: z.string().regex(/^([A-Za-z0-9._-]+\/)*$/, 'must be empty or end with "/"').default(''),
  /**
   * How long an upload's reservation lives without progress: one that nobody finished (the
   * api was killed) is released, and its partial object removed, after this.
   */
  FILE_UPLOAD_RESERVATION_TTL_MS: envPositiveInt.default(15 * 60_000),
};

export interface FilesEnv {
  FILE_STORAGE_DRIVER: 'local' | 's3';
  FILE_STORAGE_DIR?: string | undefined;
  S3_BUCKET?: string | undefined;
  S3_ENDPOINT?: string | undefined;
  S3_ACCESS_KEY_ID?: string | undefined;
  S3_SECRET_ACCESS_KEY?: string | undefined;
}

/** The s3 driver needs a bucket; credentials come in pairs. */
export function checkFilesEnv(env: FilesEnv, ctx: z.RefinementCtx): void {
  if (env.FILE_STORAGE_DRIVER === 's3' && !env.S3_BUCKET) ctx.addIssue({ code: 'custom', path: ['S3_BUCKET'], message: 'is required with FILE_STORAGE_DRIVER=s3' });
  if (!!env.S3_ACCESS_KEY_ID !== !!env.S3_SECRET_ACCESS_KEY) {
    ctx.addIssue({ code: 'custom', path: [env.S3_ACCESS_KEY_ID ? 'S3_SECRET_ACCESS_KEY' : 'S3_ACCESS_KEY_ID'], message: 'S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together' });
  }
}
