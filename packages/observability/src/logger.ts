import pino, { type Logger } from 'pino';

/**
 * Structured JSON logs for both apps. Secrets are redacted by key wherever they appear, as
 * a second line of defence: the code logs no request bodies or headers in the first place.
 */
const REDACTED_KEYS = ['password', 'passwordHash', 'password_hash', 'token', 'key', 'authorization', 'license', 'secret'];

export function createLogger(level: string, name: string): Logger {
  return pino({
    name,
    level,
    redact: { paths: REDACTED_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]), censor: '[redacted]' },
  });
}
