export * from './types.js';
export * from './license.js';
export * from './database-source.js';
export * from './postgres-store.js';
