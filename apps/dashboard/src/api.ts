import { QueryCache, MutationCache, QueryClient } from '@tanstack/react-query';
import { type RouterOutputs, type TenantryClient, createAdminClient, createOperatorClient, createPublicClient, isTenantryError } from '@tenantry/sdk';

/**
 * Everything the dashboard knows about the server lives in this one TanStack Query cache:
 * no copies in component state, nothing in localStorage or sessionStorage.
 */
export type OperatorSession = RouterOutputs['operator']['session'];
export type Tenant = RouterOutputs['tenants']['get'];
export type TenantPage = RouterOutputs['tenants']['list'];
export type TenantListItem = TenantPage['items'][number];
export type TenantHealth = RouterOutputs['tenants']['health'];
export type BillingState = RouterOutputs['billing']['get'];
export type Limits = BillingState['effective']['limits'];
export type AuditPage = RouterOutputs['audit']['list'];
export type UsageReport = RouterOutputs['usage']['ofTenant'];
export type UsageSeries = RouterOutputs['usage']['series'];
export type Meter = UsageSeries['meter'];
export type Interval = UsageSeries['interval'];
export type Invoice = RouterOutputs['invoices']['upcoming'];
export type InvoiceList = RouterOutputs['invoices']['list'];

const baseUrl = window.location.origin;

export const queryKeys = {
  session: ['operator-session'] as const,
  tenants: ['tenants'] as const,
  tenantList: (filters: object) => ['tenants', 'list', filters] as const,
  tenant: (id: string) => ['tenants', 'detail', id] as const,
  health: (id: string) => ['tenants', 'detail', id, 'health'] as const,
  billing: (id: string) => ['tenants', 'detail', id, 'billing'] as const,
  audit: (id: string) => ['tenants', 'detail', id, 'audit'] as const,
  usage: (id: string) => ['tenants', 'detail', id, 'usage'] as const,
  series: (id: string, meter: string, interval: string) => ['tenants', 'detail', id, 'series', meter, interval] as const,
  invoices: (id: string) => ['tenants', 'detail', id, 'invoices'] as const,
  upcoming: (id: string) => ['tenants', 'detail', id, 'invoices', 'upcoming'] as const,
};

/** An error that means "this browser is not signed in (any more)". */
export function isSignedOut(error: unknown): boolean {
  return isTenantryError(error) && error.status === 401;
}

export function errorMessage(error: unknown): string {
  if (error instanceof CookieRefusedError) return error.message;
  if (isTenantryError(error)) return error.code === 'network_error' ? 'The api could not be reached. Check your connection and try again.' : error.message;
  return 'Something went wrong.';
}

/** Any call answered 401 means the session ended (expired, signed out elsewhere, key revoked): back to sign-in. */
function onAnyError(error: unknown): void {
  if (isSignedOut(error)) endSession();
}

export const queryClient = new QueryClient({
  queryCache: new QueryCache({ onError: onAnyError }),
  mutationCache: new MutationCache({ onError: onAnyError }),
  defaultOptions: {
    queries: {
      staleTime: 15_000,
      retry: (failures, error) => !(isTenantryError(error) && error.status > 0 && error.status < 500) && failures < 2,
      refetchOnWindowFocus: true,
    },
  },
});

/** Forget every server answer and show sign-in. */
export function endSession(): void {
  queryClient.removeQueries({ predicate: (query) => query.queryKey[0] !== queryKeys.session[0] });
  queryClient.setQueryData(queryKeys.session, null);
}

/** The operator's client: session cookie, and the CSRF token of the cached session on every call. */
export const api: TenantryClient = createOperatorClient({
  baseUrl,
  csrfToken: () => queryClient.getQueryData<OperatorSession | null>(queryKeys.session)?.csrfToken,
});

/** The cookie's session, or null when there is none (401). */
export async function fetchSession(): Promise<OperatorSession | null> {
  try {
    return await createPublicClient({ baseUrl }).operator.session.query();
  } catch (error) {
    if (isSignedOut(error)) return null;
    throw error;
  }
}

/**
 * Exchange the platform key for a session cookie. The key is sent once, in the
 * Authorization header of this one request, and is not kept anywhere.
 */
export async function signIn(platformKey: string): Promise<OperatorSession> {
  await createAdminClient({ baseUrl, platformKey }).operator.signIn.mutate();
  // Read the session back through the cookie: a browser that dropped it (a Secure cookie
  // on plain HTTP other than localhost) would otherwise bounce back here on the next call.
  const session = await fetchSession();
  if (!session) throw new CookieRefusedError();
  queryClient.setQueryData(queryKeys.session, session);
  return session;
}

export class CookieRefusedError extends Error {
  constructor() {
    super('The browser did not keep the session cookie. Open the dashboard over HTTPS (or on localhost).');
  }
}

export async function signOut(): Promise<void> {
  try {
    await api.operator.signOut.mutate();
  } finally {
    endSession();
  }
}
