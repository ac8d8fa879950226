import { type ChildProcess, spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

const SCHEMA = '/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql';

/**
 * A private PowerDNS Authoritative server (Debian's pdns-server + pdns-backend-sqlite3,
 * installed by .ci/run) with its HTTP API on, serving one zone, for tests.
 */
export class PrivatePowerDns {
  private constructor(
    private readonly process: ChildProcess,
    private readonly dir: string,
    readonly apiUrl: string,
    readonly dnsPort: number,
    readonly apiKey: string,
    readonly zone: string,
  ) {}

  static async start(zone = 'tenants.test'): Promise<PrivatePowerDns> {
    const dir = mkdtempSync(join(tmpdir(), 'tenantry-pdns-'));
    const [dnsPort, apiPort] = [await freePort(), await freePort()];
    const apiKey = 'test-api-key';
    execFileSync('sqlite3', [join(dir, 'pdns.db')], { input: `.read ${SCHEMA}\n` });
    writeFileSync(
      join(dir, 'pdns.conf'),
      [
        'launch=gsqlite3',
        `gsqlite3-database=${join(dir, 'pdns.db')}`,
        'local-address=127.0.0.1',
        `local-port=${dnsPort}`,
        'api=yes',
        `api-key=${apiKey}`,
        'webserver=yes',
        'webserver-address=127.0.0.1',
        `webserver-port=${apiPort}`,
        'webserver-allow-from=127.0.0.1',
        `socket-dir=${dir}`,
        'guardian=no',
        'daemon=no',
        'disable-syslog=yes',
      ].join('\n'),
    );
    const child = spawn('pdns_server', [`--config-dir=${dir}`], { stdio: 'ignore' });
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const server = new PrivatePowerDns(child, dir, apiUrl, dnsPort, apiKey, zone);
    for (let i = 0; ; i++) {
      try {
        const res = await fetch(`${apiUrl}/api/v1/servers/localhost/zones`, {
          method: 'POST',
          headers: { 'X-API-Key': apiKey },
          body: JSON.stringify({ name: `${zone}.`, kind: 'Native', nameservers: [`ns1.${zone}.`] }),
        });
        if (res.status === 201) return server;
        throw new Error(`zone creation answered ${res.status}`);
      } catch (err) {
        if (i > 100) {
          await server.stop();
          throw err;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  async stop(): Promise<void> {
    if (this.process.exitCode === null && this.process.signalCode === null) {
      await new Promise((resolve) => {
        this.process.once('exit', resolve);
        this.process.kill('SIGTERM');
      });
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
