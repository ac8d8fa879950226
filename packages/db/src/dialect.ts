import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  PostgresDialect,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';
import type pg from 'pg';

/**
 * Kysely's PostgresDialect, with a transaction's BEGIN sent together with the
 * transaction's first statement instead of on its own ("lazy BEGIN", as Npgsql and
 * psycopg do), whenever that statement has no parameters: `begin; <statement>` goes as
 * one simple-protocol message, and one round trip is saved.
 *
 * Why: a tenant request's transaction is BEGIN, one statement that sets the tenant
 * context (set_config, no parameters: see tenantContextStatement), the request's query
 * and COMMIT. Each round trip costs the api a socket write and a wake-up, and Postgres
 * as much again; measured with node-postgres on this project's 2-core machine, three
 * round trips instead of four gave about 20% more transactions a second and about 25 µs
 * less client CPU per transaction (docs/ops/scaling.md).
 *
 * Nothing else changes: the statements, their order and the transaction's bounds are
 * the ones Postgres would have seen, so a failure in the first statement aborts the
 * transaction just as it would after a separate BEGIN, and kysely rolls it back. A first
 * statement with parameters (extended protocol, which cannot carry two statements) is
 * preceded by the BEGIN as usual. A transaction that runs no statement sends nothing.
 *
 * pg answers a multi-statement message with one result per statement; the statement's
 * own (the last) is what kysely gets. Streaming (`.stream()`) is not offered, as with
 * PostgresDialect configured without a cursor.
 */
export class LazyBeginPostgresDialect extends PostgresDialect {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    super({ pool });
    this.#pool = pool;
  }

  override createDriver(): Driver {
    return new LazyBeginDriver(this.#pool);
  }
}

class LazyBeginDriver implements Driver {
  readonly #connections = new WeakMap<pg.PoolClient, LazyBeginConnection>();
  #pool: pg.Pool | undefined;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    const pool = this.#pool;
    if (!pool) throw new Error('driver has already been destroyed');
    const client = await pool.connect();
    let connection = this.#connections.get(client);
    if (!connection) {
      connection = new LazyBeginConnection(client);
      this.#connections.set(client, connection);
    }
    return connection;
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    let begin = 'begin';
    if (settings.isolationLevel || settings.accessMode) {
      begin = 'start transaction';
      if (settings.isolationLevel) begin += ` isolation level ${settings.isolationLevel}`;
      if (settings.accessMode) begin += ` ${settings.accessMode}`;
    }
    (connection as LazyBeginConnection).pendingBegin = begin;
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as LazyBeginConnection).endTransaction('commit');
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as LazyBeginConnection).endTransaction('rollback');
  }

  // Savepoints (kysely's controlled transactions) are plain statements: they go through
  // executeQuery, so one that opens a transaction carries its BEGIN too.
  async savepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`savepoint ${quoteIdentifier(name)}`));
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`rollback to savepoint ${quoteIdentifier(name)}`));
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`release savepoint ${quoteIdentifier(name)}`));
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    (connection as LazyBeginConnection).release();
  }

  async destroy(): Promise<void> {
    const pool = this.#pool;
    this.#pool = undefined;
    await pool?.end();
  }
}

/** A Postgres identifier, double-quoted (inner quotes doubled). */
const quoteIdentifier = (name: string) => `"${name.replaceAll('"', '""')}"`;

class LazyBeginConnection implements DatabaseConnection {
  /** The BEGIN (or START TRANSACTION …) not sent yet: it goes with the next statement. */
  pendingBegin: string | undefined;

  constructor(private readonly client: pg.PoolClient) {}

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const begin = this.pendingBegin;
    this.pendingBegin = undefined;
    const parameters = [...compiledQuery.parameters];
    let result: pg.QueryResult | pg.QueryResult[];
    if (begin !== undefined && parameters.length === 0) {
      result = (await this.client.query(`${begin}; ${compiledQuery.sql}`)) as unknown as pg.QueryResult[];
    } else {
      if (begin !== undefined) await this.client.query(begin);
      result = await this.client.query(compiledQuery.sql, parameters);
    }
    // Several statements (ours, or the caller's own multi-statement SQL): the last one's result.
    const last = Array.isArray(result) ? result[result.length - 1]! : result;
    const { command, rowCount, rows } = last;
    return {
      numAffectedRows: command === 'INSERT' || command === 'UPDATE' || command === 'DELETE' || command === 'MERGE' ? BigInt(rowCount ?? 0) : undefined,
      rows: (rows ?? []) as R[],
    };
  }

  /** COMMIT or ROLLBACK; nothing at all when the BEGIN was never sent (no statement ran). */
  async endTransaction(command: 'commit' | 'rollback'): Promise<void> {
    if (this.pendingBegin !== undefined) {
      this.pendingBegin = undefined;
      return;
    }
    await this.client.query(command);
  }

  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('Streaming queries are not supported by this dialect');
  }

  release(): void {
    this.pendingBegin = undefined;
    this.client.release();
  }
}
