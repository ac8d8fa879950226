import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';

/** The newest Debian-layout Postgres (what the worker picks for new instances by default). */
export const PG_BIN = (() => {
  const root = '/usr/lib/postgresql';
  const newest = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v) && existsSync(path.join(root, v, 'bin', 'pg_ctl'))).sort((a, b) => Number(b) - Number(a))[0] : undefined;
  return newest ? path.join(root, newest, 'bin') : '';
})();

/** As the postgres OS user when we are root (pg_ctl refuses root). */
export function pgCtl(args: string[]): { code: number; out: string } {
  const pgCtlBin = PG_BIN ? path.join(PG_BIN, 'pg_ctl') : 'pg_ctl';
  const [file, argv] = process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', pgCtlBin, ...args]] : [pgCtlBin, args];
  try {
    return { code: 0, out: execFileSync(file, argv, { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] }).toString() };
  } catch (err) {
    const e = err as { status?: number; stdout?: Buffer; stderr?: Buffer };
    return { code: e.status ?? 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** A fresh parent directory for a test file's tenant clusters (the worker chowns it). */
export function makeClusterRoot(): string {
  return mkdtempSync(path.join('/tmp', 'tenantry-clusters-'));
}

/** Stop every instance under `root` (immediate) and remove it all: for afterAll, failures or not. */
export function destroyClusterRoot(root: string | undefined): void {
  if (!root || !existsSync(root) || !path.basename(root).startsWith('tenantry-clusters-')) return;
  for (const entry of readdirSync(root)) {
    const dir = path.join(root, entry);
    if (existsSync(path.join(dir, 'PG_VERSION')) && pgCtl(['status', '-D', dir]).code === 0) pgCtl(['stop', '-D', dir, '-m', 'immediate', '-w']);
  }
  rmSync(root, { recursive: true, force: true });
}
