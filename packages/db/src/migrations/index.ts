import type { Migration } from 'kysely';
import * as foundation from './2026-11-21T1000_foundation.js';
import * as controlPlane from './2026-11-21T1200_control_plane.js';
import * as billingAndAuditChain from './2026-11-21T1400_billing_and_audit_chain.js';
import * as tenantApiKeys from './2026-11-21T1500_tenant_api_keys.js';
import * as tenantHealth from './2026-11-21T1600_tenant_health.js';
import * as tenantDatabases from './2026-11-22T1000_tenant_databases.js';
import * as tenantClusters from './2026-11-22T1200_tenant_clusters.js';
import * as hardening from './2026-12-01T1000_hardening.js';
import * as operatorSessions from './2026-12-01T1100_operator_sessions.js';
import * as webhooks from './2026-12-01T1200_webhooks.js';
import * as usage from './2026-12-01T1300_usage.js';
import * as invoices from './2026-12-01T1400_invoices.js';
import * as filesRealtime from './2026-12-01T1500_files_realtime.js';
import * as moves from './2026-12-01T1600_moves.js';
import * as clusterReplicas from './2026-12-01T1700_cluster_replicas.js';
import * as tenantChanges from './2026-12-01T1800_tenant_changes.js';
import * as billingFromUpgrade from './2026-12-01T1900_billing_from_upgrade.js';
import * as tenantSearchNoPendingList from './2026-12-01T1910_tenant_search_no_pending_list.js';
import * as platformKeyChanges from './2026-12-02T1000_platform_key_changes.js';

/**
 * Every migration, by ISO-date name. Listed explicitly (rather than read from the
 * directory) so the set is the same under tsx, vitest and any bundler.
 */
export const migrations: Record<string, Migration> = {
  '2026-11-21T1000_foundation': foundation,
  '2026-11-21T1200_control_plane': controlPlane,
  '2026-11-21T1400_billing_and_audit_chain': billingAndAuditChain,
  '2026-11-21T1500_tenant_api_keys': tenantApiKeys,
  '2026-11-21T1600_tenant_health': tenantHealth,
  '2026-11-22T1000_tenant_databases': tenantDatabases,
  '2026-11-22T1200_tenant_clusters': tenantClusters,
  '2026-12-01T1000_hardening': hardening,
  '2026-12-01T1100_operator_sessions': operatorSessions,
  '2026-12-01T1200_webhooks': webhooks,
  '2026-12-01T1300_usage': usage,
  '2026-12-01T1400_invoices': invoices,
  '2026-12-01T1500_files_realtime': filesRealtime,
  '2026-12-01T1600_moves': moves,
  '2026-12-01T1700_cluster_replicas': clusterReplicas,
  '2026-12-01T1800_tenant_changes': tenantChanges,
  '2026-12-01T1900_billing_from_upgrade': billingFromUpgrade,
  '2026-12-01T1910_tenant_search_no_pending_list': tenantSearchNoPendingList,
  '2026-12-02T1000_platform_key_changes': platformKeyChanges,
};
