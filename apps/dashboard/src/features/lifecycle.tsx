import { useMutation, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { type Tenant, api, errorMessage, queryKeys } from '../api';
import { Dialog } from '../ui/Dialog';
import { Field } from '../ui/Field';

type Action = 'suspend' | 'unsuspend' | 'delete' | 'restore';

/** Suspend (with a reason), unsuspend, delete (slug typed to confirm) and restore, as the tenant's status allows. */
export function LifecycleActions({ tenant }: { tenant: Tenant }) {
  const queryClient = useQueryClient();
  const [open, setOpen] = useState<'suspend' | 'delete' | null>(null);
  const act = useMutation({
    mutationFn: ({ action, reason }: { action: Action; reason?: string }) => {
      const input = { id: tenant.id, ...(reason ? { reason } : {}) };
      switch (action) {
        case 'suspend':
          return api.tenants.suspend.mutate({ id: tenant.id, reason: reason ?? '' });
        case 'unsuspend':
          return api.tenants.unsuspend.mutate(input);
        case 'delete':
          return api.tenants.delete.mutate(input);
        case 'restore':
          return api.tenants.restore.mutate(input);
      }
    },
    onSuccess: (updated) => {
      queryClient.setQueryData(queryKeys.tenant(tenant.id), updated);
      void queryClient.invalidateQueries({ queryKey: queryKeys.tenants, predicate: (q) => q.queryKey[1] === 'list' });
      void queryClient.invalidateQueries({ queryKey: queryKeys.audit(tenant.id) });
      void queryClient.invalidateQueries({ queryKey: queryKeys.health(tenant.id) });
      setOpen(null);
    },
  });
  const close = () => {
    act.reset();
    setOpen(null);
  };

  const canSuspend = tenant.status === 'active' && !tenant.isDefault;
  const canDelete = (tenant.status === 'active' || tenant.status === 'suspended') && !tenant.isDefault;
  return (
    <div className="actions" role="group" aria-label="Lifecycle">
      {canSuspend ? (
        <button type="button" className="button" onClick={() => setOpen('suspend')}>
          Suspend tenant
        </button>
      ) : null}
      {tenant.status === 'suspended' ? (
        <button type="button" className="button" disabled={act.isPending} onClick={() => act.mutate({ action: 'unsuspend' })}>
          Unsuspend tenant
        </button>
      ) : null}
      {tenant.status === 'pending_deletion' ? (
        <button type="button" className="button" disabled={act.isPending} onClick={() => act.mutate({ action: 'restore' })}>
          Restore tenant
        </button>
      ) : null}
      {canDelete ? (
        <button type="button" className="button button--danger" onClick={() => setOpen('delete')}>
          Delete tenant
        </button>
      ) : null}
      {act.isError && open === null ? (
        <p className="form__error" role="alert">
          {errorMessage(act.error)}
        </p>
      ) : null}

      <Dialog open={open === 'suspend'} title="Suspend tenant" description={`${tenant.name}'s users are refused until it is unsuspended. Its data is kept.`} onClose={close}>
        {open === 'suspend' ? <SuspendForm pending={act.isPending} error={act.error} onCancel={close} onSubmit={(reason) => act.mutate({ action: 'suspend', reason })} /> : null}
      </Dialog>
      <Dialog
        open={open === 'delete'}
        title="Delete tenant"
        description={`${tenant.name} is refused to its users at once and purged after the retention period, unless restored.`}
        onClose={close}
      >
        {open === 'delete' ? <DeleteForm slug={tenant.slug} pending={act.isPending} error={act.error} onCancel={close} onConfirm={() => act.mutate({ action: 'delete' })} /> : null}
      </Dialog>
    </div>
  );
}

interface FormProps {
  pending: boolean;
  error: unknown;
  onCancel: () => void;
}

function SuspendForm({ pending, error, onCancel, onSubmit }: FormProps & { onSubmit: (reason: string) => void }) {
  const [invalid, setInvalid] = useState<string>();
  const submit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const reason = String(new FormData(event.currentTarget).get('reason') ?? '').trim();
    if (reason.length < 3) return setInvalid('Give a reason of at least 3 characters.');
    setInvalid(undefined);
    onSubmit(reason);
  };
  return (
    <form className="form" onSubmit={submit} noValidate>
      <Field label="Reason" name="reason" maxLength={500} required error={invalid} hint="Shown with the status and kept in the audit trail." data-autofocus />
      {error ? (
        <p className="form__error" role="alert">
          {errorMessage(error)}
        </p>
      ) : null}
      <div className="form__actions">
        <button type="button" className="button button--ghost" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="button button--primary" disabled={pending}>
          Suspend
        </button>
      </div>
    </form>
  );
}

function DeleteForm({ slug, pending, error, onCancel, onConfirm }: FormProps & { slug: string; onConfirm: () => void }) {
  const [mismatch, setMismatch] = useState(false);
  const submit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const typed = String(new FormData(event.currentTarget).get('slug') ?? '').trim();
    setMismatch(typed !== slug);
    if (typed === slug) onConfirm();
  };
  return (
    <form className="form" onSubmit={submit} noValidate>
      <Field
        label="Type the slug to confirm"
        name="slug"
        autoComplete="off"
        spellCheck={false}
        hint={
          <>
            The slug is <code>{slug}</code>.
          </>
        }
        error={mismatch ? 'That is not the slug of this tenant: nothing was deleted.' : undefined}
        data-autofocus
      />
      {error ? (
        <p className="form__error" role="alert">
          {errorMessage(error)}
        </p>
      ) : null}
      <div className="form__actions">
        <button type="button" className="button button--ghost" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="button button--danger" disabled={pending}>
          Delete
        </button>
      </div>
    </form>
  );
}
