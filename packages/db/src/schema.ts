import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';
import type { Isolation, MemberRole, MoveStatus, SignupStatus, SubscriptionState, TenantStatus } from '@tenantry/domain';

/** Control-plane tables, as kysely sees them. Timestamps come back as Date. */
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface TenantsTable {
  id: string;
  slug: string;
  name: string;
  status: TenantStatus;
  plan: string;
  isolation: Isolation;
  /** The tenant's schema (schema isolation); null once purged. */
  schema_name: string | null;
  /** Database isolation: the server (host:port) holding the tenant's database; null otherwise and once purged. */
  database_server: ColumnType<string | null, string | null | undefined, string | null>;
  database_name: ColumnType<string | null, string | null | undefined, string | null>;
  /** The tenant's login role (owns nothing; CONNECT on its database only). */
  database_role: ColumnType<string | null, string | null | undefined, string | null>;
  /** The role's password, AES-256-GCM: iv (12) ‖ tag (16) ‖ ciphertext. Never stored in clear. */
  database_password_enc: ColumnType<Buffer | null, Buffer | null | undefined, Buffer | null>;
  /** Cluster isolation: the instance's data directory, port and superuser password (encrypted). */
  cluster_data_dir: ColumnType<string | null, string | null | undefined, string | null>;
  cluster_port: ColumnType<number | null, number | null | undefined, number | null>;
  cluster_admin_password_enc: ColumnType<Buffer | null, Buffer | null | undefined, Buffer | null>;
  /** Bumped by every move's routing switch: a per-tenant pool of an older generation is not reused. */
  placement_generation: Generated<number>;
  /** Set while a move's cutover runs: tenant writes wait, then get 503 tenant_moving. */
  writes_paused_at: Timestamp | null;
  /** Cluster isolation: the replication role's password (encrypted), how many standbys, synchronous or not. */
  cluster_replication_password_enc: ColumnType<Buffer | null, Buffer | null | undefined, Buffer | null>;
  cluster_replicas: ColumnType<number | null, number | null | undefined, number | null>;
  cluster_synchronous: ColumnType<boolean | null, boolean | null | undefined, boolean | null>;
  /** The last instance generation made for the tenant: never reused, so a rebuilt standby has a name of its own. */
  cluster_last_generation: ColumnType<number, number | undefined, number>;
  /** Keyset-pagination key: unique and increasing. */
  seq: Generated<string>;
  is_default: Generated<boolean>;
  status_reason: string | null;
  status_before_deletion: 'active' | 'suspended' | null;
  delete_after: Timestamp | null;
  deleted_at: Timestamp | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface UsersTable {
  id: Generated<string>;
  /** Normalised (trimmed, lower-cased): the global identity, unique. */
  email: string;
  /** Null for an owner an operator created without a password: cannot log in. */
  password_hash: string | null;
  created_at: Generated<Date>;
}

export interface MembershipsTable {
  user_id: string;
  tenant_id: string;
  role: MemberRole;
  created_at: Generated<Date>;
}

export interface SignupsTable {
  id: Generated<string>;
  email: string;
  org_name: string;
  isolation: Isolation;
  /** Argon2id hash until the owner user is made from it, then cleared. */
  password_hash: string | null;
  status: SignupStatus;
  /** Pre-assigned at signup so every retry of the saga builds the same tenant. */
  tenant_id: string;
  /** Bumped when a failed signup is tried again: part of the job id, so a new run is never deduplicated away. */
  generation: Generated<number>;
  last_error: string | null;
  /** Who asked: the public signup endpoint, or an operator through the admin API. */
  source: Generated<'signup' | 'platform'>;
  plan: Generated<string>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface BillingStatesTable {
  tenant_id: string;
  plan: string;
  subscription_state: SubscriptionState;
  trial_ends_at: Timestamp | null;
  plan_version: Generated<number>;
  /** Overrides of the plan's capabilities (null: the plan's). */
  capabilities: ColumnType<string[] | null, string | null, string | null>;
  /** Overrides of some of the plan's limits (null: the plan's). */
  limits: ColumnType<Record<string, number> | null, string | null, string | null>;
  state_before_suspension: Exclude<SubscriptionState, 'suspended'> | null;
  /** Time of the newest external billing event applied: older events are not applied. */
  last_event_at: Timestamp | null;
  updated_at: Generated<Date>;
}

export interface BillingEventsTable {
  event_id: string;
  type: string;
  tenant_id: string | null;
  occurred_at: Timestamp;
  received_at: Generated<Date>;
  /** applied | ignored_stale | ignored_unknown_tenant | ignored_illegal | ignored_type */
  outcome: string;
}

export interface ProvisioningStepsTable {
  tenant_id: string;
  step: string;
  completed_at: Generated<Date>;
}

export interface SessionsTable {
  id: Generated<string>;
  /** SHA-256 of the opaque token; the token itself is never stored. */
  token_hash: Buffer;
  user_id: string;
  tenant_id: string;
  expires_at: Timestamp;
  created_at: Generated<Date>;
}

export interface AuditLogTable {
  id: Generated<string>;
  at: Generated<Date>;
  actor: string;
  action: string;
  tenant_id: string | null;
  data: ColumnType<Record<string, unknown>, string, never>;
  /** Set by the chain trigger on insert. */
  chain_seq: ColumnType<string, never, never>;
  prev_hash: ColumnType<Buffer, never, never>;
  hash: ColumnType<Buffer, never, never>;
}

export interface PlatformKeysTable {
  id: Generated<string>;
  name: string;
  /** SHA-256 of the key; the key itself is shown once and never stored. */
  key_hash: Buffer;
  created_at: Generated<Date>;
  revoked_at: Timestamp | null;
}

export interface OperatorSessionsTable {
  id: Generated<string>;
  /** SHA-256 of the session token (the cookie); the token itself is never stored. */
  token_hash: Buffer;
  /** The platform key's id as audit entries name it: a platform_keys id, or `env:<n>`. */
  key_id: string;
  /** SHA-256 of the platform key it came from: the session lives only while that key does. */
  key_hash: Buffer;
  created_at: Generated<Date>;
  expires_at: Timestamp;
}

export interface TenantApiKeysTable {
  id: Generated<string>;
  tenant_id: string;
  name: string;
  scope: 'read' | 'write';
  /** SHA-256 of the key; shown once at creation, never stored. */
  key_hash: Buffer;
  created_by: string | null;
  created_at: Generated<Date>;
  revoked_at: Timestamp | null;
}

export interface TenantHealthTable {
  tenant_id: string;
  last_probe_at: Timestamp;
  last_success_at: Timestamp | null;
  last_failure_at: Timestamp | null;
  last_error: string | null;
  consecutive_failures: number;
}

/** Hourly rollups of every meter (migration 2026-12-01T1300_usage). Bigint columns come back as strings. */
export interface UsageHourlyTable {
  tenant_id: string;
  meter: string;
  hour: Timestamp;
  route: Generated<string>;
  method: Generated<string>;
  status_class: Generated<string>;
  count: ColumnType<string, string | number | bigint | undefined, string | number | bigint>;
  max_value: ColumnType<string | null, string | number | bigint | null | undefined, string | number | bigint | null>;
  last_value: ColumnType<string | null, string | number | bigint | null | undefined, string | number | bigint | null>;
  value_seconds: ColumnType<string, string | number | undefined, string | number>;
  covered_seconds: ColumnType<string, string | number | undefined, string | number>;
}

/** Each gauge's latest sample per tenant. */
export interface UsageGaugesTable {
  tenant_id: string;
  meter: string;
  value: ColumnType<string, string | number | bigint, string | number | bigint>;
  sampled_at: Timestamp;
}

/** Per api instance: the last flush applied and up to when its counts are in. */
export interface UsageInstancesTable {
  instance_id: string;
  last_seq: ColumnType<string, string | number | bigint, string | number | bigint>;
  flushed_up_to: Timestamp;
  seen_at: Generated<Date>;
}

export interface WebhookEndpointsTable {
  id: Generated<string>;
  url: string;
  description: string | null;
  /** Subscribed event types; null: all of them. */
  events: string[] | null;
  /** The signing secret, AES-256-GCM with the installation key (AAD: the endpoint id). Never stored in clear. */
  secret_enc: Buffer;
  status: Generated<'enabled' | 'disabled'>;
  disabled_reason: string | null;
  /** Since when every attempt has failed; null once one succeeds. */
  failing_since: Timestamp | null;
  created_by: string;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface WebhookEventsTable {
  id: Generated<string>;
  type: string;
  tenant_id: string | null;
  /** The body every delivery sends: `{type, timestamp, data}`. */
  payload: ColumnType<Record<string, unknown>, string, never>;
  created_at: Generated<Date>;
}

export interface WebhookDeliveriesTable {
  id: Generated<string>;
  event_id: string;
  endpoint_id: string;
  status: Generated<'pending' | 'delivered' | 'failed' | 'cancelled'>;
  attempts: Generated<number>;
  /** When the next attempt is due (the reconciler re-enqueues pending deliveries past it). */
  next_attempt_at: Generated<Date>;
  last_attempt_at: Timestamp | null;
  delivered_at: Timestamp | null;
  created_at: Generated<Date>;
}

export interface WebhookAttemptsTable {
  id: Generated<string>;
  delivery_id: string;
  attempt: number;
  at: Generated<Date>;
  status_code: number | null;
  error: string | null;
  duration_ms: number;
}

/**
 * Each tenant's lifecycle status, plan and price book version over time (migration
 * 2026-12-01T1400_invoices): a row per change, written by triggers on tenants and
 * billing_states. A row holds from `at` until the next one.
 */
export interface TenantBillingHistoryTable {
  id: Generated<string>;
  tenant_id: string;
  at: Timestamp;
  status: TenantStatus;
  plan: string;
  plan_version: number;
}

/** The gapless invoice number sequence, per year of issue. */
export interface InvoiceCountersTable {
  year: number;
  last_number: ColumnType<string, string | number | bigint, string | number | bigint>;
}

/** Finalized invoices and voids; never changed once written (a trigger refuses it). */
export interface InvoicesTable {
  id: Generated<string>;
  seq: Generated<string>;
  number: string;
  tenant_id: string;
  month: string;
  status: 'finalized' | 'void';
  currency: string;
  total_minor: ColumnType<string, string | number | bigint, never>;
  issued_at: Timestamp;
  /** The canonical invoice document (InvoiceDocument). */
  document: ColumnType<Record<string, unknown>, string, never>;
  /** For a void: the invoice it cancels. */
  voids_id: string | null;
  /** For a corrected invoice: the one it replaces (voided by then). */
  replaces_id: string | null;
  /** Set once, when a void cancels this invoice. */
  voided_by_id: string | null;
  /** Why a void was issued. */
  reason: string | null;
  /** The PDF as first rendered, and its sha256: every download sends these bytes. Set once. */
  pdf: Buffer | null;
  pdf_sha256: Buffer | null;
  created_at: Generated<Date>;
}

/** Months closed, by the worker's schedule or on demand. */
export interface BillingClosesTable {
  month: string;
  first_closed_at: Timestamp;
  last_closed_at: Timestamp;
  forced: Generated<boolean>;
  invoices: Generated<number>;
}

/** A tenant's file (migration 2026-12-01T1500_files_realtime): its current content is `object` in the file storage. */
export interface TenantFilesTable {
  tenant_id: string;
  key: string;
  object: string;
  size: ColumnType<string, string | number, string | number>;
  content_type: string;
  sha256: string;
  created_at: Generated<Date>;
}

/** The maintained counters the fileStorageBytes quota is held by. */
export interface FileUsageTable {
  tenant_id: string;
  committed_bytes: ColumnType<string, string | number, string | number>;
  reserved_bytes: ColumnType<string, string | number, string | number>;
  updated_at: Generated<Date>;
}

/** An upload in flight: its object (= id) and the bytes it reserved, until it commits, aborts or expires. */
export interface FileUploadsTable {
  id: string;
  tenant_id: string;
  key: string;
  reserved_bytes: ColumnType<string, string | number, string | number>;
  started_at: Generated<Date>;
  expires_at: Timestamp;
}

/** Objects no file points at any more, to remove from the file storage. */
export interface FileTrashTable {
  object: string;
  tenant_id: string;
  since: Generated<Date>;
}

/**
 * A placement as a move row keeps it (jsonb): the driver's placement columns by name, the
 * encrypted passwords base64 (see isolation/placement.ts).
 */
export type StoredPlacement = Record<string, string | number | boolean | null>;

/** One table's verification at a move's cutover (both sides read while the source is frozen). */
export interface TableVerification {
  table: string;
  sourceRows: number;
  targetRows: number;
  sourceChecksum: string;
  targetChecksum: string;
  ok: boolean;
}

/** Moves of tenants between isolation models (migration 2026-12-01T1600_moves). */
export interface TenantMovesTable {
  id: Generated<string>;
  tenant_id: string;
  from_isolation: Isolation;
  to_isolation: Isolation;
  status: ColumnType<MoveStatus, MoveStatus | undefined, MoveStatus>;
  /** Where the target lives, until the switch copies it onto the tenant row. */
  target_placement: ColumnType<StoredPlacement | null, string | null | undefined, string | null>;
  /** Where the source lived, from the switch until it is dropped. */
  source_placement: ColumnType<StoredPlacement | null, string | null | undefined, string | null>;
  error: ColumnType<string | null, string | null | undefined, string | null>;
  requested_by: string;
  copy_passes: Generated<number>;
  rows_copied: ColumnType<string, string | number | undefined, string | number>;
  cutover_attempts: Generated<number>;
  verification: ColumnType<TableVerification[] | null, string | null | undefined, string | null>;
  paused_at: Timestamp | null;
  switched_at: Timestamp | null;
  write_pause_ms: ColumnType<number | null, number | null | undefined, number | null>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
  finished_at: Timestamp | null;
}

export interface TenantMoveStepsTable {
  id: Generated<string>;
  move_id: string;
  status: string;
  at: Generated<Date>;
  detail: ColumnType<Record<string, unknown>, string | undefined, never>;
}

/** One postmaster of a cluster tenant: its primary or a streaming standby. */
export interface ClusterInstancesTable {
  id: Generated<string>;
  tenant_id: string;
  /** 0 for the first primary; each standby made gets the next (its directory and slot are named after it). */
  generation: number;
  role: 'primary' | 'standby';
  /** creating: being built; active: in service; fenced: an old primary, stopped and never started again as one. */
  state: 'creating' | 'active' | 'fenced';
  port: number;
  data_dir: string;
  /** A standby's replication slot on the primary. */
  slot_name: string | null;
  /** When the worker first found it not answering; null while it answers. */
  down_since: Timestamp | null;
  /** What the worker's last watch pass saw (running, streaming, catchup, down, stopped, missing, fenced). */
  observed_state: string | null;
  observed_at: Timestamp | null;
  lag_bytes: ColumnType<string | null, string | number | null | undefined, string | number | null>;
  lag_seconds: number | null;
  /** pg_stat_replication.sync_state of a standby (sync, potential, async, quorum). */
  sync_state: string | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export type FailoverStep = 'fencing' | 'promoting' | 'switching' | 'rebuilding' | 'done' | 'abandoned';

/** A failover of a cluster tenant, as a recorded state machine (resumed by any worker). */
export interface ClusterFailoversTable {
  id: Generated<string>;
  tenant_id: string;
  step: FailoverStep;
  old_instance_id: string | null;
  new_instance_id: string | null;
  /** When the primary was first seen not answering. */
  detected_at: Timestamp;
  started_at: Generated<Date>;
  promoted_at: Timestamp | null;
  switched_at: Timestamp | null;
  finished_at: Timestamp | null;
  last_error: string | null;
}

export interface Database {
  tenants: TenantsTable;
  users: UsersTable;
  memberships: MembershipsTable;
  signups: SignupsTable;
  billing_states: BillingStatesTable;
  provisioning_steps: ProvisioningStepsTable;
  sessions: SessionsTable;
  audit_log: AuditLogTable;
  platform_keys: PlatformKeysTable;
  operator_sessions: OperatorSessionsTable;
  billing_events: BillingEventsTable;
  tenant_api_keys: TenantApiKeysTable;
  tenant_health: TenantHealthTable;
  cluster_instances: ClusterInstancesTable;
  cluster_failovers: ClusterFailoversTable;
  usage_hourly: UsageHourlyTable;
  usage_gauges: UsageGaugesTable;
  usage_instances: UsageInstancesTable;
  webhook_endpoints: WebhookEndpointsTable;
  webhook_events: WebhookEventsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_attempts: WebhookAttemptsTable;
  tenant_billing_history: TenantBillingHistoryTable;
  invoice_counters: InvoiceCountersTable;
  invoices: InvoicesTable;
  billing_closes: BillingClosesTable;
  tenant_files: TenantFilesTable;
  file_usage: FileUsageTable;
  file_uploads: FileUploadsTable;
  file_trash: FileTrashTable;
  tenant_moves: TenantMovesTable;
  tenant_move_steps: TenantMoveStepsTable;
}

export type Tenant = Selectable<TenantsTable>;
export type NewTenant = Insertable<TenantsTable>;
export type TenantUpdate = Updateable<TenantsTable>;
export type Signup = Selectable<SignupsTable>;
export type User = Selectable<UsersTable>;
export type TenantMove = Selectable<TenantMovesTable>;
