import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileUsageOf } from '@tenantry/db';
import { fromPublicId } from '@tenantry/domain';
import { afterAll, describe, expect, it } from 'vitest';
import { request, waitFor } from '../support/http.js';
import { startApiProcess } from '../support/process.js';
import { useStack } from '../support/stack.js';

const FILES_DIR = mkdtempSync(path.join(tmpdir(), 'tenantry-files-crash-'));
afterAll(() => rmSync(FILES_DIR, { recursive: true, force: true }));

/** Reservations of killed uploads expire after 2 s here (15 minutes by default). */
const TTL_MS = 2_000;
const env = { FILE_STORAGE_DIR: FILES_DIR, FILE_UPLOAD_RESERVATION_TTL_MS: String(TTL_MS) };
const stack = useStack({ api: env, workerEnv: env });

/** Send `sent` of `announced` bytes and leave the request open (the api is killed under it). */
function startUpload(baseUrl: string, token: string, key: string, announced: number, sent: number): Promise<void> {
  return new Promise((resolve) => {
    const { hostname, port } = new URL(baseUrl);
    const req = httpRequest({ hostname, port, path: `/v1/files/${key}`, method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-length': String(announced) } });
    req.on('error', () => undefined);
    req.write(randomBytes(sent), () => resolve());
  });
}

/** VmRSS of a process, in bytes. */
function rssOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'))!;
  return Number(/(\d+)/.exec(line)![1]) * 1024;
}

describe('files: crash safety', () => {
  it('an api SIGKILLed mid-upload leaves no committed file, and after expiry no reservation and no partial object', async () => {
    const tenant = await stack.signUpTenant();
    const id = fromPublicId('ten', tenant.tenantId)!;
    const api = await startApiProcess({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix, ...env });
    try {
      await startUpload(api.baseUrl, tenant.token, 'crash/half.bin', 4_000_000, 1_500_000);
      // The bytes reached the api's storage and its reservation is held.
      await waitFor(async () => ((await fileUsageOf(stack.database.db, id)).reserved === 4_000_000 ? true : undefined));
      await waitFor(async () => (existsSync(path.join(FILES_DIR, id)) && readdirSync(path.join(FILES_DIR, id)).length === 1 ? true : undefined));
      api.child.kill('SIGKILL');
      await new Promise((resolve) => api.child.once('exit', resolve));
    } finally {
      if (api.child.exitCode === null && api.child.signalCode === null) api.child.kill('SIGKILL');
    }
    // Nothing committed: no such file.
    expect((await request(stack.api.baseUrl, 'GET', '/v1/files?prefix=crash/', { token: tenant.token })).body.items).toEqual([]);
    // Before expiry the sweep leaves the upload alone (its api might still be finishing it)...
    await stack.worker!.sweepFiles(0);
    expect((await fileUsageOf(stack.database.db, id)).reserved).toBe(4_000_000);
    // ...after it, the reservation is released and the partial object removed.
    await new Promise((resolve) => setTimeout(resolve, TTL_MS + 200));
    expect(await stack.worker!.sweepFiles(0)).toEqual({ released: 1, removed: 1 });
    expect(await fileUsageOf(stack.database.db, id)).toEqual({ committed: 0, reserved: 0 });
    expect(readdirSync(path.join(FILES_DIR, id))).toEqual([]);
    // And the tenant's quota is whole again: a full-size upload fits.
    const upload = await fetch(`${stack.api.baseUrl}/v1/files/crash/again.bin`, { method: 'PUT', headers: { authorization: `Bearer ${tenant.token}` }, body: randomBytes(1000) });
    expect(upload.status).toBe(201);
  });

  it('a 1 GiB upload streams through the api: its memory rises no more than for a 64 MiB one (nothing is held per byte)', async () => {
    const tenant = await stack.signUpTenant();
    const raised = await stack.admin('PUT', `/v1/tenants/${tenant.tenantId}/billing-state`, { body: { limits: { fileBytes: 2 * 1024 ** 3, fileStorageBytes: 4 * 1024 ** 3 } } });
    expect(raised.status).toBe(200);
    const api = await startApiProcess({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix, ...env });
    try {
      const pid = api.child.pid!;
      const chunk = randomBytes(1024 * 1024);
      /** Upload `size` bytes; the highest RSS of the api while it does. */
      const upload = async (key: string, size: number) => {
        let peak = rssOf(pid);
        const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 10);
        const status = await new Promise<number>((resolve, reject) => {
          const { hostname, port } = new URL(api.baseUrl);
          const req = httpRequest(
            { hostname, port, path: `/v1/files/${key}`, method: 'PUT', headers: { authorization: `Bearer ${tenant.token}`, 'content-length': String(size) } },
            (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode ?? 0));
            },
          );
          req.on('error', reject);
          let sent = 0;
          const pump = () => {
            while (sent < size) {
              sent += chunk.length;
              if (!req.write(chunk)) return void req.once('drain', pump);
            }
            req.end();
          };
          pump();
        });
        clearInterval(sampler);
        expect(status).toBe(201);
        return peak;
      };
      // Warm up (code loaded, pools open), then the baseline.
      await upload('big/warm-up.bin', 1024 * 1024);
      const before = rssOf(pid);
      const small = await upload('big/64-mib.bin', 64 * 1024 ** 2);
      const large = await upload('big/one-gib.bin', 1024 ** 3);
      const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
      console.log(`api RSS: ${mib(before)} before; peak ${mib(small)} during 64 MiB (+${mib(small - before)}); peak ${mib(large)} during 1 GiB (+${mib(large - before)})`);
      // Sixteen times the bytes, no more memory: what rises is socket buffers awaiting
      // collection (V8 collects them in batches), the same whatever the size.
      expect(large - small).toBeLessThan(8 * 1024 * 1024);
      expect(large - before).toBeLessThan(64 * 1024 * 1024);
      const head = await fetch(`${api.baseUrl}/v1/files/big/one-gib.bin`, { method: 'HEAD', headers: { authorization: `Bearer ${tenant.token}` } });
      expect(head.headers.get('content-length')).toBe(String(1024 ** 3));
    } finally {
      api.child.kill('SIGKILL');
    }
  }, 180_000);
});
