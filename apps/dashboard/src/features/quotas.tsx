import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { isTenantryError } from '@tenantry/sdk';
import { type FormEvent, useState } from 'react';
import { type BillingState, type Limits, type Tenant, api, errorMessage, queryKeys } from '../api';
import { Dialog } from '../ui/Dialog';
import { Field } from '../ui/Field';
import { formatBytes, formatNumber } from '../ui/format';
import { Card, ErrorState, Loading } from '../ui/states';

const MiB = 1024 * 1024;

/** Every limit of a plan, as the operator edits it (storage in MiB, counts as counts). */
const QUOTA_FIELDS = [
  { key: 'storageBytes', label: 'Storage (MiB)', title: 'Storage', unit: MiB },
  { key: 'fileBytes', label: 'Largest file (MiB)', title: 'Largest file', unit: MiB },
  { key: 'apiRequestsPerMinute', label: 'API requests per minute', title: 'API requests per minute', unit: 1 },
  { key: 'realtimeConnections', label: 'Realtime connections', title: 'Realtime connections', unit: 1 },
  { key: 'members', label: 'Members', title: 'Members', unit: 1 },
] as const satisfies ReadonlyArray<{ key: keyof Limits; label: string; title: string; unit: number }>;

function show(key: keyof Limits, value: number): string {
  return key === 'storageBytes' || key === 'fileBytes' ? formatBytes(value) : formatNumber(value);
}

/**
 * The tenant's effective limits (the plan's, overridden by its billing state) and the
 * "Edit quotas" dialog, which saves overrides through the billing-state route (audited
 * there). Billing state exists in hosted mode only; elsewhere the license decides.
 */
export function QuotaLimits({ tenant }: { tenant: Tenant }) {
  const billing = useQuery({ queryKey: queryKeys.billing(tenant.id), queryFn: () => api.billing.get.query({ id: tenant.id }), retry: false });
  const [editing, setEditing] = useState(false);
  const notHosted = billing.isError && isTenantryError(billing.error) && billing.error.status === 404;

  return (
    <Card
      title="Quota limits"
      actions={
        billing.data && tenant.status !== 'deleted' ? (
          <button type="button" className="button" onClick={() => setEditing(true)}>
            Edit quotas
          </button>
        ) : null
      }
    >
      {billing.isPending ? (
        <Loading label="Loading limits…" />
      ) : notHosted ? (
        <p className="muted">No billing state: this installation is not in hosted mode, so limits come from its license.</p>
      ) : billing.isError ? (
        <ErrorState error={billing.error} onRetry={() => void billing.refetch()} />
      ) : (
        <>
          <table className="table table--compact" aria-label="Quota limits">
            <thead>
              <tr>
                <th scope="col">Limit</th>
                <th scope="col">Value</th>
                <th scope="col">Source</th>
              </tr>
            </thead>
            <tbody>
              {QUOTA_FIELDS.map((field) => (
                <tr key={field.key}>
                  <th scope="row">{field.title}</th>
                  <td>{show(field.key, billing.data.effective.limits[field.key])}</td>
                  <td className="muted">{billing.data.limits?.[field.key] !== undefined ? 'override' : `plan ${billing.data.plan}`}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <p className="muted">
            Subscription: {billing.data.subscriptionState}
            {billing.data.trialEndsAt ? ` (trial ends ${new Date(billing.data.trialEndsAt).toLocaleDateString()})` : ''}
          </p>
          <Dialog open={editing} title="Edit quotas" description={`Limits of ${tenant.name}. Values differing from the plan are saved as overrides.`} onClose={() => setEditing(false)}>
            {editing ? <QuotaForm tenant={tenant} billing={billing.data} onDone={() => setEditing(false)} /> : null}
          </Dialog>
        </>
      )}
    </Card>
  );
}

type FieldErrors = Partial<Record<keyof Limits, string>>;

function parseLimits(form: FormData, effective: Limits): { changed: Partial<Limits>; errors: FieldErrors } {
  const changed: Partial<Limits> = {};
  const errors: FieldErrors = {};
  for (const field of QUOTA_FIELDS) {
    const raw = String(form.get(field.key) ?? '').trim();
    const value = Number(raw);
    if (raw === '' || !Number.isFinite(value)) errors[field.key] = 'Enter a number.';
    else if (value < 0) errors[field.key] = 'Must be 0 or more.';
    else if (field.unit === 1 && !Number.isInteger(value)) errors[field.key] = 'Must be a whole number.';
    else if (value * field.unit > Number.MAX_SAFE_INTEGER) errors[field.key] = 'Too large.';
    else {
      const amount = Math.round(value * field.unit);
      if (amount !== effective[field.key]) changed[field.key] = amount;
    }
  }
  return { changed, errors };
}

function QuotaForm({ tenant, billing, onDone }: { tenant: Tenant; billing: BillingState; onDone: () => void }) {
  const queryClient = useQueryClient();
  const [errors, setErrors] = useState<FieldErrors>({});
  const save = useMutation({
    mutationFn: (limits: Partial<Limits>) => api.billing.update.mutate({ id: tenant.id, limits }),
    onSuccess: (updated) => {
      queryClient.setQueryData(queryKeys.billing(tenant.id), updated);
      void queryClient.invalidateQueries({ queryKey: queryKeys.audit(tenant.id) });
      onDone();
    },
  });

  const onSubmit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const { changed, errors: found } = parseLimits(new FormData(event.currentTarget), billing.effective.limits);
    setErrors(found);
    if (Object.keys(found).length > 0) return;
    if (Object.keys(changed).length === 0) return onDone();
    // The overrides replace the stored ones: keep the others.
    save.mutate({ ...(billing.limits ?? {}), ...changed });
  };

  return (
    <form className="form" onSubmit={onSubmit} noValidate>
      {QUOTA_FIELDS.map((field, i) => (
        <Field
          key={field.key}
          label={field.label}
          name={field.key}
          type="number"
          inputMode="decimal"
          min={0}
          step={field.unit === 1 ? 1 : 'any'}
          required
          defaultValue={String(billing.effective.limits[field.key] / field.unit)}
          error={errors[field.key]}
          {...(i === 0 ? { 'data-autofocus': true } : {})}
        />
      ))}
      {save.isError ? (
        <p className="form__error" role="alert">
          {errorMessage(save.error)}
        </p>
      ) : null}
      <div className="form__actions">
        <button type="button" className="button button--ghost" onClick={onDone}>
          Cancel
        </button>
        <button type="submit" className="button button--primary" disabled={save.isPending}>
          {save.isPending ? 'Saving…' : 'Save'}
        </button>
      </div>
    </form>
  );
}
