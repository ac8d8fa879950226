// First step of `pnpm test`: make sure every tool the suite drives is here, so that no test
// file fails with a riddle or gets skipped. As root (CI, a fresh machine) the missing Debian
// packages are installed; otherwise this fails within seconds, printing the exact command.
// It also checks that PostgreSQL and Redis answer, which it does not start (`.ci/run` does).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const onPath = (binary) => spawnSync('sh', ['-c', `command -v ${binary}`], { stdio: 'ignore' }).status === 0;
const postgresBin = (binary) => {
  const root = '/usr/lib/postgresql';
  return onPath(binary) || (existsSync(root) && readdirSync(root).some((v) => existsSync(path.join(root, v, 'bin', binary))));
};
const pythonHasRequests = () =>
  [process.env.TEST_PYTHON, 'python3', '/usr/bin/python3'].some((py) => py && spawnSync(py, ['-c', 'import requests'], { stdio: 'ignore' }).status === 0);

/** What the suite needs, why, and the Debian packages that bring it. */
const TOOLS = [
  { what: 'PostgreSQL server binaries (initdb, pg_ctl: private servers, cluster tenants)', ok: () => postgresBin('initdb') && postgresBin('pg_ctl'), packages: ['postgresql'] },
  { what: 'pg_dump and pg_restore (tenant backups)', ok: () => postgresBin('pg_dump') && postgresBin('pg_restore'), packages: ['postgresql-client'] },
  {
    what: 'redis-server and redis-cli (fault tests start private Redis servers; the Redis Cluster tests join theirs with redis-cli --cluster create)',
    ok: () => onPath('redis-server') && onPath('redis-cli'),
    packages: ['redis-server', 'redis-tools'],
  },
  { what: 'promtool (alert rules and metrics checks)', ok: () => onPath('promtool'), packages: ['prometheus'] },
  {
    what: 'PowerDNS with its sqlite3 backend (per-tenant DNS)',
    ok: () => onPath('pdns_server') && existsSync('/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql'),
    packages: ['pdns-server', 'pdns-backend-sqlite3'],
  },
  { what: 'sqlite3 (PowerDNS test zones)', ok: () => onPath('sqlite3'), packages: ['sqlite3'] },
  { what: 'curl (API reference examples)', ok: () => onPath('curl'), packages: ['curl'] },
  { what: 'pdftotext and pdffonts (invoice PDFs: their text and embedded fonts)', ok: () => onPath('pdftotext') && onPath('pdffonts'), packages: ['poppler-utils'] },
  { what: 'Python 3 with requests (API reference examples)', ok: pythonHasRequests, packages: ['python3-requests'] },
  // playwright-core drives Debian's Chromium: never a downloaded browser.
  { what: "Chromium (the dashboard's browser tests)", ok: () => existsSync(process.env.TEST_CHROMIUM ?? '/usr/bin/chromium'), packages: ['chromium'] },
];

const missing = TOOLS.filter((tool) => !tool.ok());
if (missing.length > 0) {
  const packages = [...new Set(missing.flatMap((tool) => tool.packages))];
  const install = `apt-get install -y ${packages.join(' ')}`;
  console.error(`The test suite needs:\n${missing.map((tool) => `  - ${tool.what}`).join('\n')}`);
  if (process.getuid?.() !== 0) {
    console.error(`\nInstall them, then run the tests again:\n\n  sudo apt-get update && sudo ${install}\n`);
    process.exit(1);
  }
  console.error(`\nInstalling: ${packages.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-q'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-q', ...packages], { stdio: 'inherit', env });
  const still = TOOLS.filter((tool) => !tool.ok());
  if (still.length > 0) {
    console.error(`Still missing after the install:\n${still.map((tool) => `  - ${tool.what}`).join('\n')}`);
    process.exit(1);
  }
}

/** A TCP connect (and for Redis a PING), within two seconds. */
function answers(host, port, probe) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2_000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => {
      if (!probe) return done(true);
      socket.write(probe);
      socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
    });
  });
}

const pgUrl = new URL(process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
const redisUrl = new URL(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379');
const services = [
  { name: `PostgreSQL at ${pgUrl.host} (TEST_DATABASE_URL)`, ok: await answers(pgUrl.hostname, Number(pgUrl.port || 5432)) },
  { name: `Redis at ${redisUrl.host} (TEST_REDIS_URL)`, ok: await answers(redisUrl.hostname, Number(redisUrl.port || 6379), 'PING\r\n') },
];
const down = services.filter((s) => !s.ok);
if (down.length > 0) {
  console.error(`Not reachable: ${down.map((s) => s.name).join(', ')}. Start them (bash .ci/run does, on a fresh machine), or point the variables at running servers.`);
  process.exit(1);
}
