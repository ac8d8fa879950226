export * from './engine.js';
export * from './exact.js';
