import { useMutation } from '@tanstack/react-query';
import { type FormEvent, useEffect, useState } from 'react';
import { api, errorMessage } from '../api';
import { type Plan, PLANS } from '../filters';
import { InvoiceLines } from '../features/invoices';
import { Field, Select } from '../ui/Field';
import { Card, Empty } from '../ui/states';

const GiB = 2 ** 30;

/** The calculator's fields: what an operator thinks in (GiB, counts), sent as the api's units (bytes, counts). */
const FIELDS = [
  { key: 'apiRequests', label: 'API requests in the month', unit: 1, hint: 'Every authenticated call.' },
  { key: 'egressBytes', label: 'Egress (GiB)', unit: GiB, hint: 'Response bodies sent.' },
  { key: 'storageBytes', label: 'Database storage, average (GiB)', unit: GiB, hint: 'Averaged over the month.' },
  { key: 'fileStorageBytes', label: 'File storage, average (GiB)', unit: GiB, hint: 'Averaged over the month.' },
  { key: 'realtimeConnections', label: 'Realtime connections, peak', unit: 1, hint: 'The most open at once.' },
] as const;
type UsageKey = (typeof FIELDS)[number]['key'];

const EMPTY: Record<UsageKey, string> = { apiRequests: '0', egressBytes: '0', storageBytes: '0', fileStorageBytes: '0', realtimeConnections: '0' };

/** A field's text as the api's integer, or the message to show under it. */
function parse(text: string, unit: number): number | string {
  const trimmed = text.trim();
  if (trimmed === '') return 'Enter a number (0 for none).';
  const value = Number(trimmed);
  if (!Number.isFinite(value)) return 'Must be a number.';
  if (value < 0) return 'Must be 0 or more.';
  if (unit === 1 && !Number.isInteger(value)) return 'Must be a whole number.';
  const scaled = Math.round(value * unit);
  if (!Number.isSafeInteger(scaled)) return 'Too large.';
  return scaled;
}

/**
 * The pricing calculator (POST /v1/pricing/estimate): a plan and a month of usage, priced
 * by the api with the month close's own engine and shown as the invoice it would be.
 */
export function PricingPage() {
  const [plan, setPlan] = useState<Plan>('pro');
  const [values, setValues] = useState(EMPTY);
  const [errors, setErrors] = useState<Partial<Record<UsageKey, string>>>({});
  const estimate = useMutation({ mutationFn: (input: Parameters<typeof api.pricing.estimate.mutate>[0]) => api.pricing.estimate.mutate(input) });

  useEffect(() => {
    document.title = 'Pricing calculator · Tenantry';
  }, []);

  function submit(event: FormEvent) {
    event.preventDefault();
    const usage: Partial<Record<UsageKey, number>> = {};
    const found: Partial<Record<UsageKey, string>> = {};
    for (const field of FIELDS) {
      const parsed = parse(values[field.key], field.unit);
      if (typeof parsed === 'string') found[field.key] = parsed;
      else usage[field.key] = parsed;
    }
    setErrors(found);
    if (Object.keys(found).length === 0) estimate.mutate({ plan, usage });
  }

  return (
    <>
      <div className="page__header">
        <h1>Pricing calculator</h1>
      </div>
      <p className="muted">What a full month of this usage costs on a plan at the current price book, as the month close would invoice it.</p>
      <div className="grid">
        <Card title="Plan and usage">
          <form className="form" onSubmit={submit} noValidate>
            <Select label="Plan" value={plan} onChange={(value) => setPlan(value as Plan)} options={PLANS.map((p) => ({ value: p, label: p }))} />
            {FIELDS.map((field) => (
              <Field
                key={field.key}
                label={field.label}
                hint={field.hint}
                inputMode={field.unit === 1 ? 'numeric' : 'decimal'}
                value={values[field.key]}
                error={errors[field.key]}
                onChange={(event) => setValues((v) => ({ ...v, [field.key]: event.target.value }))}
              />
            ))}
            {estimate.isError ? (
              <p className="form__error" role="alert">
                {errorMessage(estimate.error)}
              </p>
            ) : null}
            <div className="form__actions">
              <button type="submit" className="button button--primary" disabled={estimate.isPending}>
                {estimate.isPending ? 'Estimating…' : 'Estimate'}
              </button>
            </div>
          </form>
        </Card>
        <Card title="Estimate">
          <div aria-live="polite">
            {estimate.data ? (
              <>
                <p className="muted">
                  Plan <strong>{estimate.data.lines[0]?.plan ?? plan}</strong>, price book version {estimate.data.planVersion}, {estimate.data.currency}.
                </p>
                <InvoiceLines invoice={estimate.data} label="Estimated invoice lines" />
              </>
            ) : (
              <Empty title="Choose a plan and usage, then Estimate." />
            )}
          </div>
        </Card>
      </div>
    </>
  );
}
