import { DomainError } from './errors.js';
import type { TenantStatus } from './tenant.js';

/**
 * The tenant lifecycle. Operators move tenants between these states; the purge job ends
 * them. `provisioning` is left only by the provisioning saga, never by an operator.
 *
 *   active ⇄ suspended                      (suspend needs a reason)
 *   active | suspended → pending_deletion   (delete: data kept until deleteAfter)
 *   pending_deletion → its previous state   (restore)
 *   pending_deletion → deleted              (purge, by the worker once deleteAfter passes)
 */
export type LifecycleAction = 'suspend' | 'unsuspend' | 'delete' | 'restore' | 'purge';

export class ConflictError extends DomainError {
  readonly kind = 'conflict';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class IllegalTransitionError extends ConflictError {
  constructor(
    readonly from: TenantStatus,
    readonly action: LifecycleAction,
  ) {
    super('illegal_transition', `A tenant that is ${from.replace('_', ' ')} cannot be ${PAST_TENSE[action]}`);
  }
}

const PAST_TENSE: Record<LifecycleAction, string> = {
  suspend: 'suspended',
  unsuspend: 'unsuspended',
  delete: 'deleted',
  restore: 'restored',
  purge: 'purged',
};

/** The lifecycle states a tenant can be deleted from, and so restored to. */
export type RestorableStatus = 'active' | 'suspended';

export interface LifecycleState {
  status: TenantStatus;
  /** For pending_deletion: the state a restore returns to. */
  statusBeforeDeletion: RestorableStatus | null;
  isDefault: boolean;
}

/**
 * The state `action` leads to from `state`, or a typed error: IllegalTransitionError, or
 * `default_tenant_protected` for the platform's own tenant, which can be neither
 * suspended nor deleted.
 */
export function nextStatus(state: LifecycleState, action: LifecycleAction): TenantStatus {
  if (state.isDefault && (action === 'suspend' || action === 'delete')) {
    throw new ConflictError('default_tenant_protected', "The platform's default tenant can be neither suspended nor deleted");
  }
  switch (action) {
    case 'suspend':
      if (state.status === 'active') return 'suspended';
      break;
    case 'unsuspend':
      if (state.status === 'suspended') return 'active';
      break;
    case 'delete':
      if (state.status === 'active' || state.status === 'suspended') return 'pending_deletion';
      break;
    case 'restore':
      if (state.status === 'pending_deletion') return state.statusBeforeDeletion ?? 'active';
      break;
    case 'purge':
      if (state.status === 'pending_deletion') return 'deleted';
      break;
  }
  throw new IllegalTransitionError(state.status, action);
}

/** Statuses in which a tenant's own users are refused (sessions are kept, so access returns on unsuspend/restore). */
export function tenantAccessRefusal(status: TenantStatus): { code: string; message: string } | null {
  switch (status) {
    case 'active':
      return null;
    case 'suspended':
      return { code: 'tenant_suspended', message: 'This tenant is suspended' };
    case 'pending_deletion':
      return { code: 'tenant_pending_deletion', message: 'This tenant is scheduled for deletion' };
    case 'provisioning':
      return { code: 'tenant_provisioning', message: 'This tenant is still being provisioned' };
    case 'deleted':
      return { code: 'tenant_deleted', message: 'This tenant has been deleted' };
  }
}
