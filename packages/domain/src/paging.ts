import { z } from 'zod';

/**
 * A page size: a number over tRPC, a string in a REST query string. Typed as
 * `number | string` on input (z.coerce would make it `unknown` for SDK callers).
 */
export function pageLimit(max: number, fallback: number) {
  return z
    .union([z.number(), z.string().regex(/^\d{1,3}$/, 'must be a whole number')])
    .transform(Number)
    .pipe(z.number().int().min(1).max(max))
    .default(fallback);
}
