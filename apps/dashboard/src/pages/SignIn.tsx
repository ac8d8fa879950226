import { useMutation } from '@tanstack/react-query';
import { isTenantryError } from '@tenantry/sdk';
import { type FormEvent, useEffect } from 'react';
import { errorMessage, signIn } from '../api';
import { Field } from '../ui/Field';

/**
 * The platform key is read from the form on submit and sent once; the field is
 * uncontrolled and reset right after, so the key sits in no React state and no storage.
 */
export function SignIn() {
  const attempt = useMutation({ mutationFn: signIn });

  useEffect(() => {
    document.title = 'Sign in · Tenantry';
  }, []);

  const onSubmit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = event.currentTarget;
    const key = String(new FormData(form).get('platformKey') ?? '').trim();
    form.reset();
    if (key) attempt.mutate(key);
  };

  const refused = attempt.error && isTenantryError(attempt.error) && (attempt.error.status === 401 || attempt.error.status === 403);
  return (
    <main className="page page--center">
      <form className="card signin" onSubmit={onSubmit} noValidate>
        <h1 className="signin__title">Tenantry dashboard</h1>
        <p className="muted">Sign in with a platform key. It is exchanged for a short-lived session and is not kept in this browser.</p>
        <Field
          label="Platform key"
          name="platformKey"
          type="password"
          autoComplete="off"
          spellCheck={false}
          required
          autoFocus
          error={attempt.isError ? (refused ? 'That platform key was not accepted.' : errorMessage(attempt.error)) : undefined}
        />
        <button type="submit" className="button button--primary" disabled={attempt.isPending}>
          {attempt.isPending ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
