import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SECRET_KEY_FILE, loadInstallationKey } from './secret-key.js';

let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('the installation key', () => {
  it('is generated once into the data directory (mode 0600), even by 10 processes racing, and read back after', async () => {
    dir = path.join(mkdtempSync(path.join(tmpdir(), 'tenantry-key-')), 'data');
    const generated: string[] = [];
    const keys = await Promise.all(Array.from({ length: 10 }, () => loadInstallationKey({ configured: undefined, dataDir: dir, onGenerated: (f) => generated.push(f) })));
    expect(generated).toEqual([path.join(dir, SECRET_KEY_FILE)]);
    expect(new Set(keys.map((k) => k.toString('hex'))).size).toBe(1);
    expect(keys[0]!.length).toBe(32);
    expect(statSync(generated[0]!).mode & 0o777).toBe(0o600);
    const again = await loadInstallationKey({ configured: undefined, dataDir: dir, onGenerated: () => generated.push('again') });
    expect(again.equals(keys[0]!)).toBe(true);
    expect(generated).toHaveLength(1);
  });

  it('TENANT_SECRET_KEY wins over the file', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'tenantry-key-'));
    const configured = Buffer.alloc(32, 7).toString('base64');
    const key = await loadInstallationKey({ configured, dataDir: dir, onGenerated: () => undefined });
    expect(key.equals(Buffer.alloc(32, 7))).toBe(true);
  });

  it('refuses a key file others can read, and one that holds no key', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'tenantry-key-'));
    const file = path.join(dir, SECRET_KEY_FILE);
    writeFileSync(file, `${Buffer.alloc(32, 1).toString('base64')}\n`, { mode: 0o644 });
    chmodSync(file, 0o644);
    await expect(loadInstallationKey({ configured: undefined, dataDir: dir, onGenerated: () => undefined })).rejects.toThrow(/readable by other users .*chmod 600/);
    writeFileSync(file, 'not a key\n');
    chmodSync(file, 0o600);
    await expect(loadInstallationKey({ configured: undefined, dataDir: dir, onGenerated: () => undefined })).rejects.toThrow(/does not hold a key/);
    expect(readFileSync(file, 'utf8')).toBe('not a key\n');
  });
});
