import pino, { type Logger } from 'pino';

/**
 * Structured JSON logs. Secrets are redacted by key wherever they appear, as a second line
 * of defence: the code does not log request bodies or headers in the first place.
 */
export function createLogger(level: string, name: string): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: ['password', '*.password', 'token', '*.token', 'authorization', '*.authorization', 'headers.authorization', 'passwordHash', '*.passwordHash'],
      censor: '[redacted]',
    },
  });
}
