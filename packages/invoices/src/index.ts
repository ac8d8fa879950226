export * from './engine.js';
export * from './exact.js';
export * from './formats.js';
