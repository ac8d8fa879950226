import { Outlet, createRootRoute, createRoute, createRouter } from '@tanstack/react-router';
import { Layout } from './pages/Layout';
import { NotFound } from './pages/NotFound';
import { PricingPage } from './pages/PricingPage';
import { TenantPage } from './pages/TenantPage';
import { TenantsPage, tenantListQuery } from './pages/TenantsPage';
import { queryClient } from './api';
import { PLANS, STATUSES, type TenantFilters } from './filters';

const rootRoute = createRootRoute({
  component: () => (
    <Layout>
      <Outlet />
    </Layout>
  ),
  notFoundComponent: NotFound,
});

function oneOf<T extends string>(values: readonly T[], value: unknown): T | undefined {
  return typeof value === 'string' && (values as readonly string[]).includes(value) ? (value as T) : undefined;
}

/**
 * The list's view lives in the URL (reload and share keep it): `q` search, `plan`,
 * `status`, and `c`, the keyset cursors of the pages walked so far (the last one is the
 * page shown). Anything malformed is dropped rather than refused.
 */
export function parseFilters(search: Record<string, unknown>): TenantFilters {
  const q = typeof search.q === 'string' ? search.q.slice(0, 64) : '';
  const cursors = typeof search.c === 'string' ? search.c.split('.').filter((c) => /^[A-Za-z0-9_-]{1,64}$/.test(c)).slice(0, 200) : [];
  return {
    ...(q.trim() ? { q } : {}),
    ...(oneOf(PLANS, search.plan) ? { plan: oneOf(PLANS, search.plan) } : {}),
    ...(oneOf(STATUSES, search.status) ? { status: oneOf(STATUSES, search.status) } : {}),
    ...(cursors.length ? { c: cursors.join('.') } : {}),
  };
}

export const tenantsRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: '/',
  validateSearch: parseFilters,
  // Start the list request with the navigation, alongside the session check, instead of
  // after it (one round trip less before the first paint). Not awaited: the page shows
  // its own loading state, and a 401 here just leads to sign-in like any other.
  loaderDeps: ({ search }) => search,
  loader: ({ deps }) => void queryClient.prefetchQuery(tenantListQuery(deps)),
  component: TenantsPage,
});

export const tenantRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: '/tenants/$tenantId',
  component: TenantPage,
});

export const pricingRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: '/pricing',
  component: PricingPage,
});

export const router = createRouter({
  routeTree: rootRoute.addChildren([tenantsRoute, tenantRoute, pricingRoute]),
  basepath: '/dashboard',
  defaultPreload: false,
});

declare module '@tanstack/react-router' {
  interface Register {
    router: typeof router;
  }
}
