import path from 'node:path';
import { LocalFileStorage } from './local.js';
import { S3FileStorage } from './s3.js';
import type { FileStorage } from './storage.js';

export * from './storage.js';
export { FLUSH_EVERY_BYTES, LocalFileStorage, READ_BUFFER_MAX, READ_BUFFER_MIN } from './local.js';
export { S3FileStorage, type S3StorageOptions } from './s3.js';

/** The file storage settings both apps parse (domain's filesEnv). */
export interface FileStorageConfig {
  FILE_STORAGE_DRIVER: 'local' | 's3';
  FILE_STORAGE_DIR?: string | undefined;
  TENANTRY_DATA_DIR: string;
  S3_BUCKET?: string | undefined;
  S3_ENDPOINT?: string | undefined;
  S3_REGION: string;
  S3_ACCESS_KEY_ID?: string | undefined;
  S3_SECRET_ACCESS_KEY?: string | undefined;
  S3_FORCE_PATH_STYLE: boolean;
  S3_PREFIX: string;
}

/** The local driver's directory: FILE_STORAGE_DIR, else <TENANTRY_DATA_DIR>/files (as the worker defaults its cluster directory). */
export function fileStorageDir(config: Pick<FileStorageConfig, 'FILE_STORAGE_DIR' | 'TENANTRY_DATA_DIR'>): string {
  return config.FILE_STORAGE_DIR ?? path.join(config.TENANTRY_DATA_DIR, 'files');
}

/** The configured driver (one per process: the api's and the worker's must name the same storage). */
export function createFileStorage(config: FileStorageConfig): FileStorage {
  if (config.FILE_STORAGE_DRIVER === 's3') {
    return new S3FileStorage({
      bucket: config.S3_BUCKET!,
      endpoint: config.S3_ENDPOINT,
      region: config.S3_REGION,
      forcePathStyle: config.S3_FORCE_PATH_STYLE,
      credentials: config.S3_ACCESS_KEY_ID && config.S3_SECRET_ACCESS_KEY ? { accessKeyId: config.S3_ACCESS_KEY_ID, secretAccessKey: config.S3_SECRET_ACCESS_KEY } : undefined,
      prefix: config.S3_PREFIX,
    });
  }
  return new LocalFileStorage(fileStorageDir(config));
}
