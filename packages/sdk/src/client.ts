import type { AppRouter } from '@tenantry/api';
import { type TRPCClient, type TRPCLink, createTRPCClient, httpLink, httpSubscriptionLink, splitLink } from '@trpc/client';
import { EventSource } from 'eventsource';
import type { AnyRouter, inferRouterInputs, inferRouterOutputs } from '@trpc/server';
import { toTenantryError } from './errors.js';

/** A credential: fixed, or read before every request (e.g. from storage after a login). */
export type Credential = string | (() => string | null | undefined | Promise<string | null | undefined>);

/** A `fetch` the client can use instead of the global one (tests, polyfills, instrumentation). */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export interface PublicClientOptions {
  /** Where the api listens, e.g. `https://api.example.com` (the client talks to `${baseUrl}/trpc`). */
  baseUrl: string;
  fetch?: FetchLike;
}

export interface TenantClientOptions extends PublicClientOptions {
  /** A session token from `auth.login`; without one, only public procedures answer. */
  token?: Credential;
}

export interface AdminClientOptions extends PublicClientOptions {
  /** The platform key, for the operator's admin procedures (`tenants.*`). Never ship it to a browser. */
  platformKey: Credential;
}

export interface OperatorClientOptions extends PublicClientOptions {
  /**
   * The CSRF token of the operator session (`operator.signIn` or `operator.session` return
   * it), sent as the `X-CSRF-Token` header; the session itself travels in its HttpOnly cookie.
   */
  csrfToken: Credential;
}

/** A typed client of a router: `client.auth.me.query()`, `client.auth.login.mutate({...})`. */
export type TenantryClient<TRouter extends AnyRouter = AppRouter> = TRPCClient<TRouter>;
/** Inputs of every procedure: `RouterInputs['auth']['login']`. */
export type RouterInputs = inferRouterInputs<AppRouter>;
/** Outputs of every procedure: `RouterOutputs['auth']['me']`. */
export type RouterOutputs = inferRouterOutputs<AppRouter>;

const CALLS = new Set(['query', 'mutate']);

/**
 * Wrap a tRPC proxy client so that every `.query()` / `.mutate()` rejection becomes a
 * TenantryError. The wrapper mirrors the tRPC proxy path by path, and has the very same
 * type, so inference is untouched. (A link cannot do this: the tRPC client re-wraps any
 * error a link emits into a TRPCClientError.)
 */
function withTenantryErrors<T extends object>(client: T): T {
  const cache = new Map<string, unknown>();
  const at = (path: readonly string[]): unknown => {
    const key = path.join('.');
    let proxy = cache.get(key);
    if (!proxy) {
      proxy = new Proxy(() => undefined, {
        get(_target, prop) {
          // Not thenable (so `await client.auth` is harmless), and no symbol paths.
          if (typeof prop !== 'string' || prop === 'then') {
            return path.length === 0 ? Reflect.get(client, prop) : undefined;
          }
          return at([...path, prop]);
        },
        apply(_target, _this, args: unknown[]) {
          let target: unknown = client;
          for (const segment of path) target = (target as Record<string, unknown>)[segment];
          const result = (target as (...a: unknown[]) => unknown)(...args);
          // `.query(…)`, and the `.query.call(…)` / `.query.apply(…)` forms tRPC also accepts.
          const last = path[path.length - 1] ?? '';
          const method = last === 'call' || last === 'apply' ? (path[path.length - 2] ?? '') : last;
          if (CALLS.has(method) && result instanceof Promise) {
            return result.catch((error: unknown) => {
              throw toTenantryError(error);
            });
          }
          return result;
        },
      });
      cache.set(key, proxy);
    }
    return proxy;
  };
  return at([]) as T;
}

function trpcUrl(baseUrl: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/trpc`;
}

/**
 * The one place clients are built: a tRPC client on `httpLink` with an optional bearer
 * credential, wrapped so failures are TenantryErrors. Generic over the router, so new
 * procedures (e.g. `tenants.*`) appear on every client as soon as the router type has them.
 */
export function createClient<TRouter extends AnyRouter = AppRouter>(
  options: PublicClientOptions & { bearer?: Credential; headers?: () => Promise<Record<string, string>> },
): TenantryClient<TRouter> {
  const { bearer } = options;
  const headers = async (): Promise<Record<string, string>> => {
    const value = typeof bearer === 'function' ? await bearer() : bearer;
    return { ...(await options.headers?.()), ...(value ? { authorization: `Bearer ${value}` } : {}) };
  };
  const baseFetch: FetchLike = options.fetch ?? ((input, init) => fetch(input, init));
  // The api has no data transformer (plain JSON); the links are built for any router and
  // typed for TRouter, whose transformer option TypeScript cannot resolve while generic.
  // Subscriptions (realtime) go over Server-Sent Events. A browser's own EventSource cannot
  // send an Authorization header, and putting the token in the URL would leak it to logs:
  // the `eventsource` package is a spec EventSource over fetch, which can.
  const link = splitLink<AnyRouter>({
    condition: (op) => op.type === 'subscription',
    true: httpSubscriptionLink<AnyRouter, typeof EventSource>({
      url: trpcUrl(options.baseUrl),
      EventSource,
      eventSourceOptions: async () => {
        const extra = await headers();
        return { fetch: (input: string | URL | Request, init?: RequestInit) => baseFetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), ...extra } }) };
      },
    }),
    false: httpLink<AnyRouter>({ url: trpcUrl(options.baseUrl), fetch: baseFetch, headers }),
  }) as TRPCLink<TRouter>;
  const client = createTRPCClient<TRouter>({ links: [link] });
  return withTenantryErrors(client);
}

/** A client without credentials: signup and login. */
export function createPublicClient(options: PublicClientOptions): TenantryClient {
  return createClient<AppRouter>({ baseUrl: options.baseUrl, ...(options.fetch ? { fetch: options.fetch } : {}) });
}

/** A client acting as a signed-in tenant user (session token from `auth.login`). */
export function createTenantClient(options: TenantClientOptions): TenantryClient {
  return createClient<AppRouter>({
    baseUrl: options.baseUrl,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.token !== undefined ? { bearer: options.token } : {}),
  });
}

/** A client acting as the platform operator (platform key), for the admin procedures. */
export function createAdminClient(options: AdminClientOptions): TenantryClient {
  return createClient<AppRouter>({
    baseUrl: options.baseUrl,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    bearer: options.platformKey,
  });
}

/**
 * A browser client acting as the operator through an operator session (the dashboard):
 * no key in the page, the session cookie goes with every same-origin request, and writes
 * carry the session's CSRF token. Sign in first with `createAdminClient(…).operator.signIn`.
 */
export function createOperatorClient(options: OperatorClientOptions): TenantryClient {
  const { csrfToken } = options;
  const base = options.fetch ?? ((input: string | URL | Request, init?: RequestInit) => fetch(input, init));
  return createClient<AppRouter>({
    baseUrl: options.baseUrl,
    fetch: (input, init) => base(input, { ...init, credentials: 'same-origin' }),
    async headers(): Promise<Record<string, string>> {
      const value = typeof csrfToken === 'function' ? await csrfToken() : csrfToken;
      return value ? { 'x-csrf-token': value } : {};
    },
  });
}
