export { type LogFormat, createLogger } from './logger.js';
export { serveMetrics } from './metrics-server.js';
export { collectProcessMetrics } from './process-metrics.js';
export { PortInUseError, exitOnBootFailure, listenOn } from './listen.js';
