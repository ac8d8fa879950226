// The README's run command (`node scripts/start.mjs`, also `pnpm start`): migrate, build
// the dashboard, then the api and the worker side by side in one terminal.
//
// A small supervisor rather than turbo, because what a person running this needs is
// process handling, not a task graph: each app's lines prefixed with its name; readable
// logs when this runs in a terminal (the apps only see a pipe, so they are told:
// LOG_FORMAT=pretty); Ctrl-C (or SIGTERM) stops both gracefully and exits 0; and if one
// app dies, the other is stopped too and the exit code says so. Production runs each app
// on its own (`node --enable-source-maps apps/<app>/dist/main.mjs`, built by `pnpm build`)
// under its own supervisor.
//
// The README calls node directly rather than `pnpm start`: pnpm (since 10.16, on purpose)
// reports every Ctrl-C as a failed script ("ELIFECYCLE Command failed", exit 130), even
// when the script stopped cleanly.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { buildApps, bundleOf } from './build-apps.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const terminal = process.stdout.isTTY === true;
const env = { ...process.env };
if (terminal) {
  env.LOG_FORMAT ??= 'pretty';
  env.FORCE_COLOR ??= '1';
}

/** Run a step to its end with the terminal's output; stop here if it fails. */
async function step(args, options = {}) {
  const child = spawn(process.execPath, args, { stdio: 'inherit', ...options, cwd: options.cwd ?? root });
  const code = await new Promise((resolve) => child.on('exit', (c) => resolve(c)));
  if (code !== 0) process.exit(code ?? 1);
}

// Migrations first, once, so the two apps do not both wait on the migration lock.
await step(['--import', 'tsx', 'packages/db/src/cli/migrate.ts'], { env });
// The dashboard the api serves at /dashboard/ (a production build: NODE_ENV may be anything here).
const dashboard = `${root}apps/dashboard`;
await step([`${dashboard}/node_modules/vite/bin/vite.js`, 'build', '--logLevel', 'warn'], { cwd: dashboard, env: { ...env, NODE_ENV: 'production' } });
// The apps, compiled (scripts/build-apps.mjs says why): a second or so, every start, so
// what runs is always what is checked out.
await buildApps();

const COLORS = { api: '\u001b[36m', worker: '\u001b[35m' };
const label = (name) => (terminal ? `${COLORS[name]}${name.padEnd(6)}\u001b[0m│ ` : `${name.padEnd(6)}| `);

let stopping = false;
let exitCode = 0;
const running = new Set();

function stopAll() {
  if (stopping) return;
  stopping = true;
  for (const child of running) child.kill('SIGTERM');
}

for (const name of ['api', 'worker']) {
  const child = spawn(process.execPath, ['--enable-source-maps', bundleOf(name)], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  for (const [stream, out] of [
    [child.stdout, process.stdout],
    [child.stderr, process.stderr],
  ]) {
    createInterface({ input: stream }).on('line', (line) => out.write(`${label(name)}${line}\n`));
  }
  child.on('exit', (code, signal) => {
    running.delete(child);
    const failed = code !== 0 && !(stopping && signal === 'SIGTERM');
    if (failed) {
      process.stderr.write(`${label(name)}exited with ${signal ?? `code ${code}`}${stopping ? '' : '; stopping the other app'}\n`);
      exitCode ||= code || 1;
    }
    stopAll();
    if (running.size === 0) process.exit(exitCode);
  });
}

// In a terminal, Ctrl-C reaches the apps too (one process group); they drain and exit 0.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, stopAll);
