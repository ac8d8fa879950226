import { describe, expect, it } from 'vitest';
import { closableAt, latestClosableMonth } from './billing.js';

describe('when a month may be closed', () => {
  it('once its grace period after the end is over, not a millisecond before', () => {
    expect(closableAt('2026-11', 12).toISOString()).toBe('2026-12-01T12:00:00.000Z');
    expect(latestClosableMonth(new Date('2026-12-01T11:59:59.999Z'), 12)).toBe('2026-10');
    expect(latestClosableMonth(new Date('2026-12-01T12:00:00.000Z'), 12)).toBe('2026-11');
    expect(latestClosableMonth(new Date('2026-12-17T08:00:00Z'), 12)).toBe('2026-11');
    // No grace: the moment the month ends. Across a year.
    expect(latestClosableMonth(new Date('2027-01-01T00:00:00Z'), 0)).toBe('2026-12');
    expect(latestClosableMonth(new Date('2027-01-01T05:00:00Z'), 12)).toBe('2026-11');
  });
});
