export * from './client.js';
export * from './schema.js';
export * from './migrate.js';
export * from './audit.js';
export * from './with-tenant.js';
export * from './tenant-store/schema-store.js';
export * from './tenants.js';
export * from './audit-verify.js';
