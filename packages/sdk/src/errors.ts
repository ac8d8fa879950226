import { TRPCClientError } from '@trpc/client';
import type { AnyRouter } from '@trpc/server';

/** One invalid input field, as the api reports it with `validation_failed`. */
export interface TenantryFieldIssue {
  field: string;
  message: string;
}

/** Marks TenantryErrors across copies of the SDK (two bundles, two versions), where `instanceof` fails. */
const BRAND = Symbol.for('@tenantry/sdk/TenantryError');

/**
 * Every failed call of an SDK client rejects with this.
 *
 * - `code`: the api's machine-readable code (`validation_failed`, `invalid_token`,
 *   `signup_not_found`, …), or `network_error` when no api response was received
 *   (connection refused, DNS, CORS, a non-JSON answer from a proxy), or `aborted`
 *   when the caller's AbortSignal fired.
 * - `status`: the HTTP status the api answered with; 0 when there was no api response.
 * - `fields`: with `validation_failed`, which input fields were wrong and why.
 * - `resource`: with `quota_exceeded`, the limit that was reached (`storageBytes`, …).
 * - `cause`: the original TRPCClientError (its `cause` is the network error, if any).
 */
export class TenantryError extends Error {
  readonly code: string;
  readonly status: number;
  readonly fields?: TenantryFieldIssue[];
  readonly resource?: string;
  declare readonly cause: TRPCClientError<AnyRouter>;

  constructor(init: { code: string; status: number; message: string; fields?: TenantryFieldIssue[]; resource?: string; cause: TRPCClientError<AnyRouter> }) {
    super(init.message, { cause: init.cause });
    this.name = 'TenantryError';
    this.code = init.code;
    this.status = init.status;
    if (init.fields) this.fields = init.fields;
    if (init.resource) this.resource = init.resource;
    Object.defineProperty(this, BRAND, { value: true });
  }
}

/** Whether `value` is a TenantryError (also one made by another copy of the SDK). */
export function isTenantryError(value: unknown): value is TenantryError {
  return value instanceof TenantryError || (typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function fieldsOf(value: unknown): TenantryFieldIssue[] | undefined {
  if (!Array.isArray(value)) return undefined;
  return value
    .filter(isRecord)
    .map((issue) => ({ field: String(issue.field ?? ''), message: String(issue.message ?? '') }));
}

function isAbort(error: unknown): boolean {
  return isRecord(error) && error.name === 'AbortError';
}

/**
 * Convert whatever a tRPC call rejected with into a TenantryError. The api's error
 * formatter (apps/api/src/trpc.ts) puts `code`, `httpStatus`, `fields` and `resource` on every error's
 * `data`; an error without `data` never got an api response.
 */
export function toTenantryError(error: unknown): TenantryError {
  if (isTenantryError(error)) return error;
  const cause: TRPCClientError<AnyRouter> =
    error instanceof TRPCClientError ? error : TRPCClientError.from(error instanceof Error || isRecord(error) ? error : new Error(String(error)));
  const data: unknown = cause.data;
  if (isRecord(data) && (typeof data.code === 'string' || typeof data.httpStatus === 'number')) {
    const fields = fieldsOf(data.fields);
    return new TenantryError({
      code: typeof data.code === 'string' ? data.code : 'unknown_error',
      status: typeof data.httpStatus === 'number' ? data.httpStatus : 0,
      message: cause.message,
      ...(fields ? { fields } : {}),
      ...(typeof data.resource === 'string' ? { resource: data.resource } : {}),
      cause,
    });
  }
  if (isAbort(cause.cause) || isAbort(cause)) {
    return new TenantryError({ code: 'aborted', status: 0, message: 'The request was aborted', cause });
  }
  return new TenantryError({ code: 'network_error', status: 0, message: `The Tenantry api could not be reached: ${cause.message}`, cause });
}
