export { createApi, type ApiInstance } from './app.js';
export { parseApiConfig, ConfigError, type ApiConfig } from './config.js';
export type { AppRouter } from './routers/index.js';
