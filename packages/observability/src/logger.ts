import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';

/** pino-pretty, loaded only for a person's terminal: production logs JSON, and would pay its load (~50 ms of CPU) on every start. */
const loadPretty = () => createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;

/**
 * Structured JSON logs for both apps. Secrets are redacted by key wherever they appear, as
 * a second line of defence: the code logs no request bodies or headers in the first place.
 */
const REDACTED_KEYS = ['password', 'passwordHash', 'password_hash', 'token', 'key', 'authorization', 'license', 'secret'];

/**
 * `json`: one JSON object per line, for log shippers. `pretty`: readable lines for a
 * person at a terminal. `auto`: pretty when stdout is a terminal (`pnpm start` passes
 * `pretty` down when it runs in one).
 */
export type LogFormat = 'auto' | 'json' | 'pretty';

export function createLogger(level: string, name: string, format: LogFormat = 'json'): Logger {
  const options = {
    name,
    level,
    redact: { paths: REDACTED_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]), censor: '[redacted]' },
  };
  const readable = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  // Synchronous pretty-printing on the main thread: fine for a person's terminal; JSON
  // (pino's fast path) is what production runs.
  return readable ? pino(options, loadPretty()({ translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true })) : pino(options);
}
