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
  /** The operation it exercises; its summary and description come from the route's meta. */
  operationId: string;
  auth: 'none' | 'tenant' | 'platform';
  path?: Record<string, ExampleValue>;
  query?: Record<string, ExampleValue>;
  body?: Record<string, ExampleValue>;
  /** A raw request body (a file upload): its media type and its content. */
  rawBody?: { contentType: string; text: string };
  /** Request headers besides the credential (e.g. Range). */
  headers?: Record<string, string>;
}

export const OWNER = { email: 'founder@acme.example', password: 'correct horse battery staple' };

export const EXAMPLES: Example[] = [
  {
    operationId: 'signup.create',
    auth: 'none',
    body: { email: OWNER.email, password: OWNER.password, orgName: 'Acme Corp' },
  },
  { operationId: 'signup.status', auth: 'none', path: { signupId: { env: 'SIGNUP_ID' } } },
  { operationId: 'auth.login', auth: 'none', body: { email: OWNER.email, password: OWNER.password } },
  { operationId: 'auth.me', auth: 'tenant' },
  {
    operationId: 'tenants.create',
    auth: 'platform',
    body: { name: 'Globex', ownerEmail: 'owner@globex.example', ownerPassword: 'hank scorpio 1996', plan: 'pro' },
  },
  { operationId: 'tenants.list', auth: 'platform', query: { search: 'glob', status: 'active', limit: 10 } },
  { operationId: 'tenants.get', auth: 'platform', path: { id: 'globex' } },
  { operationId: 'tenants.health', auth: 'platform', path: { id: 'globex' } },
  { operationId: 'tenants.update', auth: 'platform', path: { id: 'globex' }, body: { displayName: 'Globex Corporation' } },
  { operationId: 'tenants.suspend', auth: 'platform', path: { id: 'globex' }, body: { reason: 'unpaid invoice' } },
  { operationId: 'tenants.unsuspend', auth: 'platform', path: { id: 'globex' }, body: {} },
  {
    operationId: 'tenants.delete',
    auth: 'platform',
    path: { id: 'globex' },
    query: { reason: 'customer request' },
  },
  { operationId: 'tenants.restore', auth: 'platform', path: { id: 'globex' }, body: {} },
  { operationId: 'moves.start', auth: 'platform', path: { id: 'globex' }, body: { isolation: 'database' } },
  { operationId: 'moves.get', auth: 'platform', path: { id: 'globex', moveId: { env: 'MOVE_ID' } } },
  { operationId: 'billing.get', auth: 'platform', path: { id: 'acme-corp' } },
  {
    operationId: 'billing.update',
    auth: 'platform',
    path: { id: 'acme-corp' },
    body: { plan: 'pro', limits: { members: 500 } },
  },
  {
    operationId: 'pricing.estimate',
    auth: 'none',
    body: {
      plan: 'pro',
      usage: { apiRequests: 1234567, egressBytes: 67108864000, storageBytes: 13421772800, fileStorageBytes: 161061273600, realtimeConnections: 750 },
    },
  },
  {
    operationId: 'apiKeys.create',
    auth: 'tenant',
    body: { name: 'ci-pipeline', scope: 'write' },
  },
  { operationId: 'apiKeys.list', auth: 'tenant' },
  { operationId: 'apiKeys.revoke', auth: 'tenant', path: { id: { env: 'API_KEY_ID' } } },
  {
    operationId: 'documents.create',
    auth: 'tenant',
    path: { collection: 'notes' },
    body: { data: { title: 'Quarterly plan', status: 'open' } },
  },
  {
    operationId: 'documents.list',
    auth: 'tenant',
    path: { collection: 'notes' },
    query: { where: { status: 'open' }, limit: 20 },
  },
  { operationId: 'documents.get', auth: 'tenant', path: { collection: 'notes', id: { env: 'DOCUMENT_ID' } } },
  {
    operationId: 'documents.replace',
    auth: 'tenant',
    path: { collection: 'notes', id: { env: 'DOCUMENT_ID' } },
    body: { data: { title: 'Quarterly plan', status: 'done' } },
  },
  { operationId: 'realtime.subscribe', auth: 'tenant', query: { collections: 'notes' } },
  { operationId: 'documents.delete', auth: 'tenant', path: { collection: 'notes', id: { env: 'DOCUMENT_ID' } } },
  { operationId: 'files.put', auth: 'tenant', path: { key: 'reports/2026/q4.txt' }, rawBody: { contentType: 'text/plain', text: 'Revenue up 12% on the quarter.' } },
  { operationId: 'files.get', auth: 'tenant', path: { key: 'reports/2026/q4.txt' }, headers: { Range: 'bytes=0-6' } },
  { operationId: 'files.head', auth: 'tenant', path: { key: 'reports/2026/q4.txt' } },
  { operationId: 'files.list', auth: 'tenant', query: { prefix: 'reports/', limit: 20 } },
  { operationId: 'files.delete', auth: 'tenant', path: { key: 'reports/2026/q4.txt' } },
  { operationId: 'usage.own', auth: 'tenant' },
  { operationId: 'usage.ownMonth', auth: 'tenant', path: { month: '2026-11' } },
  { operationId: 'usage.ofTenant', auth: 'platform', path: { id: 'acme-corp' } },
  { operationId: 'usage.ofTenantMonth', auth: 'platform', path: { id: 'acme-corp', month: '2026-11' } },
  {
    operationId: 'usage.series',
    auth: 'platform',
    path: { id: 'acme-corp' },
    query: { meter: 'apiRequests', from: '2026-12-01T00:00:00Z', to: '2026-12-02T00:00:00Z', interval: 'hour' },
  },
  // Acme has been a customer since mid-November (the docs test records that): its
  // November invoice, then this month's draft, then a correction.
  { operationId: 'invoices.close', auth: 'platform', body: { month: '2026-11' } },
  { operationId: 'invoices.list', auth: 'platform', path: { id: 'acme-corp' }, query: { limit: 10 } },
  { operationId: 'invoices.get', auth: 'platform', path: { id: 'acme-corp', number: { env: 'INVOICE_NUMBER' } }, query: { format: 'json' } },
  { operationId: 'invoices.upcoming', auth: 'platform', path: { id: 'acme-corp' } },
  { operationId: 'invoices.own', auth: 'tenant' },
  { operationId: 'invoices.ownGet', auth: 'tenant', path: { number: { env: 'INVOICE_NUMBER' } } },
  {
    operationId: 'invoices.void',
    auth: 'platform',
    path: { id: 'acme-corp', number: { env: 'INVOICE_NUMBER' } },
    body: { reason: 'plan recorded as pro, contract says enterprise' },
  },
  { operationId: 'audit.list', auth: 'platform', query: { limit: 5 } },
  {
    operationId: 'webhooks.create',
    auth: 'platform',
    body: { url: 'https://billing.example.com/hooks/tenantry', events: ['tenant.suspended', 'tenant.deleted'], description: 'Billing system' },
  },
  { operationId: 'webhooks.list', auth: 'platform' },
  { operationId: 'webhooks.delete', auth: 'platform', path: { id: { env: 'WEBHOOK_ID' } } },
  { operationId: 'meta.openapi', auth: 'none' },
  // Last: it ends the session every tenant example above uses.
  { operationId: 'auth.logout', auth: 'tenant' },
];
