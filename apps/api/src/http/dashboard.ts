import { existsSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import sirv, { type RequestHandler } from 'sirv';
import { sendJson } from './respond.js';

export const DASHBOARD_PATH = '/dashboard';

/**
 * What the browser may do on a dashboard page: its own scripts, styles, images and API
 * calls, nothing inline, no eval, no plugins, never framed, no <base> rewriting, forms
 * only to itself. Vite's production build needs nothing more.
 */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join('; ');

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': DASHBOARD_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

/** Vite puts every hashed (content-addressed) file under assets/: cache those forever. */
const HASHED_ASSET = /^\/assets\//;

/**
 * The built dashboard (apps/dashboard/dist), at /dashboard/. sirv indexes the directory
 * once (so only files that exist at that moment can be served: no path reaches outside
 * it), answers with each file's content type, ETag and 304s, and falls back to index.html
 * for client-side routes — but not for paths that look like files, which stay 404.
 * If the dashboard is not built yet, the index is retried on the next request.
 */
export function createDashboardHandler(dir: string) {
  let serve: RequestHandler | undefined;
  const load = () => {
    if (!serve && existsSync(path.join(dir, 'index.html'))) {
      serve = sirv(dir, {
        dev: false,
        etag: true,
        single: true,
        setHeaders: (res, pathname) => {
          res.setHeader('cache-control', HASHED_ASSET.test(pathname) ? 'public, max-age=31536000, immutable' : 'no-cache');
        },
      });
    }
    return serve;
  };

  return function handleDashboard(req: IncomingMessage, res: ServerResponse, url: URL): void {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    if (url.pathname === DASHBOARD_PATH) {
      res.writeHead(308, { location: `${DASHBOARD_PATH}/${url.search}` });
      res.end();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(res, 405, { code: 'method_not_allowed', message: `${req.method} is not allowed here` }, { allow: 'GET, HEAD' });
      return;
    }
    const handler = load();
    if (!handler) {
      sendJson(res, 503, { code: 'dashboard_not_built', message: 'The dashboard is not built: run `npx -y pnpm@10.34.8 --filter @tenantry/dashboard build`' });
      return;
    }
    // sirv sees the path below /dashboard, already normalised by URL parsing (dot segments resolved).
    req.url = url.pathname.slice(DASHBOARD_PATH.length) + url.search;
    handler(req, res, () => sendJson(res, 404, { code: 'not_found', message: 'No such file' }));
  };
}
