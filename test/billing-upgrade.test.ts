import { randomBytes, randomUUID } from 'node:crypto';
import { type Db, createDb, migrateToLatest, migrateUpTo } from '@tenantry/db';
import { monthOf } from '@tenantry/domain';
import { closeMonth, draftInvoice } from '@tenantry/invoices';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withAdmin } from './support/admin.js';
import { databaseUrl } from './support/env.js';

/**
 * An installation that had tenants before invoicing existed, upgraded: its tenants are
 * billed from the upgrade, not from their creation (migration 2026-12-01T1900). Built from
 * an empty database migrated to the release before invoicing, not from the test template.
 */

const name = `tenantry_upgrade_${randomBytes(6).toString('hex')}`;
let db: Db;
const settings = { currency: 'USD', issuer: { name: 'Tenantry test', address: ['1 Test Street'] }, graceHours: 12 };
const oldTenant = randomUUID();
let upgradedAt: Date;

const historyOf = (tenantId: string) =>
  db.selectFrom('tenant_billing_history').select(['at', 'status', 'plan']).where('tenant_id', '=', tenantId).orderBy('at').orderBy('id').execute();
const previousMonth = (month: string) => {
  const [y, m] = month.split('-').map(Number) as [number, number];
  return monthOf(new Date(Date.UTC(y, m - 2, 15)));
};

beforeAll(async () => {
  await withAdmin((client) => client.query(`create database ${client.escapeIdentifier(name)}`));
  db = createDb(databaseUrl(name), { maxConnections: 2, applicationName: 'tenantry-test' });
  await migrateUpTo(db, '2026-12-01T1300_usage');
  // A pro tenant live since two months before this one began, as the old release left it.
  const now = new Date();
  const created = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 2, 5, 9, 30));
  await db
    .insertInto('tenants')
    .values({ id: oldTenant, slug: `old-${oldTenant.slice(0, 8)}`, name: 'Old Tenant', status: 'active', plan: 'pro', isolation: 'schema', schema_name: null, created_at: created })
    .execute();
  await migrateToLatest(db);
  const row = await db.selectFrom('kysely_migration' as never).select(sql<string>`timestamp`.as('timestamp')).where(sql`name`, '=', '2026-12-01T1400_invoices').executeTakeFirstOrThrow();
  upgradedAt = new Date(row.timestamp);
});

afterAll(async () => {
  await db?.destroy();
  await withAdmin((client) => client.query(`drop database if exists ${client.escapeIdentifier(name)} with (force)`));
});

describe('upgrading an installation that has tenants to invoicing', () => {
  it("a tenant's plan history starts at the upgrade, not at its creation", async () => {
    const history = await historyOf(oldTenant);
    expect(history).toHaveLength(1);
    expect(history[0]).toMatchObject({ status: 'active', plan: 'pro' });
    expect(history[0]!.at.getTime()).toBe(upgradedAt.getTime());
  });

  it('the months before the upgrade get no invoice; the month of the upgrade is billed from it', async () => {
    const thisMonth = monthOf(new Date());
    for (const month of [previousMonth(previousMonth(thisMonth)), previousMonth(thisMonth)]) {
      const closed = await closeMonth(db, month, { now: new Date(), force: true, actor: 'system:test', settings });
      expect(closed).toMatchObject({ month, created: 0, invoices: 0, failed: [] });
    }
    expect(await db.selectFrom('invoices').select('id').where('tenant_id', '=', oldTenant).execute()).toEqual([]);

    const draft = await draftInvoice(db, { id: oldTenant, name: 'Old Tenant' }, new Date(Date.now() + 2_000), settings);
    expect(draft).not.toBeNull();
    const base = draft!.lines.find((line) => line.kind === 'base');
    expect(base, JSON.stringify(draft!.lines)).toBeDefined();
    // Prorated from the upgrade (moments ago), not from the first of the month.
    expect(new Date(base!.from).getTime()).toBeGreaterThanOrEqual(Math.floor(upgradedAt.getTime() / 1000) * 1000);
  });

  it("a tenant created after the upgrade: its first history row is the trigger's, dated after its created_at (never taken for a seed row)", async () => {
    const fresh = randomUUID();
    await db
      .insertInto('tenants')
      .values({ id: fresh, slug: `new-${fresh.slice(0, 8)}`, name: 'New Tenant', status: 'active', plan: 'pro', isolation: 'schema', schema_name: null })
      .execute();
    const [first] = await historyOf(fresh);
    const { created_at } = await db.selectFrom('tenants').select('created_at').where('id', '=', fresh).executeTakeFirstOrThrow();
    // The migration tells seed rows by at = created_at: a trigger's row never has it.
    const { equal } = await db
      .selectFrom('tenant_billing_history')
      .select(sql<boolean>`bool_or(at = (select created_at from tenants where id = ${fresh}))`.as('equal'))
      .where('tenant_id', '=', fresh)
      .executeTakeFirstOrThrow();
    expect(equal).toBe(false);
    expect(first!.at.getTime()).toBeGreaterThanOrEqual(created_at.getTime());
    expect(first!.at.getTime()).toBeGreaterThan(upgradedAt.getTime());
  });
});
