import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { fileUsageOf } from '@tenantry/db';
import { fromPublicId } from '@tenantry/domain';
import { beforeAll, describe, expect, it } from 'vitest';
import { request } from './support/http.js';
import { PrivateS3 } from './support/s3-server.js';
import { useStack } from './support/stack.js';

const BUCKET = 'tenantry-files-test';
let s3: PrivateS3;
const stack = useStack({
  service: async () => {
    s3 = await PrivateS3.start(BUCKET);
    return { env: s3.env(BUCKET), stop: () => s3.stop() };
  },
});

let tenant: { tenantId: string; token: string };
beforeAll(async () => {
  tenant = await stack.signUpTenant();
});

/** The objects the bucket holds for a tenant, straight from the S3 server. */
async function objectsOf(tenantId: string): Promise<string[]> {
  const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: PrivateS3.credentials });
  try {
    const page = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${tenantId}/` }));
    return (page.Contents ?? []).map((c) => c.Key!);
  } finally {
    client.destroy();
  }
}

function upload(key: string, body: Buffer, chunked: boolean): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(stack.api.baseUrl);
    const headers: Record<string, string> = { authorization: `Bearer ${tenant.token}`, 'content-type': 'application/octet-stream' };
    if (!chunked) headers['content-length'] = String(body.length);
    const req = httpRequest({ hostname, port, path: `/v1/files/${key}`, method: 'PUT', headers }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    // In 1 MiB writes: a chunked body arrives as a stream of unknown length.
    for (let i = 0; i < body.length; i += 1024 * 1024) req.write(body.subarray(i, i + 1024 * 1024));
    req.end();
  });
}

describe('files on the s3 driver (an S3-compatible server)', () => {
  it('a known-length upload is one streaming PutObject; download, range and delete go to the bucket', async () => {
    const content = randomBytes(3 * 1024 * 1024 + 17);
    const put = await upload('s3/one.bin', content, false);
    expect(put.status).toBe(201);
    expect(put.body.sha256).toBe(createHash('sha256').update(content).digest('hex'));
    const id = fromPublicId('ten', tenant.tenantId)!;
    expect(await objectsOf(id)).toHaveLength(1);
    const got = await fetch(`${stack.api.baseUrl}/v1/files/s3/one.bin`, { headers: { authorization: `Bearer ${tenant.token}` } });
    expect(Buffer.from(await got.arrayBuffer()).equals(content)).toBe(true);
    const part = await fetch(`${stack.api.baseUrl}/v1/files/s3/one.bin`, { headers: { authorization: `Bearer ${tenant.token}`, range: 'bytes=100-199' } });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer()).equals(content.subarray(100, 200))).toBe(true);
    expect((await fetch(`${stack.api.baseUrl}/v1/files/s3/one.bin`, { method: 'DELETE', headers: { authorization: `Bearer ${tenant.token}` } })).status).toBe(204);
    expect(await objectsOf(id)).toEqual([]);
  });

  it('a chunked upload (unknown length) is a multipart upload of several parts, stored whole', async () => {
    // Two 5 MiB parts and a bit (the trial plan's fileBytes is 10 MiB).
    const content = randomBytes(9 * 1024 * 1024 + 5);
    const put = await upload('s3/multi.bin', content, true);
    expect(put.status, JSON.stringify(put.body)).toBe(201);
    expect(put.body.size).toBe(content.length);
    const got = await fetch(`${stack.api.baseUrl}/v1/files/s3/multi.bin`, { headers: { authorization: `Bearer ${tenant.token}` } });
    expect(Buffer.from(await got.arrayBuffer()).equals(content)).toBe(true);
    const id = fromPublicId('ten', tenant.tenantId)!;
    expect((await fileUsageOf(stack.database.db, id)).committed).toBe(content.length);
  });

  it('a chunked upload past fileBytes is cut off with 413 mid-multipart, and leaves nothing', async () => {
    const id = fromPublicId('ten', tenant.tenantId)!;
    const before = await objectsOf(id);
    const put = await upload('s3/too-big.bin', randomBytes(11 * 1024 * 1024), true);
    expect([put.status, put.body.code]).toEqual([413, 'file_too_large']);
    expect(await objectsOf(id)).toEqual(before);
    expect((await fileUsageOf(stack.database.db, id)).reserved).toBe(0);
  });

  it('an overwrite replaces the object in the bucket; purge empties the tenant\'s prefix', async () => {
    const id = fromPublicId('ten', tenant.tenantId)!;
    expect((await upload('s3/multi.bin', Buffer.from('small'), false)).status).toBe(200);
    expect(await objectsOf(id)).toHaveLength(1);
    expect((await stack.admin('DELETE', `/v1/tenants/${tenant.tenantId}?reason=test`)).status).toBe(200);
    expect(await stack.worker!.purge(new Date(Date.now() + 365 * 86_400_000))).toBeGreaterThanOrEqual(1);
    expect(await objectsOf(id)).toEqual([]);
    expect((await request(stack.api.baseUrl, 'GET', '/v1/files', { token: tenant.token })).status).toBe(401);
  });
});
