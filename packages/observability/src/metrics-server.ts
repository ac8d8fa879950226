import { type Server, createServer } from 'node:http';
import type { Registry } from 'prom-client';
import { listenOn } from './listen.js';

/**
 * Serve a registry at GET /metrics on its own port (0 picks a free one); `variable` names the
 * port's setting. GET /healthz answers 200 as long as the process's event loop does: it is
 * the worker's liveness probe (the worker has no other HTTP server), and unlike /metrics it
 * runs no collector, so a Postgres or Redis outage never makes a live process look dead.
 */
export async function serveMetrics(registry: Registry, port: number, host: string, variable: string): Promise<{ server: Server; port: number }> {
  const server = createServer(async (req, res) => {
    if (req.url === '/healthz' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end('{"status":"ok"}');
      return;
    }
    if (req.url !== '/metrics' || req.method !== 'GET') {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType }).end(body);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${(err as Error).message}`);
    }
  });
  return { server, port: await listenOn(server, port, host, variable) };
}
