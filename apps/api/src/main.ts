import { describePostgresUnavailable } from '@tenantry/db';
import { LicenseError } from '@tenantry/entitlements';
import { createLogger, exitOnBootFailure } from '@tenantry/observability';
import { createApi } from './app.js';
import { loadApiConfigOrExit } from './config.js';

const config = loadApiConfigOrExit();

const logger = createLogger(config.LOG_LEVEL, 'tenantry-api', config.LOG_FORMAT);
const bootFailure = (err: unknown) =>
  exitOnBootFailure(err, [
    (e) => (e instanceof LicenseError ? `License problem (${e.code}): ${e.message}` : undefined),
    describePostgresUnavailable(config.DATABASE_URL, 'DATABASE_URL'),
  ]);
const api = await createApi(config, { logger }).catch(bootFailure);
const { port, metricsPort } = await api.listen().catch(bootFailure);
logger.info({ port, metricsPort, hostedMode: config.HOSTED_MODE }, 'api listening');

// One line that says where everything is, for the person who just ran `pnpm start`.
const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? 'localhost' : config.HOST;
const base = `http://${host}:${port}`;
const platformKey = {
  configured: 'the key(s) in PLATFORM_API_KEY',
  generated: 'generated and printed above, once (only its hash is stored)',
  stored: 'stored hashed in the database; make another with `pnpm platform-key create <name>`',
}[api.platformKeySource];
logger.info(
  `Tenantry is up. API ${base}/v1 · dashboard ${base}/dashboard/ · reference ${base}/v1/openapi.json (docs/api.md) · metrics http://${host}:${metricsPort}/metrics · platform key: ${platformKey}`,
);

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
