import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link } from '@tanstack/react-router';
import { type ReactNode, useEffect } from 'react';
import { type OperatorSession, endSession, fetchSession, queryKeys, signOut } from '../api';
import { ErrorState, Loading } from '../ui/states';
import { formatDateTime } from '../ui/format';
import { SignIn } from './SignIn';

/**
 * The frame of every page, and its gate: without a live operator session the sign-in form
 * takes the place of the page (the URL is kept, so signing in lands where the operator was).
 */
export function Layout({ children }: { children: ReactNode }) {
  const session = useQuery({ queryKey: queryKeys.session, queryFn: fetchSession, staleTime: Infinity, retry: 1 });

  if (session.isPending) {
    return (
      <main className="page page--center">
        <Loading label="Checking your session…" />
      </main>
    );
  }
  if (session.isError) {
    return (
      <main className="page page--center">
        <ErrorState error={session.error} onRetry={() => void session.refetch()} />
      </main>
    );
  }
  if (!session.data) return <SignIn />;
  return <SignedIn session={session.data}>{children}</SignedIn>;
}

function SignedIn({ session, children }: { session: OperatorSession; children: ReactNode }) {
  const queryClient = useQueryClient();
  const out = useMutation({ mutationFn: signOut });

  // The session ends at its expiry even if nothing is being fetched then.
  useEffect(() => {
    const ms = new Date(session.expiresAt).getTime() - Date.now();
    const timer = window.setTimeout(endSession, Math.max(0, Math.min(ms, 2 ** 31 - 1)));
    return () => window.clearTimeout(timer);
  }, [session.expiresAt, queryClient]);

  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/" className="topbar__brand">
          Tenantry
        </Link>
        <nav aria-label="Main" className="topbar__nav">
          <Link to="/" className="topbar__link" activeProps={{ 'aria-current': 'page' }} activeOptions={{ exact: true, includeSearch: false }}>
            Tenants
          </Link>
          <Link to="/pricing" className="topbar__link" activeProps={{ 'aria-current': 'page' }}>
            Pricing
          </Link>
        </nav>
        <div className="topbar__session">
          <span className="muted">Session until {formatDateTime(session.expiresAt)}</span>
          <button type="button" className="button button--ghost" onClick={() => out.mutate()} disabled={out.isPending}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" className="page" tabIndex={-1}>
        {children}
      </main>
    </div>
  );
}
