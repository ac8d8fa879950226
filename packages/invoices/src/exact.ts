/**
 * Exact arithmetic for money and quantities: BigInt throughout, one rounding rule.
 * Byte-seconds of a month exceed 2^53 (1 TiB for 30 days is 2.8e18), so a float would
 * silently lose units long before anyone noticed.
 */

/** n / d rounded half-up (half away from zero for these non-negative inputs). */
export function divHalfUp(n: bigint, d: bigint): bigint {
  if (d <= 0n) throw new RangeError('divisor must be positive');
  if (n < 0n) throw new RangeError('dividend must not be negative');
  return (2n * n + d) / (2n * d);
}

/** n / d rounded up. */
export function divCeil(n: bigint, d: bigint): bigint {
  if (d <= 0n) throw new RangeError('divisor must be positive');
  return (n + d - 1n) / d;
}

export const max0 = (n: bigint): bigint => (n > 0n ? n : 0n);

/** A fixed-point integer as a decimal string: (12500n, 3) → "12.500". */
export function fixed(value: bigint, decimals: number): string {
  if (decimals === 0) return value.toString();
  const digits = value.toString().padStart(decimals + 1, '0');
  return `${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`;
}

/** "1,234,567" */
export function grouped(value: bigint | number): string {
  return value.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** A non-negative integer from a number, a digit string or a bigint; anything else throws. */
export function toBigInt(value: bigint | number | string, what: string): bigint {
  if (typeof value === 'bigint') {
    if (value < 0n) throw new RangeError(`${what} must not be negative`);
    return value;
  }
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${what} must be a non-negative safe integer, got ${value}`);
    return BigInt(value);
  }
  if (!/^\d{1,30}$/.test(value)) throw new RangeError(`${what} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return BigInt(value);
}

/** A bigint that must fit a JSON number exactly (money in minor units). */
export function toSafeNumber(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < -BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new RangeError(`${what} (${value}) is beyond what an invoice can carry exactly`);
  }
  return Number(value);
}
