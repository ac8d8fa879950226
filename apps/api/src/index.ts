export { createApi, type ApiInstance, type ApiOptions } from './app.js';
export { parseApiConfig, ConfigError, type ApiConfig } from './config.js';
export type { AppRouter } from './routers/index.js';
export { ROUTER_TAGS, appOpenApiDocument, appRouter } from './routers/index.js';
export { MovingAwareStore } from './services/moves.js';
export { STORAGE_SAMPLE_REUSE_MS } from './services/quotas.js';
export { UsageMeter } from './usage/meter.js';
export { createApiMetrics } from './metrics.js';
