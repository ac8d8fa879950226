import type { StoredPlacement, Tenant } from '../schema.js';
import type { NullableTenantColumn } from './driver.js';

/**
 * Where one isolation model keeps a tenant: the values of its driver's placement columns,
 * as the tenant row holds them (`schema_name` for a schema tenant; `database_*` for a
 * database tenant; `database_*` and `cluster_*` for a cluster tenant). A move holds the
 * target's placement apart from the tenant row until the switch, since database and
 * cluster share the `database_*` columns.
 */
export type Placement = { [K in NullableTenantColumn]?: Tenant[K] };

/** Placement columns holding bytes (the encrypted passwords, `*_enc`): base64 in a stored placement. */
const isByteColumn = (column: string) => column.endsWith('_enc');

/** The placement `columns` of `row`. */
export function placementOf(columns: readonly NullableTenantColumn[], row: Tenant): Placement {
  const placement: Record<string, unknown> = {};
  for (const column of columns) placement[column] = row[column];
  return placement as Placement;
}

/** A placement as a move row stores it (jsonb): bytes as base64. Only ciphertexts ever reach it. */
export function storePlacement(placement: Placement): string {
  const stored: StoredPlacement = {};
  for (const [column, value] of Object.entries(placement)) {
    if (value === undefined) continue;
    if (Buffer.isBuffer(value)) stored[column] = value.toString('base64');
    else if (value instanceof Date) stored[column] = value.toISOString();
    else stored[column] = value as string | number | boolean | null;
  }
  return JSON.stringify(stored);
}

export function loadPlacement(stored: StoredPlacement): Placement {
  const placement: Record<string, unknown> = {};
  for (const [column, value] of Object.entries(stored)) {
    placement[column] = isByteColumn(column) && typeof value === 'string' ? Buffer.from(value, 'base64') : value;
  }
  return placement as Placement;
}

/** The tenant-row update that makes `placement` the tenant's, clearing every other placement column. */
export function placementUpdate(allColumns: readonly NullableTenantColumn[], placement: Placement): Placement {
  const update: Record<string, unknown> = Object.fromEntries(allColumns.map((column) => [column, null]));
  for (const [column, value] of Object.entries(placement)) if (value !== undefined) update[column] = value;
  return update as Placement;
}
