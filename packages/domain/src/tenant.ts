import { z } from 'zod';

export const TenantStatus = z.enum(['provisioning', 'active', 'suspended', 'pending_deletion', 'deleted']);
export type TenantStatus = z.infer<typeof TenantStatus>;

export const Isolation = z.enum(['schema', 'database', 'cluster']);
export type Isolation = z.infer<typeof Isolation>;

export const MemberRole = z.enum(['owner', 'admin', 'member']);
export type MemberRole = z.infer<typeof MemberRole>;

export const SubscriptionState = z.enum(['trial', 'active', 'grace', 'expired', 'suspended']);
export type SubscriptionState = z.infer<typeof SubscriptionState>;

/** The plan every self-serve signup starts on, and how long its trial runs. */
export const TRIAL_PLAN = 'trial';
export const TRIAL_DAYS = 14;

const SCHEMA_NAME = /^t_[0-9a-f]{32}$/;

/**
 * The Postgres schema of a schema-isolated tenant. Derived from the tenant's generated
 * uuid only — never from user input — and checked against a strict pattern, because it
 * ends up in DDL as an identifier.
 */
export function tenantSchemaName(tenantId: string): string {
  const name = `t_${tenantId.replaceAll('-', '').toLowerCase()}`;
  assertTenantSchemaName(name);
  return name;
}

export function assertTenantSchemaName(name: string): void {
  if (!SCHEMA_NAME.test(name)) throw new Error(`not a tenant schema name: ${JSON.stringify(name)}`);
}

const DATABASE_NAME = /^td_[0-9a-f]{32}$/;
const ROLE_NAME = /^tr_[0-9a-f]{32}$/;

/**
 * The database and login role of a database-isolated tenant (`td_<32 hex>`, `tr_<32 hex>`).
 * Like the schema name: derived from the generated tenant id only, checked, and still
 * quoted wherever it reaches DDL.
 */
export function tenantDatabaseName(tenantId: string): string {
  const name = `td_${tenantId.replaceAll('-', '').toLowerCase()}`;
  assertTenantDatabaseName(name);
  return name;
}

export function tenantRoleName(tenantId: string): string {
  const name = `tr_${tenantId.replaceAll('-', '').toLowerCase()}`;
  assertTenantRoleName(name);
  return name;
}

export function assertTenantDatabaseName(name: string): void {
  if (!DATABASE_NAME.test(name)) throw new Error(`not a tenant database name: ${JSON.stringify(name)}`);
}

export function assertTenantRoleName(name: string): void {
  if (!ROLE_NAME.test(name)) throw new Error(`not a tenant role name: ${JSON.stringify(name)}`);
}
