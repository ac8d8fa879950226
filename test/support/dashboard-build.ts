import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './process.js';

/**
 * Once per run: build the dashboard (apps/dashboard/dist), which the api serves at
 * /dashboard/ and the browser tests open. Always rebuilt (about two seconds), so a test
 * run never drives a stale build.
 */
export default async function setup() {
  const cwd = path.join(REPO_ROOT, 'apps/dashboard');
  await promisify(execFile)(process.execPath, [path.join(cwd, 'node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'warn'], {
    cwd,
    // Vitest runs with NODE_ENV=test, which would make Vite bundle React's development build.
    env: { ...process.env, NODE_ENV: 'production' },
  }).catch(
    (err: Error & { stderr?: string }) => {
      throw new Error(`building the dashboard failed: ${err.message}\n${err.stderr ?? ''}`);
    },
  );
}
