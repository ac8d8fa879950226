export { createWorker, type WorkerInstance } from './app.js';
export { parseWorkerConfig, ConfigError, type WorkerConfig } from './config.js';
