import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';

/**
 * A private S3-compatible server for a test file: s3rver, a real HTTP server speaking the S3
 * REST API over a directory (SigV4, PutObject with a streamed body, multipart uploads,
 * ranged GetObject, ListObjectsV2, DeleteObjects). Chosen because it is what the two
 * registries this project may use offer: MinIO, Garage and SeaweedFS are packaged in
 * neither npm nor Debian 12, and Debian's radosgw needs a whole Ceph cluster behind it.
 * Nothing of the AWS SDK is mocked: the driver talks HTTP to it like to any S3.
 */
export class PrivateS3 {
  private constructor(
    private readonly close: () => Promise<void>,
    private readonly dir: string,
    readonly endpoint: string,
  ) {}

  static readonly credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

  static async start(bucket: string): Promise<PrivateS3> {
    const dir = mkdtempSync(path.join(tmpdir(), 'tenantry-s3-'));
    const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir });
    const { port } = (await server.run()) as { port: number };
    const endpoint = `http://127.0.0.1:${port}`;
    await PrivateS3.createBucket(endpoint, bucket);
    return new PrivateS3(() => server.close(), dir, endpoint);
  }

  /**
   * The same server in a process of its own, as an S3 endpoint is: for benchmarks, where an
   * S3 server sharing the measuring process's event loop would slow both paths measured.
   */
  static async startProcess(bucket: string): Promise<PrivateS3> {
    const dir = mkdtempSync(path.join(tmpdir(), 'tenantry-s3-'));
    const bin = path.join(path.dirname(createRequire(import.meta.url).resolve('s3rver/package.json')), 'bin', 's3rver.js');
    const child = spawn(process.execPath, [bin, '-d', dir, '-a', '127.0.0.1', '-p', '0', '--silent'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`s3rver did not start: ${out}`)), 15_000);
      const seen = (chunk: Buffer) => {
        out += chunk;
        const match = /listening on [^:]+:(\d+)/.exec(out);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      };
      child.stdout.on('data', seen);
      child.stderr.on('data', seen);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited with ${code}: ${out}`));
      });
    });
    const endpoint = `http://127.0.0.1:${port}`;
    const stop = () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
    try {
      await PrivateS3.createBucket(endpoint, bucket);
    } catch (err) {
      await stop();
      throw err;
    }
    return new PrivateS3(stop, dir, endpoint);
  }

  private static async createBucket(endpoint: string, bucket: string): Promise<void> {
    const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: PrivateS3.credentials });
    try {
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
    } finally {
      client.destroy();
    }
  }

  /** What the api and worker need to use it. */
  env(bucket: string): Record<string, string> {
    return {
      FILE_STORAGE_DRIVER: 's3',
      S3_ENDPOINT: this.endpoint,
      S3_BUCKET: bucket,
      S3_ACCESS_KEY_ID: PrivateS3.credentials.accessKeyId,
      S3_SECRET_ACCESS_KEY: PrivateS3.credentials.secretAccessKey,
    };
  }

  async stop(): Promise<void> {
    await this.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
