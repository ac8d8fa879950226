import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startApi } from '../support/apps.js';
import { useStack } from '../support/stack.js';

/**
 * The api's static handler for the dashboard, on a build-shaped fixture (so these checks
 * do not depend on what Vite emits): a secret file sits next to the served directory,
 * where a path-traversal bug would reach it.
 */
const root = mkdtempSync(path.join(os.tmpdir(), 'tenantry-dashboard-'));
const dist = path.join(root, 'dist');
mkdirSync(path.join(dist, 'assets'), { recursive: true });
const SECRET = `top-secret-${process.pid}`;
writeFileSync(path.join(root, 'secret.txt'), SECRET);
writeFileSync(path.join(root, 'package.json'), JSON.stringify({ secret: SECRET }));
const INDEX = '<!doctype html><html lang="en"><head><title>x</title><script type="module" src="/dashboard/assets/index-AbC123.js"></script></head><body></body></html>';
writeFileSync(path.join(dist, 'index.html'), INDEX);
writeFileSync(path.join(dist, 'assets', 'index-AbC123.js'), 'console.log("app")');
writeFileSync(path.join(dist, 'assets', 'index-AbC123.css'), 'body{}');
writeFileSync(path.join(dist, 'assets', 'logo-Zz9.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
const empty = path.join(root, 'empty');
mkdirSync(empty);

const stack = useStack({ worker: false, api: { DASHBOARD_DIR: dist } });
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A raw request: the path is sent exactly as given (fetch would normalise dot segments first). */
function raw(baseUrl: string, method: string, rawPath: string, headers: Record<string, string> = {}) {
  const { hostname, port } = new URL(baseUrl);
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
    const req = httpRequest({ hostname, port, method, path: rawPath, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('GET /dashboard/', () => {
  it('redirects /dashboard to /dashboard/', async () => {
    const res = await raw(stack.api.baseUrl, 'GET', '/dashboard?x=1');
    expect([res.status, res.headers.location]).toEqual([308, '/dashboard/?x=1']);
  });

  it('serves index.html as UTF-8 HTML that revalidates, with the security headers', async () => {
    const res = await raw(stack.api.baseUrl, 'GET', '/dashboard/');
    expect(res.status).toBe(200);
    expect(res.body).toBe(INDEX);
    expect(res.headers['content-type']).toBe('text/html;charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-cache');
    const csp = String(res.headers['content-security-policy']);
    for (const directive of ["default-src 'self'", "script-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"]) expect(csp).toContain(directive);
    expect(csp).not.toMatch(/unsafe-(inline|eval)/);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['referrer-policy']).toBe('no-referrer');
  });

  it('falls back to index.html for client routes, but a missing file is 404', async () => {
    for (const route of ['/dashboard/tenants/ten_0123456789abcdef0123456789abcdef', '/dashboard/tenants/acme?tab=audit', '/dashboard/some/deep/route']) {
      const res = await raw(stack.api.baseUrl, 'GET', route);
      expect([route, res.status, res.body]).toEqual([route, 200, INDEX]);
      expect(res.headers['cache-control']).toBe('no-cache');
    }
    for (const missing of ['/dashboard/assets/index-Nope.js', '/dashboard/favicon.ico', '/dashboard/robots.txt']) {
      const res = await raw(stack.api.baseUrl, 'GET', missing);
      expect([missing, res.status, JSON.parse(res.body).code]).toEqual([missing, 404, 'not_found']);
    }
  });

  it('hashed assets: right content types, cached immutable, ETag and 304', async () => {
    const js = await raw(stack.api.baseUrl, 'GET', '/dashboard/assets/index-AbC123.js');
    expect([js.status, js.body]).toEqual([200, 'console.log("app")']);
    expect(js.headers['content-type']).toBe('text/javascript');
    expect(js.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect((await raw(stack.api.baseUrl, 'GET', '/dashboard/assets/index-AbC123.css')).headers['content-type']).toBe('text/css');
    expect((await raw(stack.api.baseUrl, 'GET', '/dashboard/assets/logo-Zz9.svg')).headers['content-type']).toBe('image/svg+xml');

    const again = await raw(stack.api.baseUrl, 'GET', '/dashboard/assets/index-AbC123.js', { 'if-none-match': String(js.headers.etag) });
    expect([again.status, again.body]).toEqual([304, '']);
    const head = await raw(stack.api.baseUrl, 'HEAD', '/dashboard/assets/index-AbC123.js');
    expect([head.status, head.body, head.headers['content-length']]).toEqual([200, '', String('console.log("app")'.length)]);
  });

  it('no path reaches outside the build', async () => {
    const attempts = [
      '/dashboard/../secret.txt',
      '/dashboard/../package.json',
      '/dashboard/%2e%2e/secret.txt',
      '/dashboard/%2e%2e%2fsecret.txt',
      '/dashboard/..%2fsecret.txt',
      '/dashboard/..%2f..%2fsecret.txt',
      '/dashboard/assets/..%2f..%2fsecret.txt',
      '/dashboard/assets/%2e%2e/%2e%2e/secret.txt',
      '/dashboard/..%5csecret.txt',
      '/dashboard/....//secret.txt',
      '/dashboard//secret.txt',
      '/dashboard/%252e%252e/secret.txt',
      '/dashboard/%00/../secret.txt',
      '/dashboard/%c0%ae%c0%ae/secret.txt',
      `/dashboard/${encodeURIComponent(path.join(root, 'secret.txt'))}`,
      '/dashboard/.%2e/package.json',
    ];
    for (const attempt of attempts) {
      const res = await raw(stack.api.baseUrl, 'GET', attempt);
      expect(res.body, attempt).not.toContain(SECRET);
      expect(res.status, attempt).toBeLessThan(500);
      if (res.status === 200) expect(res.body, attempt).toBe(INDEX);
    }
  });

  it('only GET and HEAD', async () => {
    const res = await raw(stack.api.baseUrl, 'POST', '/dashboard/');
    expect([res.status, JSON.parse(res.body).code, res.headers.allow]).toEqual([405, 'method_not_allowed', 'GET, HEAD']);
  });

  it('without a build: 503 dashboard_not_built, saying how to build it', async () => {
    const api = await startApi({ DATABASE_URL: stack.database.url, REDIS_PREFIX: stack.prefix, DASHBOARD_DIR: empty });
    try {
      const res = await raw(api.baseUrl, 'GET', '/dashboard/');
      expect(res.status).toBe(503);
      expect(JSON.parse(res.body)).toMatchObject({ code: 'dashboard_not_built', message: expect.stringContaining('build') });
    } finally {
      await api.close();
    }
  });
});
