import { ValidationError } from '@tenantry/domain';
import { describe, expect, it } from 'vitest';
import { type HistoryEntry, billingTimeline, usageWindows } from './timeline.js';

const d = (iso: string) => new Date(iso);
const MARCH = { start: d('2026-03-01T00:00:00Z'), end: d('2026-04-01T00:00:00Z') };
const entry = (at: string, status: HistoryEntry['status'], plan = 'pro', planVersion = 1): HistoryEntry => ({ at: d(at), status, plan, planVersion });
const timeline = (history: HistoryEntry[]) => billingTimeline(history, MARCH.start, MARCH.end);

describe('plan segments from the recorded history', () => {
  it('active all month since February: one segment, the whole month', () => {
    expect(timeline([entry('2026-02-10T08:00:00Z', 'active')])).toEqual({
      segments: [{ plan: 'pro', planVersion: 1, from: MARCH.start, to: MARCH.end }],
      suspended: [],
    });
  });

  it('provisioning is not billed: from activation; pending deletion and after is not billed: until deletion', () => {
    const { segments } = timeline([
      entry('2026-03-10T11:59:58Z', 'provisioning'),
      entry('2026-03-10T12:00:00Z', 'active'),
      entry('2026-03-20T12:00:00Z', 'pending_deletion'),
      entry('2026-03-27T12:00:00Z', 'deleted'),
    ]);
    expect(segments).toEqual([{ plan: 'pro', planVersion: 1, from: d('2026-03-10T12:00:00Z'), to: d('2026-03-20T12:00:00Z') }]);
  });

  it('a plan or price book change starts a new segment; a suspension stays inside its segment and is reported', () => {
    const { segments, suspended } = timeline([
      entry('2026-01-01T00:00:00Z', 'active', 'pro'),
      entry('2026-03-05T00:00:00Z', 'suspended', 'pro'),
      entry('2026-03-08T00:00:00Z', 'active', 'pro'),
      entry('2026-03-11T00:00:00Z', 'active', 'enterprise'),
      entry('2026-03-20T00:00:00Z', 'suspended', 'enterprise'),
      entry('2026-03-25T00:00:00Z', 'suspended', 'enterprise', 2),
    ]);
    expect(segments.map((s) => [s.plan, s.planVersion, s.from.toISOString(), s.to.toISOString()])).toEqual([
      ['pro', 1, '2026-03-01T00:00:00.000Z', '2026-03-11T00:00:00.000Z'],
      ['enterprise', 1, '2026-03-11T00:00:00.000Z', '2026-03-25T00:00:00.000Z'],
      ['enterprise', 2, '2026-03-25T00:00:00.000Z', '2026-04-01T00:00:00.000Z'],
    ]);
    // The two suspended stretches of enterprise touch: one interval.
    expect(suspended.map((i) => [i.from.toISOString(), i.to.toISOString()])).toEqual([
      ['2026-03-05T00:00:00.000Z', '2026-03-08T00:00:00.000Z'],
      ['2026-03-20T00:00:00.000Z', '2026-04-01T00:00:00.000Z'],
    ]);
  });

  it('deleted, then restored: two segments of the same plan with the gap between unbilled', () => {
    const { segments } = timeline([entry('2026-02-01T00:00:00Z', 'active'), entry('2026-03-10T00:00:00Z', 'pending_deletion'), entry('2026-03-12T00:00:00Z', 'active')]);
    expect(segments.map((s) => [s.from.toISOString(), s.to.toISOString()])).toEqual([
      ['2026-03-01T00:00:00.000Z', '2026-03-10T00:00:00.000Z'],
      ['2026-03-12T00:00:00.000Z', '2026-04-01T00:00:00.000Z'],
    ]);
  });

  it('a tenant not billed in the month has no segment; a plan not in the catalog is an error, not a guess', () => {
    expect(timeline([entry('2026-04-02T00:00:00Z', 'active')]).segments).toEqual([]);
    expect(timeline([entry('2026-01-01T00:00:00Z', 'pending_deletion')]).segments).toEqual([]);
    expect(() => timeline([entry('2026-01-01T00:00:00Z', 'active', 'platinum')])).toThrow(ValidationError);
  });
});

describe('which hours of usage each segment is billed for', () => {
  it('a change inside an hour gives the hour to the segment in force at its start; a change on the hour, to the new one', () => {
    const segments = [
      { plan: 'pro' as const, planVersion: 1, from: d('2026-03-03T10:20:00Z'), to: d('2026-03-11T14:30:00Z') },
      { plan: 'enterprise' as const, planVersion: 1, from: d('2026-03-11T14:30:00Z'), to: d('2026-03-20T09:00:00Z') },
      { plan: 'pro' as const, planVersion: 1, from: d('2026-03-20T09:00:00Z'), to: MARCH.end },
    ];
    expect(usageWindows(segments, MARCH.start, MARCH.end).map((w) => [w.from.toISOString(), w.to.toISOString()])).toEqual([
      // From the month's start: the hours before creation (provisioning) go to the first segment.
      ['2026-03-01T00:00:00.000Z', '2026-03-11T15:00:00.000Z'],
      ['2026-03-11T15:00:00.000Z', '2026-03-20T09:00:00.000Z'],
      ['2026-03-20T09:00:00.000Z', '2026-04-01T00:00:00.000Z'],
    ]);
  });
});

describe('whole seconds', () => {
  it('changes within one second leave no empty segment behind (the engine would refuse it)', () => {
    const { segments } = timeline([
      entry('2026-03-10T12:00:00.100Z', 'active', 'trial'),
      entry('2026-03-10T12:00:00.400Z', 'active', 'pro'),
      entry('2026-03-10T12:00:00.900Z', 'active', 'enterprise'),
    ]);
    expect(segments.map((s) => [s.plan, s.from.toISOString()])).toEqual([['enterprise', '2026-03-10T12:00:00.000Z']]);
  });
});
