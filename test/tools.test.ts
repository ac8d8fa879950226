import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './support/process.js';

describe('the test command makes sure of its tools', () => {
  it('without them, and without root, it fails within seconds naming each tool and the exact install line', () => {
    // A PATH with nothing on it but node and sh: every tool looked up on PATH is missing.
    const bin = mkdtempSync(path.join(tmpdir(), 'tenantry-bare-path-'));
    chmodSync(bin, 0o755);
    try {
      symlinkSync(process.execPath, path.join(bin, 'node'));
      symlinkSync('/bin/sh', path.join(bin, 'sh'));
      const script = path.join(REPO_ROOT, 'test/tools/ensure-tools.mjs');
      const asRoot = process.getuid?.() === 0;
      const runuser = spawnSync('sh', ['-c', 'command -v runuser'], { encoding: 'utf8' }).stdout.trim();
      const [file, args] = asRoot ? [runuser, ['-u', 'nobody', '--', path.join(bin, 'node'), script]] : [path.join(bin, 'node'), [script]];
      const started = performance.now();
      const result = spawnSync(file, args, { cwd: '/', env: { PATH: bin }, encoding: 'utf8', timeout: 20_000 });
      expect(performance.now() - started).toBeLessThan(10_000);
      expect(result.status).toBe(1);
      expect(result.stderr).toContain('promtool (alert rules and metrics checks)');
      expect(result.stderr).toContain('PowerDNS with its sqlite3 backend');
      expect(result.stderr).toMatch(/sudo apt-get update && sudo apt-get install -y [a-z0-9 -]*prometheus[a-z0-9 -]*pdns-server pdns-backend-sqlite3/);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});
