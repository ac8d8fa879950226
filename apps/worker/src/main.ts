import { describePostgresUnavailable } from '@tenantry/db';
import { createLogger, exitOnBootFailure } from '@tenantry/observability';
import { createWorker } from './app.js';
import { loadWorkerConfigOrExit } from './config.js';

const config = loadWorkerConfigOrExit();

const logger = createLogger(config.LOG_LEVEL, 'tenantry-worker', config.LOG_FORMAT);
const worker = await createWorker(config, { logger }).catch((err: unknown) =>
  exitOnBootFailure(err, [describePostgresUnavailable(config.DATABASE_URL, 'DATABASE_URL')]),
);
logger.info({ concurrency: config.WORKER_CONCURRENCY }, 'worker started');

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    worker.close().then(
      () => process.exit(0),
      (err) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
