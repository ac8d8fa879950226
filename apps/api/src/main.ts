import { describePostgresUnavailable } from '@tenantry/db';
import { LicenseError } from '@tenantry/entitlements';
import { createLogger, exitOnBootFailure } from '@tenantry/observability';
import { createApi } from './app.js';
import { loadApiConfigOrExit } from './config.js';

const config = loadApiConfigOrExit();

const logger = createLogger(config.LOG_LEVEL, 'tenantry-api');
const bootFailure = (err: unknown) =>
  exitOnBootFailure(err, [
    (e) => (e instanceof LicenseError ? `License problem (${e.code}): ${e.message}` : undefined),
    describePostgresUnavailable(config.DATABASE_URL, 'DATABASE_URL'),
  ]);
const api = await createApi(config, { logger }).catch(bootFailure);
const { port, metricsPort } = await api.listen().catch(bootFailure);
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
