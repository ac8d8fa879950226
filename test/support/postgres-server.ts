import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { pgCtlStartArgs } from '@tenantry/db';
import { freePort } from './ports.js';
import { PG_BIN } from './tenant-clusters.js';

const run = promisify(execFile);

/**
 * A private PostgreSQL instance (initdb + pg_ctl, as the cluster driver runs tenant
 * clusters) for tests that restart or stop Postgres: the shared server on 5432 must stay up
 * for the test files running alongside. Trust auth on loopback, superuser `postgres`.
 */
export class PrivatePostgres {
  private constructor(
    readonly dataDir: string,
    readonly port: number,
  ) {}

  static async start(): Promise<PrivatePostgres> {
    const root = mkdtempSync(path.join('/tmp', 'tenantry-pg-'));
    const server = new PrivatePostgres(path.join(root, 'data'), await freePort());
    const asRoot = process.getuid?.() === 0;
    if (asRoot) {
      const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
      chownSync(root, Number(uid.stdout), Number(gid.stdout));
    }
    await server.pg('initdb', ['-D', server.dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-instructions']);
    // Enough connections for two apps' pools plus the test's own; fsync off: a test
    // instance, never a crash-safety claim about Postgres itself.
    writeFileSync(path.join(server.dataDir, 'postgresql.auto.conf'), 'max_connections = 200\nfsync = off\n');
    if (asRoot) {
      const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
      chownSync(path.join(server.dataDir, 'postgresql.auto.conf'), Number(uid.stdout), Number(gid.stdout));
    }
    await server.pg('pg_ctl', pgCtlStartArgs(server.dataDir, server.port, []));
    return server;
  }

  /** A URL of database `name` on this instance. */
  url(name = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${name}`;
  }

  /** `pg_ctl restart -m fast`: every session is terminated (57P01), then the server is back. */
  async restart(): Promise<void> {
    await this.pg('pg_ctl', ['restart', '-w', '-t', '60', '-m', 'fast', '-D', this.dataDir, '-l', path.join(this.dataDir, 'server.log'), '-o', pgCtlStartArgs(this.dataDir, this.port, []).at(-1)!]);
  }

  async stop(): Promise<void> {
    if (existsSync(path.join(this.dataDir, 'postmaster.pid'))) await this.pg('pg_ctl', ['stop', '-w', '-m', 'immediate', '-D', this.dataDir]).catch(() => undefined);
  }

  /** Stop it and remove its files. */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(path.dirname(this.dataDir), { recursive: true, force: true });
  }

  private async pg(binary: 'initdb' | 'pg_ctl', args: string[]): Promise<void> {
    const bin = PG_BIN ? path.join(PG_BIN, binary) : binary;
    const [file, argv] = process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
    await run(file, argv, { cwd: '/', env: { PATH: process.env.PATH ?? '', LC_ALL: 'C.UTF-8' } });
  }
}
