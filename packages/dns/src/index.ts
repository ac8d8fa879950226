export * from './provider.js';
export * from './powerdns.js';
