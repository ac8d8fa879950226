import { z } from 'zod';
import { DomainError } from './errors.js';
import { publicIdSchema } from './ids.js';
import { Isolation } from './tenant.js';
import { TenantRef } from './tenants-api.js';

/**
 * A move of a tenant between isolation models, as a state machine run by the worker:
 * pending → copying → cutover → verifying → done, or failed → rolled_back. Every state
 * but `done` and `rolled_back` is open: a tenant has at most one open move.
 */
export const MoveStatus = z.enum(['pending', 'copying', 'cutover', 'verifying', 'done', 'failed', 'rolled_back']);
export type MoveStatus = z.infer<typeof MoveStatus>;

export const FINAL_MOVE_STATUSES: readonly MoveStatus[] = ['done', 'rolled_back'];

export function isFinalMoveStatus(status: MoveStatus): boolean {
  return FINAL_MOVE_STATUSES.includes(status);
}

export const StartMoveRequest = z.strictObject({
  id: TenantRef,
  /** The model to move to. */
  isolation: Isolation,
});

export const MoveAccepted = z.object({
  moveId: z.string(),
  status: MoveStatus,
});

export const GetMoveRequest = z.strictObject({
  id: TenantRef,
  moveId: publicIdSchema('mov'),
});

export const MoveView = z.object({
  moveId: z.string(),
  from: Isolation,
  to: Isolation,
  status: MoveStatus,
  /** Why it failed (on `failed` and `rolled_back`). */
  error: z.string().optional(),
});
export type MoveView = z.infer<typeof MoveView>;

/**
 * A tenant write that came while the tenant's data is being switched to another store (a
 * move's cutover), or that reached the store it was just moved away from: nothing was
 * written; the same request succeeds once the move is through (Retry-After).
 */
export class TenantMovingError extends DomainError {
  readonly kind = 'unavailable';
  readonly code = 'tenant_moving';
  constructor(
    readonly retryAfterSeconds = 1,
    options?: { cause?: unknown },
  ) {
    super('The tenant is moving to another store; writes are paused for a moment, retry shortly', options);
  }
}
