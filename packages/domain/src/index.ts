export * from './errors.js';
export * from './email.js';
export * from './slug.js';
export * from './ids.js';
export * from './tenant.js';
export * from './signup.js';
export * from './auth.js';
export * from './env.js';
