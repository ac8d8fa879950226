import { request as httpRequest } from 'node:http';
export interface JsonResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  ms: number;
}

/** One JSON request; the body is parsed whatever the status. */
export async function request<T = any>(
  baseUrl: string,
  method: string,
  path: string,
  options: { body?: unknown; token?: string; headers?: Record<string, string>; rawBody?: string } = {},
): Promise<JsonResponse<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.body !== undefined || options.rawBody !== undefined) headers['content-type'] ??= 'application/json';
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const started = performance.now();
  const res = await fetch(baseUrl + path, {
    method,
    headers,
    body: options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body)),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined, ms: performance.now() - started };
}

/**
 * Like `request`, over node:http so that a Host header can be sent (fetch drops it: a
 * forbidden header name). For the tenant-hostname checks.
 */
export function requestOnHost<T = any>(baseUrl: string, host: string, method: string, path: string, options: { token?: string } = {}): Promise<JsonResponse<T>> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const headers: Record<string, string> = { host };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    const req = httpRequest(new URL(path, baseUrl), { method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        const responseHeaders = new Headers();
        for (const [name, value] of Object.entries(res.headers)) if (typeof value === 'string') responseHeaders.set(name, value);
        resolve({ status: res.statusCode ?? 0, headers: responseHeaders, body: text ? JSON.parse(text) : undefined, ms: performance.now() - started });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Poll until `check` returns a value (not undefined), or fail after `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T | undefined>, timeoutMs = 15_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms${last ? `: ${(last as Error).message}` : ''}`);
}

/**
 * Poll `probe` every 20 ms until it gives `status`; how long that took. Fails past 1 s: what
 * a change announced over the tenant change feed must take at most to reach an instance.
 */
export async function msUntil(probe: () => Promise<{ status: number }>, status: number): Promise<number> {
  const started = performance.now();
  for (;;) {
    const res = await probe();
    const elapsed = performance.now() - started;
    if (res.status === status) return elapsed;
    if (elapsed > 1_000) throw new Error(`still ${res.status} after ${Math.round(elapsed)} ms (wanted ${status})`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Wait until a signup reaches a final state; returns its status body. */
export function waitForSignup(baseUrl: string, signupId: string, timeoutMs = 20_000) {
  return waitFor(async () => {
    const res = await request(baseUrl, 'GET', `/v1/signup/${signupId}`);
    return res.body?.status === 'ready' || res.body?.status === 'failed' ? res.body : undefined;
  }, timeoutMs);
}

let counter = 0;
/** A signup body that passes validation, unique per call. */
export function validSignup(overrides: Record<string, unknown> = {}) {
  counter += 1;
  return {
    email: `owner${counter}-${process.pid}-${Date.now()}@example.com`,
    password: 'violet-otter-stapler-42',
    orgName: `Org ${counter}`,
    ...overrides,
  };
}
