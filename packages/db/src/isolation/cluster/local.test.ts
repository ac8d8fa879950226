import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { postgresBinDir } from './local.js';

describe('postgresBinDir: which initdb/pg_ctl run a tenant instance', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'tenantry-pgbin-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const install = (version: string) => {
    mkdirSync(path.join(root, version, 'bin'), { recursive: true });
    writeFileSync(path.join(root, version, 'bin', 'initdb'), '');
  };

  it('nothing installed in the Debian layout → PATH', async () => {
    expect(await postgresBinDir(undefined, path.join(root, 'missing'))).toBe('');
    expect(await postgresBinDir(undefined, root)).toBe('');
  });

  it('a new instance gets the newest major installed (numerically: 16 before 9); an existing one its own', async () => {
    install('9');
    install('15');
    install('16');
    mkdirSync(path.join(root, '17')); // no binaries: not an installation
    expect(await postgresBinDir(undefined, root)).toBe(path.join(root, '16', 'bin'));
    expect(await postgresBinDir('15', root)).toBe(path.join(root, '15', 'bin'));
    // Its own major is gone: the newest is the best guess (pg_ctl then says why it cannot start).
    expect(await postgresBinDir('14', root)).toBe(path.join(root, '16', 'bin'));
  });
});
