import { LicenseError } from '@tenantry/entitlements';
import { createApi } from './app.js';
import { loadApiConfigOrExit } from './config.js';
import { createLogger } from '@tenantry/observability';

const config = loadApiConfigOrExit();

const logger = createLogger(config.LOG_LEVEL, 'tenantry-api');
const api = await createApi(config, { logger }).catch((err: unknown) => {
  if (err instanceof LicenseError) {
    console.error(`License problem (${err.code}): ${err.message}`);
    process.exit(1);
  }
  throw err;
});
const { port, metricsPort } = await api.listen();
logger.info({ port, metricsPort, hostedMode: config.HOSTED_MODE }, 'api listening');

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    api.close().then(
      () => process.exit(0),
      (err) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
