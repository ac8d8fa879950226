import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './support/process.js';

const run = promisify(execFile);

afterAll(() => {
  // Tests resolve the SDK from source; never leave a build behind for them to pick up stale.
  rmSync(new URL('../packages/sdk/dist', import.meta.url), { recursive: true, force: true });
});

describe('@tenantry/sdk as published', () => {
  it('builds, packs, and type-checks and imports in a clean project that has only its dependencies (@trpc/*, eventsource) installed', async () => {
    const { stdout } = await run('node', ['scripts/build.mjs'], { cwd: `${REPO_ROOT}packages/sdk`, timeout: 120_000 }).then(() =>
      run('node', ['scripts/check-dist.mjs'], { cwd: `${REPO_ROOT}packages/sdk`, timeout: 120_000 }),
    );
    expect(stdout).toContain('types ok: TypeScript 7, moduleResolution NodeNext, skipLibCheck off');
    expect(stdout).toContain('types ok: TypeScript 6, moduleResolution bundler, skipLibCheck off');
    expect(stdout).toContain('runtime ok');
  }, 180_000);
});
