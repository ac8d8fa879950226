import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileUsageOf } from '@tenantry/db';
import { fromPublicId } from '@tenantry/domain';
import { FLUSH_EVERY_BYTES, LocalFileStorage, READ_BUFFER_MAX, READ_BUFFER_MIN } from '@tenantry/files';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, waitFor } from './support/http.js';
import { createTenant, startMove, tenantRow, waitForMove } from './support/moves.js';
import { useStack } from './support/stack.js';
import { dropTenantDatabasesOf } from './support/tenant-databases.js';

const FILES_DIR = mkdtempSync(path.join(tmpdir(), 'tenantry-files-'));
afterAll(() => rmSync(FILES_DIR, { recursive: true, force: true }));

const stack = useStack({ api: { FILE_STORAGE_DIR: FILES_DIR }, workerEnv: { FILE_STORAGE_DIR: FILES_DIR } });
// A tenant moved to database isolation has a database of its own; registered after
// useStack's hook, this runs before the control plane (which names it) is dropped.
afterAll(async () => {
  if (stack.database) await dropTenantDatabasesOf(stack.database.name);
});

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** How many body bytes had been sent when the answer's status arrived. */
  sentWhenAnswered: number;
}

/**
 * One request over node:http, with a body sent in chunks (`chunked`: no Content-Length),
 * for uploads of exact bytes and to see when the status arrives.
 */
function raw(
  baseUrl: string,
  method: string,
  pathname: string,
  options: { token?: string; body?: Buffer; headers?: Record<string, string>; chunked?: boolean; chunkBytes?: number; holdAfterBytes?: number } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (options.body && !options.chunked) headers['content-length'] = String(options.body.length);
    let sent = 0;
    let sentWhenAnswered = -1;
    // Not new URL(pathname): it would resolve `..` and `.` segments before they are sent.
    const { hostname, port } = new URL(baseUrl);
    const req = httpRequest({ hostname, port, path: pathname, method, headers }, (res) => {
      sentWhenAnswered = sent;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), sentWhenAnswered }));
      res.on('error', reject);
    });
    req.on('error', (err) => (sentWhenAnswered >= 0 ? undefined : reject(err)));
    const body = options.body;
    if (!body) return void req.end();
    const size = options.chunkBytes ?? 64 * 1024;
    let offset = 0;
    const pump = () => {
      while (offset < body.length) {
        if (sentWhenAnswered >= 0) return void req.destroy();
        // Sends no more until an answer comes: a server that waits for the whole body never answers.
        if (options.holdAfterBytes !== undefined && sent >= options.holdAfterBytes) return;
        const chunk = body.subarray(offset, offset + size);
        offset += chunk.length;
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let a: { tenantId: string; token: string };
let b: { tenantId: string; token: string };
const idOf = (t: { tenantId: string }) => fromPublicId('ten', t.tenantId)!;

beforeAll(async () => {
  [a, b] = await Promise.all([stack.signUpTenant(), stack.signUpTenant()]);
});

const put = (token: string, key: string, body: Buffer, headers: Record<string, string> = {}, chunked = false) =>
  raw(stack.api.baseUrl, 'PUT', `/v1/files/${key}`, { token, body, headers, chunked });
const get = (token: string, key: string, headers: Record<string, string> = {}) => raw(stack.api.baseUrl, 'GET', `/v1/files/${key}`, { token, headers });
const json = (r: RawResponse) => JSON.parse(r.body.toString('utf8'));

describe('files: upload, download, list, delete', () => {
  it('PUT stores the bytes and Content-Type (201), GET streams them back with ETag and Content-Length, an overwrite is 200', async () => {
    const content = randomBytes(300_000);
    const created = await put(a.token, 'reports/2026/q4.bin', content, { 'content-type': 'application/x-report' });
    expect(created.status, created.body.toString()).toBe(201);
    expect(json(created)).toMatchObject({ key: 'reports/2026/q4.bin', size: content.length, contentType: 'application/x-report', sha256: sha256(content) });

    const got = await get(a.token, 'reports/2026/q4.bin');
    expect(got.status).toBe(200);
    expect(got.body.equals(content)).toBe(true);
    expect(got.headers).toMatchObject({ 'content-type': 'application/x-report', 'content-length': String(content.length), etag: `"${sha256(content)}"`, 'accept-ranges': 'bytes' });

    // The key's slash may be sent encoded: the same file.
    expect((await get(a.token, 'reports%2F2026%2Fq4.bin')).body.equals(content)).toBe(true);

    const again = Buffer.from('smaller now');
    const replaced = await put(a.token, 'reports/2026/q4.bin', again, { 'content-type': 'text/plain' });
    expect(replaced.status).toBe(200);
    expect((await get(a.token, 'reports/2026/q4.bin')).body.toString()).toBe('smaller now');
    // The counter follows: the old content's bytes are gone from it.
    expect((await fileUsageOf(stack.database.db, idOf(a))).committed).toBe(again.length);
  });

  it('HEAD answers the headers of a GET without the body; Range answers 206, 416 past the end; If-None-Match 304', async () => {
    const content = Buffer.from('0123456789abcdefghij');
    expect((await put(a.token, 'range.txt', content, { 'content-type': 'text/plain' })).status).toBe(201);
    const head = await raw(stack.api.baseUrl, 'HEAD', '/v1/files/range.txt', { token: a.token });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe('20');
    expect(head.headers.etag).toBe(`"${sha256(content)}"`);
    expect(head.body.length).toBe(0);

    const part = await get(a.token, 'range.txt', { range: 'bytes=5-9' });
    expect([part.status, part.body.toString(), part.headers['content-range'], part.headers['content-length']]).toEqual([206, '56789', 'bytes 5-9/20', '5']);
    expect((await get(a.token, 'range.txt', { range: 'bytes=15-' })).body.toString()).toBe('fghij');
    expect((await get(a.token, 'range.txt', { range: 'bytes=-3' })).body.toString()).toBe('hij');
    const past = await get(a.token, 'range.txt', { range: 'bytes=20-30' });
    expect([past.status, past.headers['content-range']]).toEqual([416, 'bytes */20']);
    // Several ranges are not served as multipart: the whole file.
    expect((await get(a.token, 'range.txt', { range: 'bytes=0-1,5-6' })).status).toBe(200);
    expect((await get(a.token, 'range.txt', { 'if-none-match': `"${sha256(content)}"` })).status).toBe(304);
  });

  it('lists by prefix with keyset pagination, in key order', async () => {
    for (const key of ['list/c', 'list/a', 'list/b/1', 'list/b/2', 'other/x']) expect((await put(a.token, key, Buffer.from(key))).status).toBe(201);
    const first = await request(stack.api.baseUrl, 'GET', '/v1/files?prefix=list/&limit=2', { token: a.token });
    expect(first.status).toBe(200);
    expect(first.body.items.map((f: { key: string }) => f.key)).toEqual(['list/a', 'list/b/1']);
    const second = await request(stack.api.baseUrl, 'GET', `/v1/files?prefix=list/&limit=2&cursor=${first.body.nextCursor}`, { token: a.token });
    expect(second.body.items.map((f: { key: string }) => f.key)).toEqual(['list/b/2', 'list/c']);
    expect(second.body.nextCursor).toBeNull();
    expect((await request(stack.api.baseUrl, 'GET', '/v1/files?cursor=not-a-cursor!', { token: a.token })).status).toBe(400);
  });

  it('DELETE answers 204, frees the bytes, and removes the object from the storage', async () => {
    const content = randomBytes(10_000);
    expect((await put(a.token, 'gone.bin', content)).status).toBe(201);
    const before = (await fileUsageOf(stack.database.db, idOf(a))).committed;
    const objects = () => readdirSync(path.join(FILES_DIR, idOf(a))).length;
    const n = objects();
    const deleted = await raw(stack.api.baseUrl, 'DELETE', '/v1/files/gone.bin', { token: a.token });
    expect([deleted.status, deleted.body.length]).toEqual([204, 0]);
    expect((await get(a.token, 'gone.bin')).status).toBe(404);
    expect((await fileUsageOf(stack.database.db, idOf(a))).committed).toBe(before - content.length);
    expect(objects()).toBe(n - 1);
    expect((await raw(stack.api.baseUrl, 'DELETE', '/v1/files/gone.bin', { token: a.token })).status).toBe(404);
  });

  it.each([
    ['a leading slash', '%2Fabs'],
    ['a .. segment', 'a/../b'],
    ['an encoded .. segment', 'a/%2E%2E/b'],
    ['an empty segment', 'a//b'],
    ['a . segment', 'a/./b'],
    ['a character outside the set', 'a%20b'],
    ['a trailing slash', 'dir/'],
    ['513 characters', 'k'.repeat(513)],
  ])('a key with %s is 400 and stores nothing', async (_why, key) => {
    const before = await fileUsageOf(stack.database.db, idOf(a));
    const res = await put(a.token, key, Buffer.from('x'));
    expect(res.status, res.body.toString()).toBe(400);
    expect(json(res).code).toBe('validation_failed');
    expect(await fileUsageOf(stack.database.db, idOf(a))).toEqual(before);
    expect((await get(a.token, key)).status).toBe(400);
  });

  it("another tenant's key is 404 for every method, and its files never show in a list", async () => {
    expect((await put(b.token, 'secret/b.txt', Buffer.from('B only'))).status).toBe(201);
    expect((await get(a.token, 'secret/b.txt')).status).toBe(404);
    expect((await raw(stack.api.baseUrl, 'HEAD', '/v1/files/secret/b.txt', { token: a.token })).status).toBe(404);
    expect((await raw(stack.api.baseUrl, 'DELETE', '/v1/files/secret/b.txt', { token: a.token })).status).toBe(404);
    const listed = await request(stack.api.baseUrl, 'GET', '/v1/files?prefix=secret/', { token: a.token });
    expect(listed.body.items).toEqual([]);
    // A's write to the same key is A's own file; B's is untouched.
    expect((await put(a.token, 'secret/b.txt', Buffer.from('A'))).status).toBe(201);
    expect((await get(b.token, 'secret/b.txt')).body.toString()).toBe('B only');
  });

  it('files are REST only: a tRPC call of the upload is refused', async () => {
    const res = await request(stack.api.baseUrl, 'POST', '/trpc/files.put', { token: a.token, body: { key: 'x' } });
    expect(res.status).toBe(404);
    // Listing works over tRPC too.
    const list = await request(stack.api.baseUrl, 'GET', `/trpc/files.list?input=${encodeURIComponent(JSON.stringify({ prefix: 'list/' }))}`, { token: a.token });
    expect(list.status).toBe(200);
  });

  it('downloads count toward egressBytes, and every file call toward apiRequests', async () => {
    const content = randomBytes(200_000);
    expect((await put(a.token, 'egress.bin', content)).status).toBe(201);
    const usage = async () => (await request(stack.api.baseUrl, 'GET', '/v1/usage', { token: a.token })).body.meters;
    const before = await usage();
    expect((await get(a.token, 'egress.bin')).body.length).toBe(content.length);
    await waitFor(async () => {
      const after = await usage();
      return after.egressBytes.total - before.egressBytes.total >= content.length ? true : undefined;
    });
    const routes = (await usage()).apiRequests.breakdown.map((r: { route: string; method: string }) => `${r.method} ${r.route}`);
    expect(routes).toEqual(expect.arrayContaining(['PUT /v1/files/{key}', 'GET /v1/files/{key}', 'HEAD /v1/files/{key}', 'DELETE /v1/files/{key}', 'GET /v1/files']));
  });
});

describe('files: limits', () => {
  let c: { tenantId: string; token: string };
  beforeAll(async () => {
    c = await stack.signUpTenant();
    const res = await stack.admin('PUT', `/v1/tenants/${c.tenantId}/billing-state`, { body: { limits: { fileBytes: 1_000_000, fileStorageBytes: 3_000_000 } } });
    expect(res.status).toBe(200);
  });

  it('a file over fileBytes is 413 file_too_large as soon as Content-Length says so, before the body is read; nothing is kept', async () => {
    // Declares 8 MB but sends only the first 64 KB and then waits: the answer must come
    // from Content-Length alone (kernel socket buffers could hide a server that reads a
    // few MB first, so the client holds back the rest rather than counting bytes).
    const res = await raw(stack.api.baseUrl, 'PUT', '/v1/files/big.bin', { token: c.token, body: randomBytes(8_000_000), holdAfterBytes: 64 * 1024 });
    expect(res.status).toBe(413);
    expect(json(res).code).toBe('file_too_large');
    expect(res.sentWhenAnswered).toBe(64 * 1024);
    expect(await fileUsageOf(stack.database.db, idOf(c))).toEqual({ committed: 0, reserved: 0 });
  });

  it('a chunked upload (no Content-Length) is cut off with 413 when its stream crosses fileBytes; nothing is kept', async () => {
    const res = await put(c.token, 'big-chunked.bin', randomBytes(1_500_000), {}, true);
    expect(res.status).toBe(413);
    expect(json(res).code).toBe('file_too_large');
    expect(await fileUsageOf(stack.database.db, idOf(c))).toEqual({ committed: 0, reserved: 0 });
    expect(existsSync(path.join(FILES_DIR, idOf(c))) ? readdirSync(path.join(FILES_DIR, idOf(c))) : []).toEqual([]);
    expect((await get(c.token, 'big-chunked.bin')).status).toBe(404);
  });

  it('a chunked upload that crosses a small fileBytes before the storage has opened is 413 too, and the api lives on', async () => {
    const s = await stack.signUpTenant();
    expect((await stack.admin('PUT', `/v1/tenants/${s.tenantId}/billing-state`, { body: { limits: { fileBytes: 20_000 } } })).status).toBe(200);
    // One write of the whole body: the limit is crossed within the first chunks, while the storage is still opening.
    const res = await raw(stack.api.baseUrl, 'PUT', '/v1/files/small-limit.bin', { token: s.token, body: randomBytes(400_000), chunked: true, chunkBytes: 400_000 });
    expect([res.status, json(res).code]).toEqual([413, 'file_too_large']);
    expect(await fileUsageOf(stack.database.db, idOf(s))).toEqual({ committed: 0, reserved: 0 });
    expect((await put(s.token, 'fits.bin', randomBytes(10_000))).status).toBe(201);
  });

  it('20 concurrent uploads that together exceed fileStorageBytes never leave stored bytes above it; the rest get 402 quota_exceeded', async () => {
    const size = 400_000;
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => put(c.token, `race/${i}.bin`, randomBytes(size), {}, i % 2 === 1)));
    const statuses = results.map((r) => r.status);
    const stored = statuses.filter((s) => s === 201).length;
    expect(stored).toBeGreaterThan(0);
    expect(stored * size).toBeLessThanOrEqual(3_000_000);
    for (const r of results.filter((r) => r.status !== 201)) expect([r.status, json(r).code, json(r).resource]).toEqual([402, 'quota_exceeded', 'fileStorageBytes']);
    const usage = await fileUsageOf(stack.database.db, idOf(c));
    expect(usage).toEqual({ committed: stored * size, reserved: 0 });
    const listed = await request(stack.api.baseUrl, 'GET', '/v1/files?prefix=race/&limit=100', { token: c.token });
    expect(listed.body.items.reduce((n: number, f: { size: number }) => n + f.size, 0)).toBe(stored * size);
  });

  it('over the quota, DELETE still works and frees room for the next upload', async () => {
    // One byte more than is left.
    const free = 3_000_000 - (await fileUsageOf(stack.database.db, idOf(c))).committed;
    const size = Math.min(free + 1, 1_000_000);
    if (size <= free) expect((await put(c.token, 'filler.bin', randomBytes(free - 999_999))).status).toBe(201);
    const full = await put(c.token, 'one-more.bin', randomBytes(1_000_000));
    expect([full.status, json(full).code]).toEqual([402, 'quota_exceeded']);
    const listed = await request(stack.api.baseUrl, 'GET', '/v1/files?prefix=race/&limit=100', { token: c.token });
    for (const f of listed.body.items.slice(0, 3)) expect((await raw(stack.api.baseUrl, 'DELETE', `/v1/files/${f.key}`, { token: c.token })).status).toBe(204);
    expect((await put(c.token, 'one-more.bin', randomBytes(1_000_000))).status).toBe(201);
  });

  it('the worker samples fileStorageBytes from the counter into the usage API', async () => {
    await stack.worker!.sampleUsage();
    const usage = await request(stack.api.baseUrl, 'GET', '/v1/usage', { token: c.token });
    expect(usage.body.meters.fileStorageBytes.current).toBe((await fileUsageOf(stack.database.db, idOf(c))).committed);
  });

  it('a tenant without the files capability gets 403 capability_missing', async () => {
    const res = await stack.admin('PUT', `/v1/tenants/${c.tenantId}/billing-state`, { body: { capabilities: ['api_keys'] } });
    expect(res.status).toBe(200);
    const refused = await put(c.token, 'nope.txt', Buffer.from('x'));
    expect([refused.status, json(refused).code]).toEqual([403, 'capability_missing']);
    await stack.admin('PUT', `/v1/tenants/${c.tenantId}/billing-state`, { body: { capabilities: null } });
  });
});

describe('files: an upload whose client vanishes', () => {
  it('gives its reservation back at once and removes its partial object', async () => {
    const d = await stack.signUpTenant();
    const tenant = idOf(d);
    // A client that sends half of what it announced, then vanishes.
    await new Promise<void>((resolve) => {
      const req = httpRequest(new URL('/v1/files/half.bin', stack.api.baseUrl), {
        method: 'PUT',
        headers: { authorization: `Bearer ${d.token}`, 'content-length': '2000000' },
      });
      req.on('error', () => resolve());
      req.write(randomBytes(1_000_000));
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 500);
    });
    // The api saw the client go: it gave the reservation back itself.
    await waitFor(async () => ((await fileUsageOf(stack.database.db, tenant)).reserved === 0 ? true : undefined));
    expect((await fileUsageOf(stack.database.db, tenant)).committed).toBe(0);
    const dir = path.join(FILES_DIR, tenant);
    expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
  });
});

describe('files: purge', () => {
  it("a purged tenant's files go with everything else", async () => {
    const e = await stack.signUpTenant();
    expect((await put(e.token, 'keep.txt', Buffer.from('soon gone'))).status).toBe(201);
    const dir = path.join(FILES_DIR, idOf(e));
    expect(readdirSync(dir).length).toBe(1);
    expect((await stack.admin('DELETE', `/v1/tenants/${e.tenantId}?reason=test`)).status).toBe(200);
    expect(await stack.worker!.purge(new Date(Date.now() + 365 * 86_400_000))).toBeGreaterThanOrEqual(1);
    expect(existsSync(dir)).toBe(false);
    const rows = await stack.database.db.selectFrom('tenant_files').select('key').where('tenant_id', '=', idOf(e)).execute();
    expect(rows).toEqual([]);
  });
});

describe('files: a tier move', () => {
  it('leaves them where they are: same bytes and ETag afterwards, no object copied, rewritten or removed, no metadata changed', async () => {
    const t = await createTenant(stack, { plan: 'pro', isolation: 'schema' });
    const contents = new Map([
      ['notes/readme.txt', Buffer.from('stays put through a move')],
      ['blobs/data.bin', randomBytes(300_000)],
    ]);
    for (const [key, body] of contents) expect((await put(t.token, key, body, { 'content-type': key.endsWith('.txt') ? 'text/plain' : 'application/octet-stream' })).status).toBe(201);
    const dir = path.join(FILES_DIR, t.id);
    /** What a copy (new inode), a rewrite (mtime) or a removal would change. */
    const objects = () =>
      readdirSync(dir)
        .sort()
        .map((name) => {
          const st = statSync(path.join(dir, name));
          return { name, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
        });
    const metadata = async () => ({
      files: await stack.database.db.selectFrom('tenant_files').selectAll().where('tenant_id', '=', t.id).orderBy('key').execute(),
      usage: await stack.database.db.selectFrom('file_usage').select(['committed_bytes', 'reserved_bytes']).where('tenant_id', '=', t.id).execute(),
      trash: await stack.database.db.selectFrom('file_trash').select('object').where('tenant_id', '=', t.id).execute(),
    });
    const etags = new Map<string, string>();
    for (const key of contents.keys()) etags.set(key, String((await get(t.token, key)).headers.etag));
    const objectsBefore = objects();
    const metadataBefore = await metadata();
    expect(objectsBefore).toHaveLength(2);
    expect(metadataBefore.files.map((f) => f.key)).toEqual(['blobs/data.bin', 'notes/readme.txt']);

    const moveId = await startMove(stack, t, 'database');
    expect(await waitForMove(stack, t, moveId)).toMatchObject({ from: 'schema', to: 'database', status: 'done' });
    expect((await tenantRow(stack, t)).isolation).toBe('database');

    expect(objects()).toEqual(objectsBefore);
    expect(await metadata()).toEqual(metadataBefore);
    for (const [key, body] of contents) {
      const res = await get(t.token, key);
      expect(res.status).toBe(200);
      expect(sha256(res.body)).toBe(sha256(body));
      expect(res.headers.etag).toBe(etags.get(key));
      expect(res.headers['content-length']).toBe(String(body.length));
    }
    const part = await get(t.token, 'blobs/data.bin', { range: 'bytes=1000-1999' });
    expect(part.status).toBe(206);
    expect(part.body.equals(contents.get('blobs/data.bin')!.subarray(1000, 2000))).toBe(true);
    // And files go on working on the new tier, in the same place.
    expect((await put(t.token, 'after/move.txt', Buffer.from('written after the move'))).status).toBe(201);
    expect(readdirSync(dir)).toHaveLength(3);
  }, 120_000);
});

describe('files: the local driver under many downloads at once', () => {
  it('shares a fixed read-buffer budget: past 32 open reads each gets 64 KiB, and a closed read gives its share back', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tenantry-reads-'));
    const storage = new LocalFileStorage(dir);
    try {
      const tenant = crypto.randomUUID();
      const object = crypto.randomUUID();
      const body = randomBytes(4 * 1024 * 1024);
      await storage.write(tenant, object, Readable.from([body]), body.length, 'application/octet-stream');
      // Slow clients: reads opened and not consumed.
      const reads = [];
      for (let i = 0; i < 100; i++) reads.push(await storage.read(tenant, object));
      const buffers = reads.map((r) => r.readableHighWaterMark);
      expect(buffers[0]).toBe(READ_BUFFER_MAX);
      expect(buffers[31]).toBe(READ_BUFFER_MAX);
      expect(buffers[32]).toBe(READ_BUFFER_MIN);
      expect(buffers[99]).toBe(READ_BUFFER_MIN);
      // What all 100 may hold at once: the 32 MiB budget and 64 KiB each beyond it, not 100 MiB.
      expect(buffers.reduce((a, b) => a + b, 0)).toBe(32 * READ_BUFFER_MAX + 68 * READ_BUFFER_MIN);
      // Every byte still arrives, whatever the buffer.
      const last = reads.pop()!;
      const chunks: Buffer[] = [];
      for await (const chunk of last) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).equals(body)).toBe(true);
      await Promise.all(reads.map((r) => new Promise((resolve) => r.once('close', resolve).destroy())));
      expect((await storage.read(tenant, object)).readableHighWaterMark).toBe(READ_BUFFER_MAX);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('files: the local driver writes', () => {
  /** Files under `dir` this process holds open (from /proc/self/fd). */
  const openUnder = (dir: string) =>
    readdirSync('/proc/self/fd').flatMap((fd) => {
      try {
        const target = readlinkSync(`/proc/self/fd/${fd}`);
        return target.startsWith(dir) ? [target] : [];
      } catch {
        return []; // closed meanwhile (the directory listing's own descriptor, say)
      }
    });
  /** `total` random bytes as a stream of 64 KiB chunks, as a socket delivers them; failing after `failAfter` bytes if given. */
  function body(total: number, failAfter?: number) {
    const bytes = randomBytes(total);
    async function* chunks() {
      for (let at = 0; at < total; at += 64 * 1024) {
        if (failAfter !== undefined && at >= failAfter) throw new Error('the client went away');
        yield bytes.subarray(at, at + 64 * 1024);
        // Let the writes (and the background flushes) interleave with the arrival, as on a network.
        if (at % (1024 * 1024) === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    }
    return { bytes, stream: Readable.from(chunks()) };
  }

  it('a body several flush intervals long is stored byte for byte, and its file is closed', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tenantry-writes-'));
    const storage = new LocalFileStorage(dir);
    try {
      const tenant = crypto.randomUUID();
      const object = crypto.randomUUID();
      const { bytes, stream } = body(2 * FLUSH_EVERY_BYTES + 12_345);
      await storage.write(tenant, object, stream, bytes.length, 'application/octet-stream');
      expect(openUnder(dir)).toEqual([]);
      const chunks: Buffer[] = [];
      for await (const chunk of await storage.read(tenant, object)) chunks.push(chunk as Buffer);
      expect(createHash('sha256').update(Buffer.concat(chunks)).digest('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a body that fails past a flush leaves no file behind and no file open', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tenantry-writes-'));
    const storage = new LocalFileStorage(dir);
    try {
      const tenant = crypto.randomUUID();
      const { stream } = body(3 * FLUSH_EVERY_BYTES, FLUSH_EVERY_BYTES + 1024 * 1024);
      await expect(storage.write(tenant, crypto.randomUUID(), stream, undefined, 'application/octet-stream')).rejects.toThrow('the client went away');
      expect(readdirSync(path.join(dir, tenant))).toEqual([]);
      // The failed write's file is closed as the stream is destroyed, a moment after the rejection.
      await waitFor(async () => (openUnder(dir).length === 0 ? true : undefined), 1_000, 10);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
