import { isPostgresUnavailable } from '@tenantry/db';
import {
  DependencyUnavailableError,
  DomainError,
  type ErrorKind,
  type FieldIssue,
  QuotaExceededError,
  RateLimitedError,
  TenantMovingError,
  ValidationError,
} from '@tenantry/domain';
import { StandardSchemaV1Error, TRPCError } from '@trpc/server';
import type { TRPC_ERROR_CODE_KEY } from '@trpc/server/rpc';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { ZodError } from 'zod';

/**
 * The one place where errors become wire errors. Domain code throws typed DomainErrors;
 * the procedure ladder turns them into TRPCErrors (for /trpc), and the REST adapter and
 * the tRPC error formatter both render `{ code, message, fields? }` from the result.
 */
const TRPC_CODE_OF_KIND: Record<ErrorKind, TRPC_ERROR_CODE_KEY> = {
  bad_request: 'BAD_REQUEST',
  unauthorized: 'UNAUTHORIZED',
  forbidden: 'FORBIDDEN',
  not_found: 'NOT_FOUND',
  conflict: 'CONFLICT',
  payload_too_large: 'PAYLOAD_TOO_LARGE',
  unsupported_media_type: 'UNSUPPORTED_MEDIA_TYPE',
  timeout: 'TIMEOUT',
  payment_required: 'PAYMENT_REQUIRED',
  rate_limited: 'TOO_MANY_REQUESTS',
  unavailable: 'SERVICE_UNAVAILABLE',
};

export function toTRPCError(error: DomainError): TRPCError {
  return new TRPCError({ code: TRPC_CODE_OF_KIND[error.kind], message: error.message, cause: error });
}

export interface WireError {
  status: number;
  headers: Record<string, string>;
  body: { code: string; message: string; fields?: FieldIssue[]; resource?: string };
}

interface SchemaIssue {
  message: string;
  path?: ReadonlyArray<PropertyKey | { key: PropertyKey }>;
}

/**
 * Input validation failures reach us as a ZodError or, since tRPC validates through
 * Standard Schema, as an error carrying `issues`; both become `fields`.
 */
function validationIssues(cause: unknown): SchemaIssue[] | null {
  if (cause instanceof ZodError) return cause.issues as SchemaIssue[];
  if (cause instanceof StandardSchemaV1Error) return cause.issues as SchemaIssue[];
  return null;
}

function toFields(issues: SchemaIssue[]): FieldIssue[] {
  return issues.map((issue) => ({
    field: (issue.path ?? []).map((p) => String(typeof p === 'object' ? p.key : p)).join('.') || '(body)',
    message: issue.message,
  }));
}

/** Render any error the api can meet as a status, headers and `{code, message, fields?}`. */
export function toWireError(error: unknown): WireError {
  // A DomainError thrown outside a procedure (the transport's own checks) maps like one
  // thrown inside. Postgres unreachable (restart, failover, network) is an outage of a
  // dependency, which clients should retry, not a bug: 503 dependency_unavailable, as
  // when Redis is down.
  // So does one inside the INTERNAL_SERVER_ERROR tRPC first wraps it in (what middlewares
  // below the ladder's mapper see).
  const domain = error instanceof DomainError ? error : error instanceof TRPCError && error.cause instanceof DomainError ? error.cause : undefined;
  if (domain) {
    error = toTRPCError(domain);
  } else if (isPostgresUnavailable(error)) {
    error = toTRPCError(new DependencyUnavailableError('postgres', { cause: error }));
  }
  const trpcError = error instanceof TRPCError ? error : new TRPCError({ code: 'INTERNAL_SERVER_ERROR', cause: error });
  const status = getHTTPStatusCodeFromError(trpcError);
  const cause = trpcError.cause;
  const issues = trpcError.code === 'BAD_REQUEST' ? validationIssues(cause) : null;
  if (issues) {
    const fields = toFields(issues);
    return { status: 400, headers: {}, body: { code: 'validation_failed', message: new ValidationError(fields).message, fields } };
  }
  if (cause instanceof DomainError) {
    const headers: Record<string, string> = {};
    if (cause instanceof RateLimitedError) headers['retry-after'] = String(cause.retryAfterSeconds);
    if (cause instanceof DependencyUnavailableError) headers['retry-after'] = '1';
    if (cause instanceof TenantMovingError) headers['retry-after'] = String(cause.retryAfterSeconds);
    const body: WireError['body'] = { code: cause.code, message: cause.message };
    if (cause instanceof ValidationError) body.fields = cause.fields;
    if (cause instanceof QuotaExceededError) body.resource = cause.resource;
    return { status, headers, body };
  }
  if (status >= 500) {
    // Never echo internals (SQL, stack, hostnames) to a client.
    return { status, headers: {}, body: { code: 'internal_error', message: 'Internal server error' } };
  }
  return { status, headers: {}, body: { code: trpcError.code.toLowerCase(), message: trpcError.message } };
}
