export { createLogger } from './logger.js';
export { serveMetrics } from './metrics-server.js';
