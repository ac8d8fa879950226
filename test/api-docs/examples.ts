/**
 * One worked example per REST operation, in the order a reader (and the docs test) goes
 * through them. The curl, TypeScript and Python snippets of docs/api.md are all rendered
 * from these, and the test runs every one of them against a live api.
 *
 * A value `{ env: 'NAME' }` is read from the environment when the snippet runs (ids and
 * tokens an earlier example produced).
 */
export type ExampleValue = string | number | boolean | { env: string } | { [key: string]: ExampleValue } | ExampleValue[];

export interface Example {
  operationId: string;
  /** What the example shows, one line. */
  summary: string;
  auth: 'none' | 'tenant' | 'platform';
  path?: Record<string, ExampleValue>;
  query?: Record<string, ExampleValue>;
  body?: Record<string, ExampleValue>;
}

export const OWNER = { email: 'founder@acme.example', password: 'correct horse battery staple' };

export const EXAMPLES: Example[] = [
  {
    operationId: 'signup.create',
    summary: 'Sign up: creates an organisation and its owner (queued; poll the status).',
    auth: 'none',
    body: { email: OWNER.email, password: OWNER.password, orgName: 'Acme Corp' },
  },
  { operationId: 'signup.status', summary: 'Poll a signup until it is `ready`.', auth: 'none', path: { signupId: { env: 'SIGNUP_ID' } } },
  { operationId: 'auth.login', summary: 'Log in as the owner: returns a session token.', auth: 'none', body: { email: OWNER.email, password: OWNER.password } },
  { operationId: 'auth.me', summary: 'Who am I, and which tenant.', auth: 'tenant' },
  {
    operationId: 'tenants.create',
    summary: 'Create a tenant as an operator (same queued provisioning as signup; idempotent by owner email).',
    auth: 'platform',
    body: { name: 'Globex', ownerEmail: 'owner@globex.example', ownerPassword: 'hank scorpio 1996', plan: 'pro' },
  },
  { operationId: 'tenants.list', summary: 'Search and page through tenants.', auth: 'platform', query: { search: 'glob', status: 'active', limit: 10 } },
  { operationId: 'tenants.get', summary: 'One tenant, by id (`ten_…`) or slug.', auth: 'platform', path: { id: 'globex' } },
  { operationId: 'tenants.health', summary: "A tenant's health, checked now: a real query in its store, provisioning and lifecycle state, the last probe.", auth: 'platform', path: { id: 'globex' } },
  { operationId: 'tenants.update', summary: 'Rename a tenant or change its plan.', auth: 'platform', path: { id: 'globex' }, body: { displayName: 'Globex Corporation' } },
  { operationId: 'tenants.suspend', summary: "Suspend: the tenant's users are refused until unsuspended.", auth: 'platform', path: { id: 'globex' }, body: { reason: 'unpaid invoice' } },
  { operationId: 'tenants.unsuspend', summary: 'Unsuspend: access comes back (sessions were kept).', auth: 'platform', path: { id: 'globex' }, body: {} },
  {
    operationId: 'tenants.delete',
    summary: 'Soft-delete: refused to its users, purged after the retention period unless restored.',
    auth: 'platform',
    path: { id: 'globex' },
    query: { reason: 'customer request' },
  },
  { operationId: 'tenants.restore', summary: 'Restore a tenant pending deletion to its previous state.', auth: 'platform', path: { id: 'globex' }, body: {} },
  { operationId: 'billing.get', summary: "A tenant's billing state and what it entitles (hosted mode).", auth: 'platform', path: { id: 'acme-corp' } },
  {
    operationId: 'billing.update',
    summary: 'Override billing state: plan, subscription state, capabilities, limits (audited; seen by every instance within a second).',
    auth: 'platform',
    path: { id: 'acme-corp' },
    body: { plan: 'pro', limits: { members: 500 } },
  },
  {
    operationId: 'pricing.estimate',
    summary: 'Price a month of usage on a plan (the pricing calculator: the same engine as the month close; public, limited per IP).',
    auth: 'none',
    body: {
      plan: 'pro',
      usage: { apiRequests: 1234567, egressBytes: 67108864000, storageBytes: 13421772800, fileStorageBytes: 161061273600, realtimeConnections: 750 },
    },
  },
  {
    operationId: 'apiKeys.create',
    summary: 'Make an API key for the tenant (owner or admin; plans with `api_keys`). The key is shown only here.',
    auth: 'tenant',
    body: { name: 'ci-pipeline', scope: 'write' },
  },
  { operationId: 'apiKeys.list', summary: "The tenant's API keys (never the keys themselves).", auth: 'tenant' },
  { operationId: 'apiKeys.revoke', summary: 'Revoke an API key: refused from the next request on.', auth: 'tenant', path: { id: { env: 'API_KEY_ID' } } },
  {
    operationId: 'documents.create',
    summary: "Store a JSON document in one of the tenant's collections.",
    auth: 'tenant',
    path: { collection: 'notes' },
    body: { data: { title: 'Quarterly plan', status: 'open' } },
  },
  {
    operationId: 'documents.list',
    summary: 'List a collection, filtered by top-level fields, a page at a time.',
    auth: 'tenant',
    path: { collection: 'notes' },
    query: { where: { status: 'open' }, limit: 20 },
  },
  { operationId: 'documents.get', summary: 'One document (another tenant\'s id is 404).', auth: 'tenant', path: { collection: 'notes', id: { env: 'DOCUMENT_ID' } } },
  {
    operationId: 'documents.replace',
    summary: "Replace a document's data.",
    auth: 'tenant',
    path: { collection: 'notes', id: { env: 'DOCUMENT_ID' } },
    body: { data: { title: 'Quarterly plan', status: 'done' } },
  },
  { operationId: 'documents.delete', summary: 'Delete a document.', auth: 'tenant', path: { collection: 'notes', id: { env: 'DOCUMENT_ID' } } },
  { operationId: 'audit.list', summary: 'The tamper-evident audit trail, newest first.', auth: 'platform', query: { limit: 5 } },
  {
    operationId: 'webhooks.create',
    summary: 'Register a billing system\'s endpoint for signed events (Standard Webhooks). The signing secret is shown only here.',
    auth: 'platform',
    body: { url: 'https://billing.example.com/hooks/tenantry', events: ['tenant.suspended', 'tenant.deleted'], description: 'Billing system' },
  },
  { operationId: 'webhooks.list', summary: 'The registered endpoints, their state and failures (never their secrets).', auth: 'platform' },
  { operationId: 'webhooks.delete', summary: 'Remove an endpoint: nothing more is sent to it.', auth: 'platform', path: { id: { env: 'WEBHOOK_ID' } } },
  { operationId: 'meta.openapi', summary: 'The OpenAPI 3.1 document this reference is generated from.', auth: 'none' },
];
