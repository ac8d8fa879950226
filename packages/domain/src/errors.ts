/**
 * Typed errors of the domain. Each carries a machine-readable `code` (what clients switch
 * on) and a `kind` (what transport status it maps to). The api maps kinds to tRPC / HTTP
 * codes in exactly one place (apps/api/src/errors.ts); nothing below the api knows HTTP.
 */
export type ErrorKind =
  | 'bad_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'timeout'
  | 'payment_required'
  | 'rate_limited'
  | 'unavailable';

export interface FieldIssue {
  field: string;
  message: string;
}

export abstract class DomainError extends Error {
  abstract readonly kind: ErrorKind;
  abstract readonly code: string;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class ValidationError extends DomainError {
  readonly kind = 'bad_request';
  readonly code = 'validation_failed';
  constructor(
    readonly fields: FieldIssue[],
    message = 'The request is invalid: ' + fields.map((f) => `${f.field}: ${f.message}`).join('; '),
  ) {
    super(message);
  }
}

/**
 * A request that cannot be taken as sent, before any field is looked at: malformed or
 * unsafe JSON, bad percent-encoding, a tRPC batch too large.
 */
export class BadRequestError extends DomainError {
  readonly kind = 'bad_request';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A body in a format the route does not take. */
export class UnsupportedMediaTypeError extends DomainError {
  readonly kind = 'unsupported_media_type';
  readonly code = 'unsupported_media_type';
}

/** The client stopped sending its request body before it was complete. */
export class RequestTimeoutError extends DomainError {
  readonly kind = 'timeout';
  readonly code = 'request_timeout';
}

export class NotFoundError extends DomainError {
  readonly kind = 'not_found';
  readonly code: string;
  constructor(what: string, code = 'not_found') {
    super(`${what} was not found`);
    this.code = code;
  }
}

export class UnauthorizedError extends DomainError {
  readonly kind = 'unauthorized';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class ForbiddenError extends DomainError {
  readonly kind = 'forbidden';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class RateLimitedError extends DomainError {
  readonly kind = 'rate_limited';
  readonly code = 'rate_limited';
  constructor(
    readonly retryAfterSeconds: number,
    message = `Too many requests; retry in ${retryAfterSeconds} s`,
  ) {
    super(message);
  }
}

/** A dependency (Redis, the queue, Postgres) cannot be reached; the client may retry. */
export class DependencyUnavailableError extends DomainError {
  readonly kind = 'unavailable';
  readonly code = 'dependency_unavailable';
  constructor(
    readonly dependency: 'redis' | 'postgres' | 'queue',
    options?: { cause?: unknown },
  ) {
    super(`A dependency (${dependency}) is unavailable; retry shortly`, options);
  }
}

/** The tenant's subscription does not allow this (expired or billing-suspended: reads only). */
export class PaymentRequiredError extends DomainError {
  readonly kind = 'payment_required';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A body or document over its size limit. */
export class PayloadTooLargeError extends DomainError {
  readonly kind = 'payload_too_large';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A tenant went over one of its limits. Storage-like limits are 402 (pay or free space:
 * reads and deletes still work); a connection limit is 429. `resource` names the limit.
 */
export class QuotaExceededError extends DomainError {
  readonly code = 'quota_exceeded';
  constructor(
    readonly resource: string,
    readonly kind: 'payment_required' | 'rate_limited',
    message: string,
  ) {
    super(message);
  }
}
