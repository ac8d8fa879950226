import type { RouterInputs } from '@tenantry/sdk';

type ListInput = RouterInputs['tenants']['list'];
export type Plan = NonNullable<ListInput['plan']>;
export type Status = NonNullable<ListInput['status']>;

/** Every plan and status the api accepts; `satisfies` + the checks below keep them in step with its types. */
export const PLANS = ['trial', 'free', 'pro', 'enterprise'] as const satisfies readonly Plan[];
export const STATUSES = ['provisioning', 'active', 'suspended', 'pending_deletion', 'deleted'] as const satisfies readonly Status[];
type Missing<All, Listed> = Exclude<All, Listed> extends never ? true : Exclude<All, Listed>;
export const plansComplete: Missing<Plan, (typeof PLANS)[number]> = true;
export const statusesComplete: Missing<Status, (typeof STATUSES)[number]> = true;

export interface TenantFilters {
  q?: string;
  plan?: Plan | undefined;
  status?: Status | undefined;
  /** Keyset cursors of the pages walked so far, dot-separated. */
  c?: string;
}

export const PAGE_SIZE = 50;
