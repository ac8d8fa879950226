export * from './engine.js';
export * from './exact.js';
export * from './formats.js';
export * from './timeline.js';
export * from './billing.js';
