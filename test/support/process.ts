import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Start an app's real entry point (apps/<app>/src/main.ts) as its own process. With
 * `processGroup`, it leads a process group of its own, so that a test can kill it together
 * with every child it started (initdb, pg_ctl) — as a container runtime or systemd does.
 */
export function spawnApp(app: 'api' | 'worker', env: Record<string, string>, options: { processGroup?: boolean } = {}): ChildProcess & { output: () => string } {
  // node --import tsx, not the tsx CLI: the CLI runs the app in a child process, and a
  // SIGKILL sent to the CLI would leave that child running.
  const child = spawn(process.execPath, ['--import', 'tsx', `apps/${app}/src/main.ts`], {
    cwd: REPO_ROOT,
    // Only what the test gives, plus PATH: the app must not depend on the developer's env.
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.processGroup ?? false,
  });
  let output = '';
  child.stdout?.on('data', (chunk) => (output += chunk));
  child.stderr?.on('data', (chunk) => (output += chunk));
  return Object.assign(child, { output: () => output });
}

/** Run an app to its exit; resolves with the exit code and everything it printed. */
export function runToExit(app: 'api' | 'worker', env: Record<string, string>, timeoutMs = 20_000): Promise<{ code: number | null; output: string }> {
  const child = spawnApp(app, env);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${app} did not exit within ${timeoutMs} ms:\n${child.output()}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output: child.output() });
    });
  });
}
