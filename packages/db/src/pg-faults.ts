import pg from 'pg';

/**
 * Postgres going away (a restart, a failover, a network cut) must fail the requests that
 * were using it and nothing else. node-postgres emits 'error' on a client whose server
 * went away; with no listener that is an uncaught exception and the whole process dies.
 * pg-pool listens on idle clients only, so a client checked out inside a transaction, or
 * a one-off admin client, needs its own listener. Everything here exists for that.
 */

export type PgErrorSink = (message: string) => void;

/** The default sink: one JSON line on stderr, like the apps' logs. */
const stderrSink: PgErrorSink = (message) => {
  process.stderr.write(`${JSON.stringify({ level: 50, time: Date.now(), msg: message })}\n`);
};

/**
 * A pool whose every client, idle or checked out, has an error listener for its whole
 * life. The query a client was running fails with the same error, so the caller still sees
 * it; the broken client is dropped from the pool when it is released (it is no longer
 * queryable), and the next checkout connects afresh. Every pool of ours is made here.
 */
export function createGuardedPool(config: pg.PoolConfig, label: string, onError: PgErrorSink = stderrSink): pg.Pool {
  // TCP keepalive: a connection whose peer vanished (a partition, a killed server) is
  // found dead within a minute instead of the kernel's two hours.
  const pool = new pg.Pool({ keepAlive: true, keepAliveInitialDelayMillis: 10_000, ...config });
  pool.on('error', (err) => onError(`${label}: idle postgres connection lost: ${err.message}`));
  pool.on('connect', (client) => {
    client.on('error', (err) => onError(`${label}: postgres connection lost: ${err.message}`));
  });
  return pool;
}

/**
 * Connect a one-off client (admin work, provisioning), run `fn`, and end it, with an error
 * listener attached before the connection exists.
 */
export async function withClient<T>(config: pg.ClientConfig, fn: (client: pg.Client) => Promise<T>, onError: PgErrorSink = stderrSink): Promise<T> {
  const client = new pg.Client(config);
  client.on('error', (err) => onError(`${config.application_name ?? 'postgres client'}: connection lost: ${err.message}`));
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Network-level failures Node reports when Postgres cannot be reached. */
const NETWORK_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * SQLSTATEs that mean "the server is not there for you right now", not "your query is
 * wrong": class 08 (connection exception), 57P01–57P03 (admin/crash shutdown, cannot
 * connect now, e.g. while starting), 53300 (too many connections).
 */
const UNAVAILABLE_SQLSTATES = /^(08...|57P0[123]|53300)$/;

/** Messages node-postgres and pg-pool use for a lost or never-made connection (they carry no code). */
const UNAVAILABLE_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error and is not queryable',
  'Connection ended',
  'Client was closed and is not queryable',
];

/**
 * True when `err` (or an error in its cause chain) says Postgres is unreachable rather than
 * that the statement failed: the api answers those 503 dependency_unavailable, not 500.
 */
export function isPostgresUnavailable(err: unknown): boolean {
  for (let current = err, depth = 0; current && depth < 8; current = (current as { cause?: unknown }).cause, depth++) {
    if (typeof current !== 'object') return false;
    const { code, message } = current as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && (NETWORK_ERRNOS.has(code) || UNAVAILABLE_SQLSTATES.test(code))) return true;
    if (typeof message === 'string' && UNAVAILABLE_MESSAGES.some((m) => message.includes(m))) return true;
    // AggregateError (a dual-stack connect that failed on every address).
    const errors = (current as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.some((e) => isPostgresUnavailable(e))) return true;
  }
  return false;
}

/** A boot failure's one-line explanation when Postgres at `url` cannot be reached (the password never shown). */
export function describePostgresUnavailable(url: string, variable: string): (err: unknown) => string | undefined {
  return (err) => {
    if (!isPostgresUnavailable(err)) return undefined;
    const u = new URL(url);
    return `Cannot reach PostgreSQL at ${u.hostname}:${u.port || 5432} (${variable}): ${(err as Error).message || (err as { code?: string }).code}. Start it, or point ${variable} at a running server.`;
  };
}
