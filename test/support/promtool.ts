import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { REPO_ROOT } from './process.js';

const run = promisify(execFile);

/** promtool: PROMTOOL, else the one on PATH, else Debian's. Missing is a failure, not a skip. */
async function promtool(): Promise<string> {
  for (const candidate of [process.env.PROMTOOL, 'promtool', '/usr/bin/promtool'].filter((c): c is string => !!c)) {
    try {
      await run(candidate, ['--version']);
      return candidate;
    } catch {
      // try the next one
    }
  }
  throw new Error('promtool not found (PATH, /usr/bin/promtool): install it with `apt-get install prometheus`, or set PROMTOOL');
}

/** Run promtool from the repository root, `input` on its stdin; its combined output, or an error carrying it. */
export async function runPromtool(args: string[], input?: string): Promise<string> {
  const bin = await promtool();
  return new Promise((resolve, reject) => {
    const child = execFile(bin, args, { cwd: REPO_ROOT, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`promtool ${args.join(' ')} exited ${(err as { code?: number }).code}:\n${stdout}${stderr}`));
      else resolve(stdout + stderr);
    });
    child.stdin?.end(input ?? '');
  });
}
