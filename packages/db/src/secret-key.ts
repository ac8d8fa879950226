import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { parseSecretKey } from './isolation/shared/secrets.js';

/**
 * Where an installation keeps its files on this machine (the generated secret key, local
 * tenant clusters) unless TENANTRY_DATA_DIR says otherwise: /var/lib/tenantry for root,
 * else the user's XDG data directory.
 */
export function defaultDataDir(env: Record<string, string | undefined>): string {
  if (process.getuid?.() === 0) return '/var/lib/tenantry';
  return path.join(env.XDG_DATA_HOME || path.join(homedir(), '.local', 'share'), 'tenantry');
}

/** What an app logs when it generated the key file. */
export const GENERATED_KEY_NOTICE =
  'generated the installation key (TENANT_SECRET_KEY was not set): back this file up; to run more than one machine, set TENANT_SECRET_KEY, the same on every api and worker';

/** The installation key's file under TENANTRY_DATA_DIR, when TENANT_SECRET_KEY is not set. */
export const SECRET_KEY_FILE = 'secret.key';

export interface InstallationKeyOptions {
  /** TENANT_SECRET_KEY, if the operator set one: it always wins. */
  configured: string | undefined;
  /** TENANTRY_DATA_DIR. */
  dataDir: string;
  /** Called once, by the process that created the key file. */
  onGenerated: (file: string) => void;
}

/**
 * The key that encrypts tenant credentials and other secrets at rest (AES-256-GCM). Set
 * TENANT_SECRET_KEY in production, the same on every api and worker. Without it, one
 * machine still works out of the box: the key lives in `<dataDir>/secret.key` (mode 0600),
 * made on first start. The api and the worker start together, so it is created atomically
 * (written aside, then hard-linked into place): whoever loses the race reads the winner's.
 */
export async function loadInstallationKey(options: InstallationKeyOptions): Promise<Buffer> {
  if (options.configured) return parseSecretKey(options.configured);
  const file = path.join(options.dataDir, SECRET_KEY_FILE);
  const existing = await readKeyFile(file);
  if (existing) return existing;

  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  const staged = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(staged, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await link(staged, file);
    options.onGenerated(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await unlink(staged).catch(() => undefined);
  }
  const key = await readKeyFile(file);
  if (!key) throw new Error(`${file} vanished while it was being created`);
  return key;
}

async function readKeyFile(file: string): Promise<Buffer | undefined> {
  let mode: number;
  try {
    mode = (await stat(file)).mode;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  // Like ssh with a private key: a key others can read is not a secret any more.
  if ((mode & 0o077) !== 0) throw new Error(`${file} is readable by other users (mode ${(mode & 0o777).toString(8)}): run chmod 600 on it`);
  try {
    return parseSecretKey(await readFile(file, 'utf8'));
  } catch {
    throw new Error(`${file} does not hold a key (32 bytes, base64): restore it from your backup, or set TENANT_SECRET_KEY`);
  }
}
